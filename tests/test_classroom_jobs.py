"""Issue 17: every classroom job reports its progress in real units (steps, epochs, images, generations), so the
dashboard's bar shows a measured rate and ETA (``nnkit.jobs.eta``) rather than a bare fraction.

Each job runs with tiny settings against a recording context (what a job function sees of the JobManager).
"""

from __future__ import annotations

import threading

import pytest

from nnkit.jobs import classroom_tasks


class RecordingContext:
    """A JobContext stand-in that records every ``update`` with its units."""

    def __init__(self):
        self.device = "cpu"
        self.stop_event = threading.Event()
        self.updates: list[dict] = []
        self.metrics: list[dict] = []
        self.summary = None

    def update(self, progress=None, message=None, *, done=None, total=None, unit="steps"):
        self.updates.append({"progress": progress, "message": message, "done": done, "total": total, "unit": unit})

    def log_metrics(self, record):
        self.metrics.append(dict(record))

    def set_summary(self, text):
        self.summary = text

    def check_cancelled(self):
        pass

    def units(self) -> dict[str, list[tuple[float, float]]]:
        """{unit: [(done, total), ...]} of the updates that gave units, in order."""
        out: dict[str, list] = {}
        for u in self.updates:
            if u["done"] is not None and u["total"]:
                out.setdefault(u["unit"], []).append((u["done"], u["total"]))
        return out


def _check_units(ctx: RecordingContext, unit: str, total: float | None = None) -> list[tuple[float, float]]:
    """The job reported ``unit``: done never above total, never going back, and it reached the end."""
    seen = ctx.units()
    assert unit in seen, f"no progress in {unit}: {ctx.updates}"
    pairs = seen[unit]
    assert all(0 <= d <= t for d, t in pairs), pairs
    dones = [d for d, _ in pairs]
    assert dones == sorted(dones), dones
    assert pairs[-1][0] == pairs[-1][1], pairs[-1]  # the last report is the last unit
    if total is not None:
        assert pairs[-1][1] == total
    return pairs


@pytest.fixture(scope="module")
def tiny_cnn_run():
    from nnkit.training import TrainConfig, train

    return train(TrainConfig(data="shapes-confounded", data_opts={"n_train": 100, "n_test": 20}, epochs=1, seed=0,
                             device="cpu", name="classroom-jobs-cnn", **classroom_tasks.CONFOUNDED_RECIPE))


def test_autoencoder_job_reports_steps():
    ctx = RecordingContext()
    out = classroom_tasks.autoencoder_task(ctx, data="shapes", data_opts={"n_train": 64, "n_test": 8}, steps=20,
                                           show=2)
    _check_units(ctx, "steps", total=20)
    assert out["arch"] == "conv" and out["seconds"] > 0


def test_gan_job_reports_steps():
    ctx = RecordingContext()
    classroom_tasks.gan_task(ctx, steps=40, every=20, samples=50)
    _check_units(ctx, "steps", total=40)


def test_tricks_job_reports_epochs():
    ctx = RecordingContext()
    classroom_tasks.tricks_task(ctx, ["baseline", "dropout"], data="shapes", n_train=40, epochs=2)
    assert [d for d, _ in _check_units(ctx, "epochs", total=4)] == [1, 2, 3, 4]


def test_feature_maps_job_reports_images(tiny_cnn_run):
    ctx = RecordingContext()
    classroom_tasks.feature_maps_task(ctx, tiny_cnn_run.run_id, n_images=3, max_channels=2)
    assert [d for d, _ in _check_units(ctx, "images", total=3)] == [1, 2, 3]


def test_one_pixel_job_reports_generations(tiny_cnn_run):
    ctx = RecordingContext()
    classroom_tasks.one_pixel_task(ctx, run_id=tiny_cnn_run.run_id, n_images=20, max_images=2, popsize=4,
                                   generations=3)
    _check_units(ctx, "generations", total=3 + 1)  # the initial population counts as one


def test_tag_moved_job_reports_training_steps():
    ctx = RecordingContext()
    classroom_tasks.tag_moved_task(ctx, n=20, examples=1, n_train=64, epochs=1)
    pairs = _check_units(ctx, "steps")
    assert pairs[-1][1] == 1  # 64 images in batches of 64: one optimiser step


def test_tradeoff_job_reports_training_steps_then_pgd_steps(monkeypatch):
    from nnkit.classroom import brittleness

    monkeypatch.setattr(brittleness, "TRADEOFF_RECIPE", dict(
        brittleness.TRADEOFF_RECIPE, data_opts={"n_train": 70, "n_test": 10}, epochs=1,
        model_opts={"widths": [4, 4, 4], "hidden": 4, "dropout": 0.0}))
    monkeypatch.setattr(brittleness, "TRADEOFF_NAMES", {"standard": "jobs-standard", "adversarial": "jobs-adversarial"})
    monkeypatch.setattr(brittleness, "TRADEOFF_DEFENCE", dict(brittleness.TRADEOFF_DEFENCE, adv_warmup=0))  # 1 epoch
    ctx = RecordingContext()
    out = classroom_tasks.tradeoff_task(ctx, n=10, steps=2, show=2)
    # Both models train (one step each: 63 images after validation, batches of 64), then 2 × 5 budgets × 2 steps.
    assert _check_units(ctx, "steps", total=2)[-1] == (2, 2)
    assert _check_units(ctx, "PGD steps", total=20)
    assert [m.trained_now for m in out["report"].models] == [True, True]
    again = RecordingContext()
    out = classroom_tasks.tradeoff_task(again, n=10, steps=2, show=2)
    assert "steps" not in again.units() and [m.trained_now for m in out["report"].models] == [False, False]
