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
    every = None

    def on_progress(p: Progress) -> None:
        nonlocal every
        if every is None:
            every = max(1, p.total_steps // MAX_CURVE_POINTS)
        if p.kind == "batch":
            ctx.update(0.02 + 0.95 * p.step / p.total_steps,
                       f"epoch {p.epoch}/{p.epochs} · step {p.step}/{p.total_steps} · loss {p.loss:.3f}")
            if p.step % every == 0 or p.step == 1:
                ctx.log_metrics({"step": p.step, "epoch": p.epoch, "loss": p.loss})
        else:
            ctx.log_metrics({"step": p.step, **p.metrics})
            if p.step >= p.total_steps or p.epoch == p.epochs:
                ctx.update(message="evaluating on the test split and saving the run")

    result = train(config, on_progress=on_progress, stop_event=ctx.stop_event)
    job_seconds = time.perf_counter() - t0
    ctx.set_summary(f"done: test accuracy {result.test_accuracy:.1%} in {job_seconds:.0f} s")
    return {"run_id": result.run_id, "test_accuracy": result.test_accuracy, "seconds": result.seconds,
            "job_seconds": job_seconds, "seed": result.seed, "epochs_run": len(result.history),
            "stopped_early": result.stopped_early}
