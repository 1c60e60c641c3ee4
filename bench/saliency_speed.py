"""Attribution speed: images/s per method, batched vs one image at a time, on CPU and (when present) GPU.

    .venv/bin/python bench/saliency_speed.py                 # cnn on 32×32 RGB, 64 images, every method
    .venv/bin/python bench/saliency_speed.py --n 128 --repeats 5 --methods saliency,ig,gradcam

Prints the hardware and library versions first, then one line per device and method with the median
(and min–max) images/s over the repeats for batched calls (``--batch-size``) and single-image calls,
and their ratio. The model is an untrained nnkit ``cnn``: speed does not depend on the weights.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nnkit import models  # noqa: E402
from nnkit.device import describe_device  # noqa: E402
from nnkit.saliency import METHODS, explain, parse_methods  # noqa: E402
from nnkit.versions import library_versions  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(model, images, method, batch_size, device, repeats, single_n) -> list[float]:
    """images/s over ``repeats`` timed calls (one untimed warm-up call first)."""
    x = images if batch_size > 1 else images[:single_n]
    explain(model, x[: max(1, min(len(x), batch_size))], None, method, batch_size=batch_size, device=device, seed=0)
    rates = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        explain(model, x, None, method, batch_size=batch_size, device=device, seed=0)
        _sync(device)
        rates.append(len(x) / (time.perf_counter() - t0))
    return rates


def _fmt(rates: list[float]) -> str:
    return f"{statistics.median(rates):.1f} ({min(rates):.1f}–{max(rates):.1f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (default: all)")
    p.add_argument("--n", type=int, default=64, help="images per timed batched call (default: %(default)s)")
    p.add_argument("--single-n", type=int, default=16,
                   help="images per timed one-at-a-time call (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="batched calls' batch size (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per figure (default: %(default)s)")
    p.add_argument("--size", type=int, default=32, help="image side (default: %(default)s)")
    p.add_argument("--devices", default="cpu,cuda", help="devices to try; absent ones are skipped")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    methods = parse_methods(args.methods)
    versions = library_versions()
    print(f"host: {platform.platform()}, {platform.processor() or platform.machine()}, "
          f"torch threads {torch.get_num_threads()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    devices = []
    for name in args.devices.split(","):
        name = name.strip()
        if name == "cuda" and not torch.cuda.is_available():
            print("cuda: absent, skipped")
            continue
        if name == "mps" and not torch.backends.mps.is_available():
            continue
        devices.append(torch.device(name))
    print(f"model: nnkit cnn (default options), {args.size}×{args.size} RGB, batched n={args.n} "
          f"batch {args.batch_size}, single n={args.single_n}, {args.repeats} repeats, median (min–max) images/s")
    g = torch.Generator().manual_seed(0)
    images = torch.rand(args.n, 3, args.size, args.size, generator=g)
    for device in devices:
        torch.manual_seed(0)
        model = models.create("cnn", 10, 3, args.size).to(device).eval()
        print(f"\n[{describe_device(device)}]")
        print(f"{'method':<16} {'batched img/s':>24} {'one-at-a-time img/s':>24} {'speed-up':>9}")
        for m in methods:
            batched = _rate(model, images, m, args.batch_size, device, args.repeats, args.single_n)
            single = _rate(model, images, m, 1, device, args.repeats, args.single_n)
            b, s = statistics.median(batched), statistics.median(single)
            print(f"{m:<16} {_fmt(batched):>24} {_fmt(single):>24} {b / s:>8.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
