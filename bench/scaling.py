"""Data-parallel scaling of ``nnkit train`` on torch.distributed: images/s at 1, 2 and N processes.

Each point is ``python -m nnkit train --nproc P --json`` in a fresh process on this machine (gloo on
CPU, one GPU per process on CUDA), with the same global batch, data and seed, CPU threads shared out
(OMP_NUM_THREADS = cores / P). Throughput is training images per second over the optimiser steps
(the per-epoch seconds the run records, with no validation split, so no evaluation inside them;
the first epoch, which pays one-off warm-up costs, is left out when there are more).
Prints each point (median and spread over the repeats), the scaling efficiency
throughput(P) / (P × throughput(1)), the hardware and the library versions.

    python bench/scaling.py [--nprocs 1,2,4] [--device cpu] [--n-train 4000] [--epochs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nnkit.device import describe_device  # noqa: E402
from nnkit.versions import library_versions  # noqa: E402


def one_point(nproc: int, args, home: str) -> float:
    """Images/s of one ``nnkit train --nproc P`` run (training steps only)."""
    threads = args.threads or max(1, (os.cpu_count() or 1) // nproc)
    env = dict(os.environ, NNKIT_HOME=home, NNKIT_OFFLINE="1", OMP_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "nnkit", "train", "--nproc", str(nproc), "--data", "shapes",
           "--data-opt", f"n_train={args.n_train}", "--data-opt", "n_test=200", "--model", "cnn",
           "--model-opt", f"widths={args.widths}", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
           "--val-fraction", "0", "--seed", "0", "--json"]
    if args.device:
        cmd += ["--device", args.device]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise SystemExit(f"error: {nproc} processes failed: {proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # The first epoch pays one-off costs (kernel selection, allocator warm-up): timed only when it is the only one.
    timed = out["history"][1:] or out["history"]
    return args.n_train * len(timed) / sum(record["seconds"] for record in timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nprocs", default=f"1,2,{max(2, os.cpu_count() or 1)}",
                        help="process counts, the first must be 1 (default: 1,2,cores)")
    parser.add_argument("--device", help="cpu or cuda (default: nnkit's choice)")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the first is not timed")
    parser.add_argument("--batch-size", type=int, default=128, help="the global batch")
    parser.add_argument("--widths", default="24,48,96", help="cnn widths (default: the default cnn)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--threads", type=int, help="CPU threads per process (default: cores / processes); on a "
                        "loaded machine OpenMP threads that wait on each other can make one process far slower")
    args = parser.parse_args()
    nprocs = sorted({int(p) for p in args.nprocs.split(",")})
    if nprocs[0] != 1:
        raise SystemExit("error: --nprocs must include 1 (the reference of the efficiency)")
    results: dict[int, list[float]] = {p: [] for p in nprocs}
    with tempfile.TemporaryDirectory() as home:
        for _ in range(args.repeats):  # alternate the points so machine noise falls on all of them
            for p in nprocs:
                results[p].append(one_point(p, args, home))
    base = statistics.median(results[1])
    print(f"nnkit train on shapes (n_train={args.n_train}, cnn widths {args.widths}, global batch {args.batch_size}, "
          f"{args.epochs} epoch(s), the first not timed), {args.repeats} repeat(s) per point, "
          f"{args.threads or 'cores / processes'} thread(s) per process")
    print(f"{'processes':>9}  {'images/s (median)':>17}  {'min..max':>15}  {'speed-up':>8}  {'efficiency':>10}")
    for p in nprocs:
        med = statistics.median(results[p])
        print(f"{p:>9}  {med:>17.0f}  {min(results[p]):>7.0f}..{max(results[p]):<7.0f}  {med / base:>8.2f}  "
              f"{med / (p * base):>10.2f}")
    print(f"hardware: {describe_device(args.device)}; {os.cpu_count()} logical cores; {platform.platform()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))


if __name__ == "__main__":
    main()
