"""PGD: nnkit ``attacks.PGD`` against torchattacks ``PGD`` (L∞), same model, images, budget and seed.

Same model, same images (the first N correctly classified test images), same budget (ε = 8/255,
α = 2/255, 10 steps, random start, untargeted, by default), same device and thread count, in one run.
Prints each library's robust accuracy (the model's own verdict on the returned images, judged the
same way for both) and seconds, then the time ratio torchattacks ÷ nnkit (wall clock and CPU time;
the better of ``--repeats`` timed runs each, interleaved), with the hardware and library versions.

Where nnkit's speed comes from (``--ablation`` times each part on its own): the gradients flow through
a frozen inference copy of the model (BatchNorm folded into the convolutions, no weight gradients,
channels-last), and an image stops at its first fooling iterate (read off the logits the step
computes anyway), so the later steps run on fewer images. The random starts differ (nnkit draws
each image's from its own stream; torchattacks from the global one), so the two robust accuracies
agree up to that randomness, not bit for bit.

    pip install --no-deps -r requirements-bench.txt -c requirements.txt   # torchattacks
    python bench/gradient_vs_peers.py [--run RUN] [--n 500] [--eps 8/255] [--steps 10] [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# nnkit's thread policy, set before torch loads OpenMP (importing nnkit would, but only after torch): idle
# OpenMP threads sleep instead of spinning, for both libraries alike, so CPU time measures work, not waiting.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from attacks import PGD  # noqa: E402
from nnkit.cli.common import number_or_fraction  # noqa: E402
from nnkit.device import cpu_name, describe_device, get_device  # noqa: E402
from nnkit.training import predict_logits  # noqa: E402
from nnkit.versions import library_versions  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from one_pixel_vs_peers import Timer, load_or_train  # noqa: E402  (the same model loading and timing)


def robust(model, adv: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy on the returned images, judged the same way for every library."""
    return float((predict_logits(model, adv).argmax(1) == labels.cpu()).float().mean())


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def nnkit_runner(model, args, *, fast: bool = True, early_stop: bool = True):
    def run(x, y):
        attack = PGD(model, eps=args.eps, alpha=args.alpha, steps=args.steps, seed=args.seed, fast=fast,
                     early_stop=early_stop)
        return attack(x, y).images
    return run


def torchattacks_runner(model, args):
    import torchattacks

    attack = torchattacks.PGD(model, eps=args.eps, alpha=args.alpha, steps=args.steps, random_start=True)

    def run(x, y):
        torch.manual_seed(args.seed)
        return attack(x, y).detach().cpu()
    return run


def measure(name: str, run, model, x, y, repeats: int, device) -> dict:
    """Best wall and CPU seconds of ``repeats`` runs, and the robust accuracy of the last."""
    walls, cpus = [], []
    adv = None
    for _ in range(repeats):
        sync(device)
        with Timer() as t:
            adv = run(x, y)
            sync(device)
        walls.append(t.wall)
        cpus.append(t.cpu)
    return {"library": name, "n": int(x.shape[0]), "robust_accuracy": robust(model, adv, y),
            "seconds": min(walls), "cpu_seconds": min(cpus), "seconds_all": walls}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="classifier run (default: train a cnn on shapes first, ~1-2 min)")
    p.add_argument("--n", type=int, default=500, help="correctly classified test images (default: %(default)s)")
    p.add_argument("--eps", type=number_or_fraction, default=8 / 255, help="L∞ budget (default: 8/255)")
    p.add_argument("--alpha", type=number_or_fraction, default=2 / 255, help="step size (default: 2/255)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3, help="timed runs per library, the best counts (default: 3)")
    p.add_argument("--ablation", action="store_true",
                   help="also time nnkit without its inference copy and without early stopping")
    p.add_argument("--quick", action="store_true", help="a tiny smoke run: 16 images, 2 steps, 1 repeat")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="last line of stdout: one JSON object")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.steps, args.repeats = min(args.n, 16), min(args.steps, 2), 1

    try:
        import torchattacks  # noqa: F401
    except ImportError:
        print("torchattacks is not installed: run `make bench-deps` (or "
              "`pip install --no-deps -r requirements-bench.txt -c requirements.txt`)", file=sys.stderr)
        return 2

    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    os.environ.setdefault("NNKIT_OFFLINE", "1")
    info, model, dataset = load_or_train(args.run, device)
    model.eval()
    split = dataset.split("test")
    pred = predict_logits(model, split.images).argmax(1)
    correct = (pred == split.labels).nonzero()[:, 0][: args.n]
    x, y = split.images[correct].to(device), split.labels[correct].to(device)
    if x.shape[0] == 0:
        print("error: the model classifies no test image correctly: nothing to attack", file=sys.stderr)
        return 2

    versions = library_versions()
    try:
        versions["torchattacks"] = metadata.version("torchattacks")
    except metadata.PackageNotFoundError:
        versions["torchattacks"] = "absent"
    header = {"cpu": cpu_name(), "cores": os.cpu_count(), "device": describe_device(device),
              "threads": torch.get_num_threads(), "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
              "versions": versions, "run": info.run_id, "test_accuracy": info.meta.get("test_accuracy"),
              "n_images": int(x.shape[0]),
              "budget": {"norm": "linf", "eps": args.eps, "alpha": args.alpha, "steps": args.steps,
                         "random_start": True, "untargeted": True}}
    print(f"hardware: {header['cpu']} ({header['cores']} cores), {header['device']}, {header['threads']} threads, "
          f"load average {header['load_average']}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"model: {info.run_id} (test accuracy {header['test_accuracy']}), {x.shape[0]} correctly classified "
          f"test images, PGD L∞ eps={args.eps:.5f} alpha={args.alpha:.5f} steps={args.steps}, seed {args.seed}")

    runners = [("nnkit", nnkit_runner(model, args)), ("torchattacks", torchattacks_runner(model, args))]
    if args.ablation:
        runners += [("nnkit (fast=False)", nnkit_runner(model, args, fast=False)),
                    ("nnkit (early_stop=False)", nnkit_runner(model, args, early_stop=False)),
                    ("nnkit (neither)", nnkit_runner(model, args, fast=False, early_stop=False))]
    for _name, run in runners:  # warm-up: first-call allocations and thread pools count for nobody
        run(x[:4], y[:4])
    rows = []
    for name, run in runners:
        print(f"running {name} ...", file=sys.stderr)
        rows.append(measure(name, run, model, x, y, args.repeats, device))
        print(f"  {name}: {json.dumps(rows[-1])}", file=sys.stderr)

    print(f"\n{'library':<26}{'robust acc':>11}{'seconds':>10}{'cpu s':>9}")
    for r in rows:
        print(f"{r['library']:<26}{100 * r['robust_accuracy']:>10.1f}%{r['seconds']:>10.2f}{r['cpu_seconds']:>9.2f}")
    ours, peer = rows[0], rows[1]
    ratio = peer["seconds"] / max(ours["seconds"], 1e-9)
    cpu_ratio = peer["cpu_seconds"] / max(ours["cpu_seconds"], 1e-9)
    gap = 100 * abs(ours["robust_accuracy"] - peer["robust_accuracy"])
    print(f"time ratio torchattacks ÷ nnkit: {ratio:.2f}x wall clock, {cpu_ratio:.2f}x CPU time (goal >= 1.5x on CPU)")
    print(f"robust accuracy gap: {gap:.1f} points (must be within 2)")
    if args.json:
        print(json.dumps({**header, "results": rows, "time_ratio": ratio, "time_ratio_cpu": cpu_ratio,
                          "robust_accuracy_gap_points": gap}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
