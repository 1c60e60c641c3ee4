"""Training throughput of ``nnkit.train`` against a plain hand-written PyTorch loop.

Same model (nnkit cnn), same data (shapes, on the device), same batch size, optimiser and device,
measured in the same run, alternating the two to share any machine noise. Prints images/s for
each, the ratio nnkit / plain (acceptance: >= 0.95), the hardware and the library versions.

    python bench/train_speed.py [--device cpu] [--epochs 2] [--repeats 3] [--quick]

``--quick`` is a smoke run (500 images, one repeat: seconds, for CI); its ratio is not a measurement.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from nnkit import data, models  # noqa: E402
from nnkit.device import describe_device, get_device  # noqa: E402
from nnkit.runs import RunStore  # noqa: E402
from nnkit.training import TrainConfig, train  # noqa: E402
from nnkit.versions import library_versions  # noqa: E402


def plain_loop(device: torch.device, epochs: int, batch_size: int, seed: int, n_train: int = 10_000) -> float:
    """The reference: the textbook PyTorch loop over on-device tensors. Returns images/s."""
    torch.manual_seed(seed)
    ds = data.create("shapes", n_train=n_train)
    x = ds.split("train").images.to(device)
    y = ds.split("train").labels.to(device)
    model = models.create("cnn", 10, 3, 32).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * -(-len(y) // batch_size),
                                                pct_start=0.25)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y), device=device)
        for i in range(0, len(y), batch_size):
            idx = perm[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return epochs * len(y) / (time.perf_counter() - t0)


def nnkit_train(device: torch.device, epochs: int, batch_size: int, seed: int, store: RunStore,
                n_train: int = 10_000) -> float:
    """``nnkit.train`` on the same work; the timed span is its optimiser steps (per-epoch seconds)."""
    result = train(TrainConfig(data="shapes", data_opts={"n_train": n_train}, model="cnn", epochs=epochs,
                               batch_size=batch_size, seed=seed, device=str(device), val_fraction=0.0), store=store)
    seconds = sum(h["seconds"] for h in result.history)
    return epochs * n_train / seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke run: 500 images, one repeat (seconds, for CI)")
    args = p.parse_args()
    n_train = 500 if args.quick else 10_000
    if args.quick:
        args.repeats = 1
    device = get_device(args.device)
    data.create("shapes", n_train=n_train)  # generate once, outside the timings
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(tmp)
        plain, ours = [], []
        for r in range(args.repeats):
            plain.append(plain_loop(device, args.epochs, args.batch_size, seed=r, n_train=n_train))
            ours.append(nnkit_train(device, args.epochs, args.batch_size, seed=r, store=store, n_train=n_train))
            print(f"repeat {r + 1}: plain {plain[-1]:.0f} img/s, nnkit {ours[-1]:.0f} img/s", flush=True)
    p_med, o_med = statistics.median(plain), statistics.median(ours)
    print(f"hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, {describe_device(device)}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))
    print(f"plain PyTorch loop: {p_med:.0f} images/s (median of {args.repeats}, spread {min(plain):.0f}-{max(plain):.0f})")
    print(f"nnkit.train:        {o_med:.0f} images/s (median of {args.repeats}, spread {min(ours):.0f}-{max(ours):.0f})")
    print(f"ratio nnkit / plain: {o_med / p_med:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
