"""Job functions for the dashboard's long work (each runs in a JobManager worker, see ``manager.py``).

A job function takes the JobContext first, passes ``ctx.stop_event`` and ``ctx.device`` on to one
library call, turns that call's progress events into ``ctx.update``/``ctx.log_metrics`` and returns a
small dict (the run id and a summary): the run itself is in the run store.
"""

from __future__ import annotations

import dataclasses
import time

from nnkit.jobs.manager import JobContext
from nnkit.training import Progress, TrainConfig, load_data, train

MAX_CURVE_POINTS = 300  # batch-loss points kept per training job: enough for a smooth live curve


def quick_start_config(device: str | None = None) -> TrainConfig:
    """The dashboard's one-click "Quick start": a small CNN on ``shapes`` (about 30-40 s on a laptop CPU).

    Narrower conv stages than the default cnn (16-32-64 instead of 24-48-96) make each step about
    three times cheaper; three epochs on the 10,000 training images still give a model worth attacking.

    Args:
        device: where to train (None: auto).

    Returns:
        The TrainConfig (name "quick-start", seed 0, so repeated quick starts give the same model).
    """
    return TrainConfig(data="shapes", model="cnn", model_opts={"widths": [16, 32, 64], "hidden": 128},
                       epochs=3, batch_size=64, lr=3e-3, seed=0, device=device, name="quick-start")


def _progress_to(ctx: JobContext):
    """A training ``on_progress`` callback that shows progress on the job and keeps its live history."""
    every = None

    def on_progress(p: Progress) -> None:
        nonlocal every
        if every is None:
            every = max(1, p.total_steps // MAX_CURVE_POINTS)
        if p.kind == "batch":
            ctx.update(0.02 + 0.95 * p.step / p.total_steps,
                       f"epoch {p.epoch}/{p.epochs} · step {p.step}/{p.total_steps} · loss {p.loss:.3f}",
                       done=p.step, total=p.total_steps, unit="steps")
            if p.step % every == 0 or p.step == 1:
                ctx.log_metrics({"step": p.step, "epoch": p.epoch, "loss": p.loss, **p.metrics})
        else:
            ctx.log_metrics({"step": p.step, **p.metrics})
            if p.step >= p.total_steps or p.epoch == p.epochs:
                ctx.update(message="evaluating on the test split and saving the run")

    return on_progress


def distributed_train_task(ctx: JobContext, config: TrainConfig | dict, nproc: int) -> dict:
    """Train data-parallel on ``nproc`` processes of this machine, as a job: ``nnkit train --nproc N``.

    The processes run under torch's launcher in a child process (its agent needs a main thread of its
    own). Rank 0 appends every progress event to a JSON-lines file that this job follows, so the job
    shows the same live progress and history as :func:`train_task`; a cancel stops the launcher
    (SIGTERM reaches every rank, which removes the partial run) and raises ``Cancelled``.

    Args:
        ctx: the job context; ``ctx.device`` overrides ``config.device`` (cpu: gloo; cuda: one GPU per process).
        config: a TrainConfig (or its dict); it is copied, never changed.
        nproc: the number of processes (>= 1).

    Returns:
        The dict of :func:`train_task`, plus ``nproc``.
    """
    import json
    import os
    import signal
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from nnkit.cli.train import train_argv
    from nnkit.errors import Cancelled, NnkitError
    from nnkit.jobs.manager import one_line

    t0 = time.perf_counter()
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config = dataclasses.replace(config, device=ctx.device, model_opts=dict(config.model_opts),
                                 data_opts=dict(config.data_opts)).validate()
    nproc = int(nproc)
    if nproc < 1:
        raise NnkitError(f"need at least one process, got {nproc}")
    ctx.update(0.0, f"starting {nproc} processes")
    on_progress = _progress_to(ctx)
    with tempfile.TemporaryDirectory(prefix="nnkit-ddp-") as tmp:
        events = Path(tmp) / "progress.jsonl"
        err_path = Path(tmp) / "stderr.txt"
        env = dict(os.environ, NNKIT_PROGRESS_JSONL=str(events))
        cmd = [sys.executable, "-m", "nnkit", *train_argv(config), "--nproc", str(nproc), "--json"]
        with open(err_path, "w") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                                    start_new_session=True)
            seen = 0
            out_chunks: list[str] = []
            try:
                while True:
                    try:
                        out, _ = proc.communicate(timeout=0.5)
                        out_chunks.append(out or "")
                        done = True
                    except subprocess.TimeoutExpired:
                        done = False
                    if events.exists():
                        lines = events.read_text().splitlines()
                        # The last line may still be being written: read only complete lines.
                        complete = lines if events.read_text().endswith("\n") else lines[:-1]
                        for line in complete[seen:]:
                            on_progress(Progress(**json.loads(line)))
                        seen = max(seen, len(complete))
                    if done:
                        break
                    if ctx.stop_event.is_set():
                        proc.send_signal(signal.SIGTERM)  # the launcher passes it on to every rank
                        proc.wait(timeout=60)
                        raise Cancelled("training cancelled")
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if proc.returncode != 0:
            errors = [line[len("error: "):] for line in err_path.read_text().splitlines() if line.startswith("error: ")]
            raise NnkitError(one_line(errors[0] if errors else f"the {nproc} processes failed "
                                      f"(exit code {proc.returncode})"))
    summary = json.loads("".join(out_chunks).strip().splitlines()[-1])
    job_seconds = time.perf_counter() - t0
    ctx.set_summary(f"done on {nproc} processes: test accuracy {summary['test_accuracy']:.1%} in {job_seconds:.0f} s")
    return {"run_id": summary["run_id"], "test_accuracy": summary["test_accuracy"], "seconds": summary["seconds"],
            "job_seconds": job_seconds, "seed": summary["seed"], "epochs_run": summary["epochs_run"],
            "stopped_early": summary["stopped_early"], "nproc": nproc}


def train_task(ctx: JobContext, config: TrainConfig | dict) -> dict:
    """Train a classifier as a job: live progress, a live loss/accuracy history and cancel within one batch.

    Args:
        ctx: the job context; ``ctx.device`` overrides ``config.device`` (the job's lane is its device).
        config: a TrainConfig (or its dict); it is copied, never changed.

    Returns:
        ``{"run_id", "test_accuracy", "seconds", "job_seconds", "seed", "epochs_run", "stopped_early"}``
        (``seconds``: training as recorded in the run; ``job_seconds``: the whole job, data included).
        The metrics history holds batch records ``{"step", "epoch", "loss"}`` (at most ~300 of them) and
        the epoch records of ``nnkit.training.train`` (``train_loss``, ``train_accuracy``, ``val_*``).
    """
    t0 = time.perf_counter()
    if isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config = dataclasses.replace(config, device=ctx.device, model_opts=dict(config.model_opts),
                                 data_opts=dict(config.data_opts)).validate()
    ctx.update(0.0, f"preparing {config.data} data")
    # Build the dataset first (train() then takes it from the dataset cache), so that a cancel
    # during the few seconds of data generation acts before training begins.
    load_data(config)
    ctx.check_cancelled()
    result = train(config, on_progress=_progress_to(ctx), stop_event=ctx.stop_event)
    job_seconds = time.perf_counter() - t0
    ctx.set_summary(f"done: test accuracy {result.test_accuracy:.1%} in {job_seconds:.0f} s")
    return {"run_id": result.run_id, "test_accuracy": result.test_accuracy, "seconds": result.seconds,
            "job_seconds": job_seconds, "seed": result.seed, "epochs_run": len(result.history),
            "stopped_early": result.stopped_early}
