"""The GAN page's default recipe: seconds, classes covered, Fréchet distance, ÷ a bare DCGAN loop, ÷ fair share.

Runs what the GAN page starts with its defaults (``gan_task`` on the page's GanConfig in a ``JobManager``
job, a fresh run store, so the judge is trained as for a first-time user), then a bare DCGAN loop (the same
networks, batch and Adam settings, the same number of steps; no EMA, scoring, grids or logging) under the
same conditions: first on the machine as it is, then beside N CPU-burning processes (``--load N``). Each
measurement runs in a fresh child process, as in ``bench/quick_start.py`` (OpenMP reads its wait policy once).

    python bench/gan_default.py [--load 4] [--time-limit 180] [--epochs 20] [--quick]

Printed: wall and CPU (process) seconds of the job, of its judge and of its GAN loop, steps and epochs done,
why it stopped, classes covered and Fréchet distance; seconds per GAN step against the bare loop's; the
slowdown of a GAN step under load against idle, and that slowdown ÷ the fair-share slowdown
(busy threads + cores) / cores (``quick_start.fair_slowdown``). CPU seconds are less sensitive to other work
than wall seconds, so the choice of defaults reads them. ``--quick`` is a smoke run of a few seconds on tiny data and networks (CI).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quick_start import fair_slowdown, start_load, stop_load  # noqa: E402  (the quick-start bench's burners)

from nnkit.gan.config import PAGE_TIME_LIMIT  # noqa: E402  (the GAN page's default time limit)
from nnkit.gan.train import RECOGNISABLE_SHARE  # noqa: E402

QUICK = dict(data_opts={"n_train": 200, "n_test": 100}, g_width=8, d_width=8, epochs=1, max_steps=10,
             n_eval=32, judge_epochs=1)


def recognisable_at(job: dict) -> tuple[int, float] | None:
    """The first scored epoch at which the judge covered RECOGNISABLE_SHARE of the classes, with its GAN CPU-seconds."""
    for epoch, covered, cpu in job["coverage_by_epoch"]:
        if covered is not None and covered >= RECOGNISABLE_SHARE * job["num_classes"]:
            return epoch, cpu
    return None


def page_config(args):
    """The GanConfig the GAN page submits with its defaults (or the tiny one of ``--quick``)."""
    from nnkit.gan import GanConfig
    from nnkit.jobs.generative_tasks import default_gan_dataset

    if args.quick:
        return GanConfig(data="shapes", seed=0, **QUICK)
    return GanConfig(data=default_gan_dataset(), epochs=args.epochs or GanConfig.epochs,
                     time_limit=args.time_limit or None, seed=0)


def worker_nnkit(args) -> dict:
    """The page's job in this process, in a fresh store; wall and CPU seconds of each part."""
    import torch

    from nnkit.jobs import JobManager
    from nnkit.jobs.generative_tasks import gan_task
    from nnkit.runs import RunStore

    config = page_config(args)
    cpu0 = time.process_time()
    mgr = JobManager()
    view = mgr.wait(mgr.submit(gan_task, kind="gan", title="bench GAN defaults", device="cpu", config=config))
    if view.error:
        raise SystemExit(f"error: {view.error}")
    r = view.result
    meta = RunStore().get(r["run_id"]).meta
    history = RunStore().get(r["run_id"]).metrics()
    return {"data": config.data, "job_seconds": r["job_seconds"], "cpu_seconds": time.process_time() - cpu0,
            "judge_seconds": meta["judge"]["seconds"], "gan_seconds": meta["train_seconds"],
            "gan_cpu_seconds": history[-1]["cpu_seconds"], "steps": r["steps"], "epochs_done": r["epochs_done"],
            "epochs_planned": r["epochs_planned"], "stopped_by": r["stopped_by"],
            "classes_covered": r["classes_covered"], "num_classes": r["num_classes"],
            "frechet_distance": r["frechet_distance"], "note": r["note"], "threads": torch.get_num_threads(),
            "coverage_by_epoch": [(h["epoch"], h.get("classes_covered"), round(h["cpu_seconds"], 1))
                                  for h in history]}


def worker_bare(args) -> dict:
    """The reference: the textbook DCGAN loop with the same networks, data, batch and Adam, ``args.steps`` steps."""
    import torch
    import torch.nn.functional as F

    from nnkit.device import apply_thread_policy
    from nnkit.gan import Discriminator, Generator
    from nnkit.gan.train import discriminator_spec, generator_spec
    from nnkit.training import TrainConfig, load_data

    apply_thread_policy()  # the thread choice a job gets, so the ratio compares the loops only
    config = page_config(args)
    torch.manual_seed(0)
    dataset = load_data(TrainConfig(data=config.data, data_opts=dict(config.data_opts)))
    x = dataset.split("train").images.mul(2).sub(1)
    gen, disc = Generator(**generator_spec(config, dataset)), Discriminator(**discriminator_spec(config, dataset))
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    batch = min(config.batch_size, len(x))
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    t0, cpu0 = time.perf_counter(), time.process_time()
    done = 0
    while done < args.steps:
        perm = torch.randperm(len(x))
        for i in range(len(x) // batch):
            real = x[perm[i * batch:(i + 1) * batch]]
            fake = gen(torch.randn(batch, config.latent_dim))
            loss_d = (F.binary_cross_entropy_with_logits(disc(real), ones)
                      + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(disc(fake), ones)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            done += 1
            if done >= args.steps:
                break
    return {"gan_seconds": time.perf_counter() - t0, "gan_cpu_seconds": time.process_time() - cpu0,
            "steps": done, "threads": torch.get_num_threads()}


def measure(what: str, args, home: str, steps: int = 0) -> dict:
    cmd = [sys.executable, __file__, "--worker", what, "--steps", str(steps), "--epochs", str(args.epochs or 0),
           "--time-limit", str(args.time_limit)] + (["--quick"] if args.quick else [])
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NNKIT_THREADS")}
    env["NNKIT_HOME"] = home  # a fresh store: the judge is trained as for a first-time user
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"error: the {what} measurement failed: {(out.stderr or out.stdout).strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--load", type=int, default=0, help="busy processes beside the GAN (0: the machine as it is)")
    p.add_argument("--load-kind", choices=["python", "torch"], default="python")
    p.add_argument("--time-limit", type=float, default=PAGE_TIME_LIMIT, help="seconds (0: none; default: the page's)")
    p.add_argument("--epochs", type=int, default=None, help="planned epochs (default: GanConfig's)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data and networks, 10 steps (CI)")
    p.add_argument("--worker", choices=["nnkit", "bare"], help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker_nnkit(args) if args.worker == "nnkit" else worker_bare(args)))
        return

    from nnkit.device import cpu_cores, describe_device
    from nnkit.versions import library_versions

    cores = cpu_cores()
    load_before = os.getloadavg()[0]
    print(f"hardware: {platform.processor() or platform.machine()}, {cores} cores, {describe_device('cpu')}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in library_versions().items()))
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(other work on this machine adds to the 'idle' numbers)")
    limit = "none" if args.quick or not args.time_limit else f"{args.time_limit:g} s"
    print(f"recipe: {'--quick (tiny, 10 steps at most)' if args.quick else 'the GAN page defaults'}; time limit "
          f"{limit}; load: {args.load} {args.load_kind} processes", flush=True)
    loads = [0] + ([args.load] if args.load > 0 else [])
    rows = {}
    for load in loads:
        procs = start_load(load, args.load_kind, limit=3600) if load else []
        try:
            with tempfile.TemporaryDirectory(prefix="nnkit-bench-gan-") as home:
                job = measure("nnkit", args, home)
                bare = measure("bare", args, home, steps=job["steps"])
        finally:
            stop_load(procs)
        rows[load] = (job, bare)
        print(f"\nload {load}: {job['data']}, {job['threads']} threads")
        print(f"  job {job['job_seconds']:.1f} s wall, {job['cpu_seconds']:.1f} s CPU; judge {job['judge_seconds']:.1f} s"
              f" wall; GAN loop {job['gan_seconds']:.1f} s wall, {job['gan_cpu_seconds']:.1f} s CPU")
        print(f"  {job['steps']} steps, {job['epochs_done']} of {job['epochs_planned']} epochs, stopped by "
              f"{job['stopped_by']}; {job['classes_covered']}/{job['num_classes']} classes covered, Fréchet distance "
              f"{job['frechet_distance']:.1f}")
        print("  (epoch, classes covered, GAN CPU s): "
              + ", ".join(f"({e}, {c}, {s})" for e, c, s in job["coverage_by_epoch"]))
        first = recognisable_at(job)
        print(f"  recognisable (>= {RECOGNISABLE_SHARE:.0%} of the classes covered): "
              + (f"first at epoch {first[0]}, after {first[1]:.1f} GAN CPU-seconds" if first else "not reached"))
        if job["note"]:
            print(f"  page says: {job['note']}")
        print(f"  bare DCGAN loop, same {bare['steps']} steps: {bare['gan_seconds']:.1f} s wall, "
              f"{bare['gan_cpu_seconds']:.1f} s CPU")

    job, bare = rows[0]
    first = recognisable_at(job)
    reached = (f"≥ {RECOGNISABLE_SHARE:.0%} of the classes first covered at epoch {first[0]} ({first[1]:.0f} GAN "
               "CPU-s)" if first else f"never ≥ {RECOGNISABLE_SHARE:.0%} of the classes covered")
    summary = (f"README: bench/gan_default.py{' --quick' if args.quick else ''} on {job['data']}, "
               f"{describe_device('cpu').split(' (')[0].removeprefix('cpu: ')}, {cores} cores, load average "
               f"{load_before:.1f} at the start: {'the smoke recipe' if args.quick else 'the page defaults'} did "
               f"{job['epochs_done']} of {job['epochs_planned']} epochs ({job['steps']} "
               f"steps, stopped by {job['stopped_by']}) in {job['job_seconds']:.0f} s wall ({job['cpu_seconds']:.0f} "
               f"CPU-s), the judge {job['judge_seconds']:.0f} s of it; {reached}; final {job['classes_covered']}/"
               f"{job['num_classes']} classes, Fréchet distance {job['frechet_distance']:.0f}; "
               f"{(job['gan_seconds'] / job['steps']) / (bare['gan_seconds'] / bare['steps']):.2f}× the bare loop's "
               "wall time per step.")
    print(f"\n{'load':>4s} {'job s':>7s} {'GAN s/step':>11s} {'bare s/step':>12s} {'÷ bare':>7s} {'slowdown':>9s} "
          f"{'fair':>5s} {'÷ fair':>7s} {'classes':>8s} {'FD':>8s}")
    idle_step = rows[0][0]["gan_seconds"] / rows[0][0]["steps"]
    for load, (job, bare) in rows.items():
        step = job["gan_seconds"] / job["steps"]
        bare_step = bare["gan_seconds"] / bare["steps"]
        slow = step / idle_step
        fair = fair_slowdown(load, args.load_kind, cores)
        print(f"{load:4d} {job['job_seconds']:7.1f} {step:11.4f} {bare_step:12.4f} {step / bare_step:7.2f} "
              f"{slow:8.2f}× {fair:5.2f} {slow / fair:7.2f} {job['classes_covered']:>5d}/{job['num_classes']:<2d} "
              f"{job['frechet_distance']:8.1f}")
    print("\n" + summary)


if __name__ == "__main__":
    main()
