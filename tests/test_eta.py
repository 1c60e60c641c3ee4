"""Live ETAs from measured progress (issue 17): the rate meter, the remembered rate, the thread policy,
and an ETA that holds while another process competes for the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from nnkit.device import apply_thread_policy, cpu_cores, cpu_threads
from nnkit.errors import NnkitError
from nnkit.jobs import JobManager, JobStatus, train_task
from nnkit.jobs.eta import RateMeter, format_rate, format_seconds, last_rate, remember_rate
from nnkit.training import TrainConfig

WAIT = 120


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_rate_and_eta_follow_the_recent_window():
    clock = Clock()
    meter = RateMeter(total=300, unit="steps", window=10, clock=clock)
    assert meter.rate() is None and meter.eta().text() == ""  # no guess before a measurement
    for step in range(1, 101):  # 10 steps/s for 10 s
        clock.t += 0.1
        meter.add(step)
    assert meter.rate() == pytest.approx(10, rel=1e-6)
    assert meter.eta().seconds_left == pytest.approx(20, rel=1e-6)  # 200 steps left at 10 steps/s
    for step in range(101, 151):  # the machine gets busy: 2 steps/s for 25 s
        clock.t += 0.5
        meter.add(step)
    # 25 s later the window (10 s) holds only the slow steps: the ETA shows the new load.
    assert meter.rate() == pytest.approx(2, rel=1e-6)
    assert meter.eta().seconds_left == pytest.approx(75, rel=1e-6)
    assert meter.eta().text() == "2 steps/s · 1 min 15 s left"
    assert meter.mean_rate() == pytest.approx(149 / 34.9, rel=1e-6)  # first report to last


def test_time_before_the_first_report_is_not_work_and_a_restart_measures_anew():
    clock = Clock()
    meter = RateMeter(total=10, unit="queries", clock=clock)
    clock.t = 30.0  # 30 s of loading before the first query
    meter.add(1)
    clock.t = 31.0
    meter.add(3)
    assert meter.rate() == pytest.approx(2)  # the loading time does not count
    clock.t = 32.0
    meter.add(0)  # a new phase counts from zero again
    assert meter.rate() is None


def test_formats():
    assert format_rate(14.234, "steps") == "14.2 steps/s"
    assert format_rate(1234.5, "queries") == "1,234 queries/s"
    assert format_rate(0.3127, "steps") == "0.31 steps/s"
    assert (format_seconds(42.4), format_seconds(185), format_seconds(3840)) == ("42 s", "3 min 5 s", "1 h 4 min")


def test_remembered_rate_is_read_back_by_key(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    assert last_rate("train/quick-start", "train") is None
    remember_rate("train", 14.0, "steps", 471, 40.0, "Train cnn")
    assert last_rate("train/quick-start", "train")["rate"] == 14.0  # falls back to the kind
    remember_rate("train/quick-start", 9.0, "steps", 471, 60.0, "Quick start")
    assert last_rate("train/quick-start", "train")["rate"] == 9.0  # the page slot is the closer match
    (tmp_path / "jobs" / "rates.json").write_text("{not json")
    assert last_rate("train") is None  # an unreadable file costs the estimate, never an error


def test_thread_policy(monkeypatch):
    monkeypatch.delenv("NNKIT_THREADS", raising=False)
    cores = cpu_cores()
    assert cpu_threads(load=0.0) == cores  # idle: every core
    assert cpu_threads(load=cores + 5.0) == 1  # busy: one thread, never zero
    monkeypatch.setenv("NNKIT_THREADS", "3")
    assert cpu_threads(load=100.0) == 3
    monkeypatch.setenv("NNKIT_THREADS", "zero")
    with pytest.raises(NnkitError, match="NNKIT_THREADS"):
        cpu_threads()
    before = torch.get_num_threads()
    try:
        assert apply_thread_policy(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_importing_nnkit_sets_a_passive_openmp_wait_policy():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", "import os, nnkit, torch; print(os.environ['OMP_WAIT_POLICY'])"],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert out.stdout.strip() == "PASSIVE"


def test_training_job_reports_steps_and_remembers_its_rate(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    mgr = JobManager()
    config = TrainConfig(data="shapes", data_opts={"n_train": 600, "n_test": 100}, model="cnn",
                         model_opts={"widths": [8, 16, 16], "hidden": 32}, epochs=1, batch_size=16, seed=0,
                         max_steps=30)
    view = mgr.wait(mgr.submit(train_task, kind="train", title="tiny", tag="quick-start", device="cpu",
                               config=config), WAIT)
    assert view.status is JobStatus.DONE, view.error
    assert view.eta is None  # a finished job shows its time, not an ETA
    last = last_rate("train/quick-start")
    assert last["unit"] == "steps" and last["total"] == 30 and last["rate"] > 0
    assert last_rate("train")["title"] == "tiny"


def _fixed_work_job(steps: int, size: int):
    """A job doing the same torch work each step (matrix products), reporting steps done."""

    def fn(ctx):
        a = torch.randn(size, size)
        for step in range(1, steps + 1):
            for _ in range(4):
                a = torch.tanh(a @ a.T / size)
            ctx.update(done=step, total=steps, unit="steps")
            ctx.check_cancelled()
        return {"steps": steps}

    return fn


def test_live_eta_at_a_quarter_holds_while_a_cpu_burner_competes(tmp_path, monkeypatch):
    """Acceptance (issue 17): with a CPU-burning process beside it, the ETA read at 25% of the work is
    within a factor of 1.5 of the time the rest really took."""
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    size = 160
    # Size the job from a short measurement (a job too, so with a job's threads), to last a few seconds anywhere.
    mgr = JobManager()
    mgr.wait(mgr.submit(_fixed_work_job(10, size), kind="synthetic", title="warm-up", device="cpu"), WAIT)
    timed = mgr.wait(mgr.submit(_fixed_work_job(100, size), kind="synthetic", title="timing", device="cpu"), WAIT)
    per_step = timed.seconds / 100
    steps = int(min(50_000, max(200, 3.0 / max(per_step, 1e-5))))  # about 3 s before, longer beside the burner
    burner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 60\n"
                               "while time.time() < end: pass"])  # bounded even if the test dies
    try:
        time.sleep(0.5)
        job_id = mgr.submit(_fixed_work_job(steps, size), kind="synthetic", title="fixed work", device="cpu")
        deadline = time.monotonic() + WAIT
        view = mgr.get(job_id)
        while not (view.progress >= 0.25 and view.eta is not None):
            assert time.monotonic() < deadline and not view.status.finished, f"never measured a rate at 25%: {view}"
            time.sleep(0.01)
            view = mgr.get(job_id)
        at_quarter = time.monotonic()
        eta = view.eta
        done = mgr.wait(job_id, WAIT)
        remaining = time.monotonic() - at_quarter
    finally:
        burner.kill()
        burner.wait()
    assert done.status is JobStatus.DONE, done.error
    assert eta.unit == "steps" and eta.done >= steps / 4
    ratio = eta.seconds_left / remaining
    assert 1 / 1.5 <= ratio <= 1.5, (f"ETA {eta.seconds_left:.2f} s at {eta.done:.0f}/{steps} steps, "
                                     f"really {remaining:.2f} s (ratio {ratio:.2f})")


def test_home_says_what_it_assumes_and_the_panel_shows_the_live_rate(tmp_path, monkeypatch):
    """Before the quick start: what the last one measured here (no fixed promise); while a job runs,
    its bar shows the rate it measures and the time left."""
    import threading
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from nnkit.jobs import get_manager
    from tests.apptest_helpers import ok

    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    entry = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
    at = AppTest.from_file(entry, default_timeout=120).run()
    ok(at)
    captions = " ".join(c.value for c in at.caption)
    assert "No quick start has run on this machine yet" in captions
    assert "half a minute" not in " ".join(m.value for m in at.markdown)
    remember_rate("train/quick-start", 14.0, "steps", 423, 41.0, "Quick start")
    at.run()
    assert "Based on the last quick start here: 14.0 steps/s, 423 steps in 41 s" in " ".join(c.value for c in at.caption)

    gate = threading.Event()

    def measured(ctx):
        for step in range(1, 4):
            ctx.update(done=step, total=40, unit="steps")
            time.sleep(0.3)
        gate.wait(WAIT)
        return {"run_id": None}

    job_id = get_manager().submit(measured, kind="train", title="measured", owner=at.session_state["nnkit_owner"],
                                  tag="quick-start", device="cpu")
    try:
        assert _until(lambda: get_manager().get(job_id).eta is not None)
        at.run()
        bar = at.get("progress")[0].proto.text
        assert "steps/s" in bar and "left" in bar, bar
    finally:
        gate.set()
        get_manager().wait(job_id, WAIT)


def _until(predicate, timeout=WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False
