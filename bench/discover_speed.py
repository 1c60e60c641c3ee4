"""How long `nnkit discover` takes on 200 images per class of a shapes cnn (issue 15: goal < 2 min on 2 CPU cores).

Trains the default cnn on `shapes` (3 epochs) into a temporary NNKIT_HOME unless --run names a stored run,
then times `nnkit discover RUN --all --n 200` end to end (data, maps, clustering, regions) in-process, and
prints the seconds with the hardware and library versions. A benchmark, not a test: the figure depends on
the machine and its load.

    python bench/discover_speed.py [--run RUN] [--repeats 1] [--threads 2] [--n 200]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", help="a stored shapes run (default: train the default cnn, 3 epochs, in a temp home)")
    p.add_argument("--repeats", type=int, default=1, help="timed runs (the spread is printed)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the goal is stated for 2 cores)")
    p.add_argument("--method", default="saliency")
    p.add_argument("--n", type=int, default=200, help="images per class (the goal is stated for 200; fewer: a smoke run)")
    args = p.parse_args()
    if not args.run:
        os.environ["NNKIT_HOME"] = tempfile.mkdtemp(prefix="nnkit-bench-")
    import sklearn
    import torch

    from nnkit.cli import main as nnkit_main

    torch.set_num_threads(args.threads)
    run = args.run
    if run is None:
        from nnkit.training import TrainConfig, train

        t0 = time.perf_counter()
        run = train(TrainConfig(data="shapes", model="cnn", epochs=3, device="cpu", seed=0, name="bench")).run_id
        print(f"trained {run} in {time.perf_counter() - t0:.0f} s (not part of the figure)")
    times = []
    for _ in range(max(1, args.repeats)):
        out = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out):
            code = nnkit_main(["discover", run, "--all", "--n", str(args.n), "--device", "cpu", "--method",
                               args.method, "--json"])
        times.append(time.perf_counter() - t0)
        if code != 0:
            print(f"nnkit discover failed with exit code {code}")
            return code
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    spread = f" (min {min(times):.1f}, max {max(times):.1f}, sd {statistics.stdev(times):.1f})" if len(times) > 1 else ""
    print(f"nnkit discover --all --n {args.n} ({args.method}, 10 classes, {10 * args.n:,} maps): "
          f"{statistics.median(times):.1f} s median of {len(times)}{spread}" + ("; goal < 120 s" if args.n == 200 else ""))
    print(f"hardware: {platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
          f"{torch.get_num_threads()} torch threads, load average {load:.1f}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
