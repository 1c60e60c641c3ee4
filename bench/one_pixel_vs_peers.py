"""Single-pixel attack: nnkit ``OnePixel`` against torchattacks ``OnePixel`` and ART ``PixelAttack``.

Same model, same images (the first N correctly classified test images), same budget (population
400, up to 100 generations, untargeted, k = 1 by default), same device and thread count, all in one
run. Prints, for each library, the success rate, seconds per image and model queries per success,
then nnkit's speed-up over each peer, with the hardware and library versions.

Queries are counted the same way for the peers (a wrapper that counts every image their model
sees); nnkit counts its own (clean check + every candidate + final check, see ``attacks.base``).
With ``--ablation`` nnkit also runs without its inference copy of the model (``fast=False``) so the
share of the speed-up that comes from batching alone is visible.

    pip install -r requirements-bench.txt -c requirements.txt   # torchattacks, adversarial-robustness-toolbox
    python bench/one_pixel_vs_peers.py [--run RUN] [--n 100] [--pixels 1] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from attacks import OnePixel  # noqa: E402
from nnkit.device import cpu_name, describe_device, get_device  # noqa: E402
from nnkit.runs import RunStore, load_classifier, load_run_data  # noqa: E402
from nnkit.training import TrainConfig, predict_logits, train  # noqa: E402
from nnkit.versions import library_versions  # noqa: E402


class CountingModel(nn.Module):
    """Wraps a model and counts the images it is asked to classify (the peers' queries)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.count = 0

    def forward(self, x):
        self.count += int(x.shape[0])
        return self.model(x)


def load_or_train(run: str | None, device: torch.device):
    """The classifier and its dataset: a stored run, or a cnn trained on shapes with the default recipe."""
    if run:
        info = RunStore().get(run)
    else:
        store = RunStore(Path(tempfile.mkdtemp(prefix="nnkit-bench-")) / "runs")
        print("training a cnn on shapes (default recipe, seed 0) ...", file=sys.stderr)
        result = train(TrainConfig(data="shapes", model="cnn", seed=0, device=str(device)), store=store)
        info = store.get(result.run_id)
    return info, load_classifier(info, device), load_run_data(info)


class Timer:
    """Wall-clock and process CPU seconds (CPU time is less disturbed by other jobs on a shared machine)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def summarize(name: str, success: torch.Tensor, queries: list[int], timer: Timer) -> dict:
    n = len(queries)
    q_success = [q for q, s in zip(queries, success.tolist()) if s]
    return {"library": name, "n": n, "success_rate": float(success.float().mean()),
            "seconds": timer.wall, "seconds_per_image": timer.wall / n, "cpu_seconds_per_image": timer.cpu / n,
            "queries_per_image_mean": statistics.fmean(queries),
            "median_queries_per_success": statistics.median(q_success) if q_success else None,
            "mean_queries_per_success": statistics.fmean(q_success) if q_success else None}


def fooled(model: nn.Module, adv: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Success judged the same way for every library: the model's prediction on the returned images."""
    return predict_logits(model, adv).argmax(1) != labels.cpu()


def run_nnkit(model, x, y, args, fast: bool) -> dict:
    attack = OnePixel(model, pixels=args.pixels, popsize=args.popsize, generations=args.generations, seed=args.seed,
                      fast=fast)
    with Timer() as timer:
        result = attack(x, y)
    ok = fooled(model, result.images, y)
    if not torch.equal(ok, result.success):
        print("warning: nnkit's own verdict differs from the re-check", file=sys.stderr)
    return summarize("nnkit" if fast else "nnkit (fast=False)", ok, result.queries.tolist(), timer)


def run_torchattacks(model, x, y, args) -> dict:
    import torchattacks

    counter = CountingModel(model).eval()
    # torchattacks' popsize is the total population (it divides by the 5k dimensions internally).
    attack = torchattacks.OnePixel(counter, pixels=args.pixels, steps=args.generations, popsize=args.popsize,
                                   inf_batch=args.peer_batch)
    advs, queries = [], []
    with Timer() as timer:
        for i in range(x.shape[0]):  # one image per call: torchattacks runs them one at a time anyway
            counter.count = 0
            advs.append(attack(x[i : i + 1], y[i : i + 1]).cpu())
            queries.append(counter.count)
    return summarize("torchattacks", fooled(model, torch.cat(advs), y), queries, timer)


def run_art(model, x, y, args, num_classes: int) -> dict:
    from art.attacks.evasion import PixelAttack
    from art.estimators.classification import PyTorchClassifier

    counter = CountingModel(model).eval()
    classifier = PyTorchClassifier(model=counter, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                                   nb_classes=num_classes, clip_values=(0.0, 1.0),
                                   device_type="gpu" if x.device.type == "cuda" else "cpu")
    # ART's DE population is fixed at 400 (popsize = 400 // dimensions); th = number of pixels.
    attack = PixelAttack(classifier, th=args.pixels, es=1, max_iter=args.generations, targeted=False, verbose=False)
    xs, ys = x.cpu().numpy(), y.cpu().numpy()
    advs, queries = [], []
    with Timer() as timer:
        for i in range(xs.shape[0]):
            counter.count = 0
            advs.append(torch.from_numpy(attack.generate(xs[i : i + 1], ys[i : i + 1])).float())
            queries.append(counter.count)
    return summarize("art", fooled(model, torch.cat(advs).clamp(0, 1), y), queries, timer)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="classifier run (default: train a cnn on shapes first, ~1 min)")
    p.add_argument("--n", type=int, default=100, help="correctly classified test images (default: %(default)s)")
    p.add_argument("--pixels", type=int, default=1)
    p.add_argument("--popsize", type=int, default=400)
    p.add_argument("--generations", type=int, default=100)
    p.add_argument("--peers", default="torchattacks,art", help="comma list: torchattacks, art, or none")
    p.add_argument("--peer-batch", type=int, default=128, help="torchattacks inf_batch (its default: 128)")
    p.add_argument("--ablation", action="store_true", help="also run nnkit with fast=False")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="last line of stdout: one JSON object")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = get_device(args.device)
    os.environ.setdefault("NNKIT_OFFLINE", "1")
    info, model, dataset = load_or_train(args.run, device)
    split = dataset.split("test")
    pred = predict_logits(model, split.images).argmax(1)
    correct = (pred == split.labels).nonzero()[:, 0][: args.n]
    x, y = split.images[correct].to(device), split.labels[correct].to(device)
    peers = [q.strip() for q in args.peers.split(",") if q.strip() and q.strip() != "none"]

    versions = library_versions()
    for pkg in ("torchattacks", "adversarial-robustness-toolbox"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "absent"
    header = {"cpu": cpu_name(), "cores": os.cpu_count(), "device": describe_device(device),
              "threads": torch.get_num_threads(), "versions": versions, "run": info.run_id,
              "test_accuracy": info.meta.get("test_accuracy"), "n_images": int(x.shape[0]),
              "budget": {"pixels": args.pixels, "popsize": args.popsize, "generations": args.generations,
                         "untargeted": True}}
    print(f"hardware: {header['cpu']} ({header['cores']} cores), {header['device']}, {header['threads']} threads")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"model: {info.run_id} (test accuracy {header['test_accuracy']}), {x.shape[0]} correctly classified "
          f"test images, k={args.pixels}, population {args.popsize}, {args.generations} generations")

    runs = [("nnkit", lambda: run_nnkit(model, x, y, args, fast=True))]
    if args.ablation:
        runs.append(("nnkit (fast=False)", lambda: run_nnkit(model, x, y, args, fast=False)))
    for peer in peers:
        if peer == "torchattacks":
            runs.append((peer, lambda: run_torchattacks(model, x, y, args)))
        elif peer == "art":
            if args.popsize != 400:
                print("note: ART's population is fixed at 400", file=sys.stderr)
            runs.append((peer, lambda: run_art(model, x, y, args, dataset.num_classes)))
        else:
            raise SystemExit(f"unknown peer {peer!r}")
    rows = []
    for name, fn in runs:
        print(f"running {name} ...", file=sys.stderr)
        rows.append(fn())
        print(f"  {name}: {json.dumps(rows[-1])}", file=sys.stderr)

    print(f"\n{'library':<20}{'success':>9}{'s/image':>10}{'cpu s/image':>13}{'queries/img':>13}"
          f"{'median q/success':>18}")
    for r in rows:
        med = r["median_queries_per_success"]
        print(f"{r['library']:<20}{r['success_rate']:>9.3f}{r['seconds_per_image']:>10.3f}"
              f"{r['cpu_seconds_per_image']:>13.3f}{r['queries_per_image_mean']:>13.0f}"
              f"{(f'{med:.0f}' if med is not None else '-'):>18}")
    base, base_cpu = rows[0]["seconds_per_image"], rows[0]["cpu_seconds_per_image"]
    ratios = {r["library"]: r["seconds_per_image"] / base for r in rows[1:]}
    cpu_ratios = {r["library"]: r["cpu_seconds_per_image"] / base_cpu for r in rows[1:]}
    for name, ratio in ratios.items():
        print(f"nnkit is {ratio:.2f}x faster per image than {name} (wall clock; {cpu_ratios[name]:.2f}x in CPU time)")
    if args.json:
        print(json.dumps({**header, "results": rows, "speedup": ratios, "speedup_cpu_time": cpu_ratios}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
