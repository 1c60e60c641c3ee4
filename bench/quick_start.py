"""The Home page's quick start under CPU load: seconds, slowdown against idle, and slowdown ÷ fair share.

Runs the quick start as the dashboard does (``train_task`` on ``quick_start_config()`` in a
``JobManager`` job) first on the machine as it is, then beside N CPU-burning processes, and a bare
PyTorch loop doing the same optimiser steps under the same conditions. Each measurement runs in a
fresh child process, because OpenMP reads its wait policy once, when torch loads.

    python bench/quick_start.py [--load 4] [--load-kind python|torch] [--max-steps 100] [--quick]
                                [--compare-policy] [--repeats 1]

Fair share (issue 17's definition): Linux shares the cores between runnable threads, and an idle job runs one
thread per core, so beside T busy threads on C cores the job's C threads can expect C / (T + C) of the machine:
the fair slowdown is (T + C) / C. Four pure-Python loops on 2 cores: (4 + 2) / 2 = 3×; three torch processes of 2
threads: (6 + 2) / 2 = 4× (the issue's examples). The goal is slowdown ÷ fair ≤ 1.5.
``--compare-policy`` measures nnkit's thread policy ("after": OMP_WAIT_POLICY=PASSIVE, threads = free
cores) against the old defaults ("before": OpenMP's spinning wait, one thread per core) and the passive
wait alone ("passive": one thread per core) alternately in the same run, so the machine's noise is shared. ``--quick`` is a smoke run of a few seconds (CI).
Numbers on a machine other people use are noisy: the load average at the start is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PY_BURNER = "import time\nend = time.time() + {limit}\nwhile time.time() < end: pass\n"
# Another torch process of 2 threads (another user's training), with OpenMP's default wait policy.
TORCH_BURNER = ("import time, torch\ntorch.set_num_threads(2)\na = torch.randn(256, 256)\n"
                "end = time.time() + {limit}\nwhile time.time() < end: a = torch.tanh(a @ a / 256)\n")


BURNER_THREADS = {"python": 1, "torch": 2}  # busy threads per burner process


def fair_slowdown(load: int, kind: str, cores: int) -> float:
    """The slowdown a job of one thread per core can expect beside ``load`` burners of ``kind``.

    Args:
        load: burner processes; kind: "python" (1 busy thread each) or "torch" (2 each); cores: the job's cores.

    Returns:
        ``(busy threads + cores) / cores``, the job's threads and the burners' sharing the cores equally (1 when idle).
    """
    return (load * BURNER_THREADS[kind] + cores) / cores


# -- child processes: one measurement each ------------------------------------------------------
def worker(mode: str, what: str, max_steps: int | None, small_data: bool) -> dict:
    """One measurement in this (fresh) process; the parent reads the JSON line it prints.

    Args:
        mode: "after" (nnkit's policy), "before" (torch loaded before nnkit, so OpenMP keeps its
            spinning default, and one intra-op thread per core whatever the load) or "passive" (the
            passive wait policy alone, still one thread per core: separates the two halves of the policy).
        what: "nnkit" (the quick start as a dashboard job) or "bare" (a plain loop of the same steps).
        max_steps: stop after this many optimiser steps (None: the whole quick start).
        small_data: 2,000 + 400 images instead of 10,000 + 2,000 (same steps, less data generation).
    """
    if mode == "before":
        import torch  # noqa: F401  (loads libgomp before nnkit can set OMP_WAIT_POLICY)

        from nnkit.device import cpu_cores

        os.environ["NNKIT_THREADS"] = str(cpu_cores())
    elif mode == "passive":
        from nnkit.device import cpu_cores

        os.environ["NNKIT_THREADS"] = str(cpu_cores())
    import dataclasses

    import torch

    from nnkit.jobs import JobManager, quick_start_config, train_task

    config = dataclasses.replace(quick_start_config("cpu"), max_steps=max_steps,
                                 data_opts={"n_train": 2000, "n_test": 400} if small_data else {})
    if what == "nnkit":
        mgr = JobManager()
        view = mgr.wait(mgr.submit(train_task, kind="train", title="bench quick start", device="cpu",
                                   config=config))
        if view.error:
            raise SystemExit(f"error: {view.error}")
        r = view.result
        return {"job_seconds": r["job_seconds"], "train_seconds": r["seconds"], "accuracy": r["test_accuracy"],
                "threads": torch.get_num_threads(), "wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    return bare_loop(config)


def bare_loop(config) -> dict:
    """The reference: the textbook loop over on-device tensors, same model, batch, optimiser and steps."""
    import torch
    import torch.nn.functional as F

    from nnkit import data, models
    from nnkit.device import apply_thread_policy

    apply_thread_policy()  # the same thread choice as a job gets (NNKIT_THREADS included): the ratio compares loops
    torch.manual_seed(0)
    split = data.create("shapes", **config.data_opts).split("train")
    x, y = split.images, split.labels
    model = models.create("cnn", 10, 3, 32, **config.model_opts)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps = config.max_steps or config.epochs * -(-int(len(y) * (1 - config.val_fraction)) // config.batch_size)
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        perm = torch.randperm(len(y))
        for i in range(0, len(y), config.batch_size):
            idx = perm[i: i + config.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done >= steps:
                break
    return {"train_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}


def measure(mode: str, what: str, max_steps: int | None, small_data: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NNKIT_THREADS")}
    cmd = ([sys.executable, __file__, "--worker", mode, what] + (["--max-steps", str(max_steps)] if max_steps else [])
           + (["--small-data"] if small_data else []))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"error: the {mode}/{what} measurement failed: {(out.stderr or out.stdout).strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- the parent: loads, repeats, the table ------------------------------------------------------
def start_load(n: int, kind: str, limit: float) -> list[subprocess.Popen]:
    """N busy processes, each bounded to ``limit`` seconds even if this script is killed."""
    code = (PY_BURNER if kind == "python" else TORCH_BURNER).format(limit=limit)
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env) for _ in range(n)]
    time.sleep(1.0)  # let them get going (torch takes a moment to load)
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load", type=int, default=4, help="busy processes beside the quick start (0: idle only)")
    p.add_argument("--load-kind", choices=["python", "torch"], default="python",
                   help="pure-Python busy loops, or torch processes of 2 threads each")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps (default: the whole quick start)")
    p.add_argument("--small-data", action="store_true",
                   help="2,000 + 400 shapes images instead of 10,000 + 2,000 (with --max-steps: less data generation)")
    p.add_argument("--quick", action="store_true", help="smoke run: 20 steps, small data, load 1 (for CI)")
    p.add_argument("--compare-policy", action="store_true",
                   help="also measure the old thread defaults ('before'), alternating with nnkit's ('after')")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--worker", nargs=2, metavar=("MODE", "WHAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.max_steps, args.small_data)))
        return
    if args.quick:
        args.max_steps, args.load, args.small_data = args.max_steps or 20, min(args.load, 1), True

    from nnkit.device import cpu_cores, describe_device
    from nnkit.versions import library_versions

    cores = cpu_cores()
    modes = ["before", "passive", "after"] if args.compare_policy else ["after"]
    loads = [0] + ([args.load] if args.load > 0 else [])
    print(f"hardware: {platform.processor() or platform.machine()}, {cores} cores, {describe_device('cpu')}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(other work on this machine adds to the 'idle' numbers)")
    print(f"steps: {args.max_steps or 'the whole quick start'}; load: {args.load} {args.load_kind} processes; "
          f"repeats: {args.repeats}", flush=True)
    results: dict[tuple[int, str, str], list[dict]] = {}
    for load in loads:
        procs = start_load(load, args.load_kind, limit=3600) if load else []
        try:
            for r in range(args.repeats):
                for mode in modes:  # alternating, so the modes share the machine's drift
                    for what in ("nnkit", "bare"):
                        m = measure(mode, what, args.max_steps, args.small_data)
                        results.setdefault((load, mode, what), []).append(m)
                        print(f"  load {load} · {mode:6s} · {what:5s} · repeat {r + 1}: "
                              f"{m.get('job_seconds', m['train_seconds']):.1f} s "
                              f"(training {m['train_seconds']:.1f} s, {m['threads']} threads)", flush=True)
        finally:
            stop_load(procs)

    def med(load, mode, what, key="train_seconds"):
        return statistics.median(m[key] for m in results[(load, mode, what)])

    fair = fair_slowdown(args.load, args.load_kind, cores)
    print()
    print(f"{'policy':7s} {'load':>4s} {'job s':>7s} {'train s':>8s} {'bare s':>7s} {'÷ bare':>7s} "
          f"{'slowdown':>9s} {'fair':>5s} {'÷ fair':>7s} {'accuracy':>9s}")
    for mode in modes:
        for load in loads:
            job, train, bare = med(load, mode, "nnkit", "job_seconds"), med(load, mode, "nnkit"), med(load, mode, "bare")
            slow = job / med(0, mode, "nnkit", "job_seconds")
            f = fair_slowdown(load, args.load_kind, cores)
            acc = statistics.median(m["accuracy"] for m in results[(load, mode, "nnkit")])
            print(f"{mode:7s} {load:4d} {job:7.1f} {train:8.1f} {bare:7.1f} {train / bare:7.2f} {slow:8.2f}× "
                  f"{f:5.2f} {slow / f:7.2f} {acc:9.2%}")
    if args.load:
        print(f"\ngoal: slowdown ÷ fair share ≤ 1.5 at load {args.load} (fair share {fair:.2f}×)")
    if not args.max_steps and not args.small_data:
        acc = statistics.median(m["accuracy"] for m in results[(0, "after", "nnkit")])
        print(f"test accuracy {acc:.2%} (goal ≥ 95%): {'ok' if acc >= 0.95 else 'BELOW THE GOAL'}")


if __name__ == "__main__":
    main()
