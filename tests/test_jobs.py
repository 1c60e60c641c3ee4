"""The background job system: progress, live metrics, results, errors, cancel, queueing, owners."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from nnkit.errors import NnkitError
from nnkit.jobs import JobManager, JobStatus, get_manager, lane_of, one_line, quick_start_config, train_task
from nnkit.runs import RunStore
from nnkit.training import TrainConfig

WAIT = 60  # generous upper bound for anything that should take well under a second on an idle machine


def _until(predicate, timeout=WAIT, every=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return False


def _gated(gate: threading.Event, started: threading.Event | None = None, result="ok"):
    """A job that reports progress, then waits for ``gate`` (or a cancel) before returning."""

    def fn(ctx, **kwargs):
        ctx.update(0.25, "a quarter")
        ctx.log_metrics({"step": 1, "loss": 2.0})
        if started is not None:
            started.set()
        while not gate.wait(0.01):
            ctx.check_cancelled()
        ctx.update(0.75, "three quarters")
        return {"result": result, **kwargs}

    return fn


def test_progress_metrics_and_result():
    mgr = JobManager()
    gate, started = threading.Event(), threading.Event()
    job_id = mgr.submit(_gated(gate, started), kind="demo", title="Demo job", owner="a", device="cpu", x=3)
    assert started.wait(WAIT)
    view = mgr.get(job_id)
    assert view.status is JobStatus.RUNNING and view.active
    assert view.progress == pytest.approx(0.25) and view.message == "a quarter"
    assert view.metrics == ({"step": 1, "loss": 2.0},)
    assert view.lane == "cpu" and view.kind == "demo" and view.title == "Demo job"
    gate.set()
    done = mgr.wait(job_id, WAIT)
    assert done.status is JobStatus.DONE and not done.active
    assert done.result == {"result": "ok", "x": 3}
    assert done.progress == 1.0 and done.error is None
    assert done.seconds is not None and done.seconds >= 0


def test_snapshots_are_consistent_copies():
    mgr = JobManager()
    gate, started = threading.Event(), threading.Event()
    job_id = mgr.submit(_gated(gate, started), kind="demo", title="t", device="cpu")
    assert started.wait(WAIT)
    before = mgr.get(job_id)
    gate.set()
    mgr.wait(job_id, WAIT)
    assert before.status is JobStatus.RUNNING  # an old snapshot does not change under the reader


def test_nnkit_error_is_one_line_without_traceback(caplog):
    def bad_input(ctx):
        raise NnkitError("unknown model 'nope': choose one of mlp, cnn")

    mgr = JobManager()
    with caplog.at_level(logging.INFO, logger="nnkit.jobs"):
        view = mgr.wait(mgr.submit(bad_input, kind="demo", title="t", device="cpu"), WAIT)
    assert view.status is JobStatus.FAILED
    assert view.error == "unknown model 'nope': choose one of mlp, cnn"
    assert not any(r.exc_info for r in caplog.records)  # user errors are not logged as crashes


def test_unexpected_error_logs_traceback_and_shows_one_line(caplog):
    def crash(ctx):
        raise ValueError("boom\nsecond line of detail")

    mgr = JobManager()
    with caplog.at_level(logging.ERROR, logger="nnkit.jobs"):
        view = mgr.wait(mgr.submit(crash, kind="demo", title="Crashy", device="cpu"), WAIT)
    assert view.status is JobStatus.FAILED
    assert view.error.startswith("ValueError: boom") and "\n" not in view.error
    assert "Traceback" not in view.error and "server log" in view.error
    crashes = [r for r in caplog.records if r.exc_info]
    assert crashes and crashes[0].exc_info[0] is ValueError  # the traceback is in the log


def test_bad_train_config_fails_cleanly():
    mgr = JobManager()
    view = mgr.wait(mgr.submit(train_task, kind="train", title="t", device="cpu",
                               config=TrainConfig(model="no-such-model", data_opts={"n_train": 100, "n_test": 50})),
                    WAIT)
    assert view.status is JobStatus.FAILED
    assert "unknown model 'no-such-model'" in view.error


def test_cancel_a_running_job():
    mgr = JobManager()
    gate, started = threading.Event(), threading.Event()
    job_id = mgr.submit(_gated(gate, started), kind="demo", title="t", device="cpu")
    assert started.wait(WAIT)
    assert mgr.cancel(job_id).cancel_requested
    view = mgr.wait(job_id, WAIT)
    assert view.status is JobStatus.CANCELLED and view.result is None


def test_cancel_after_the_work_finished_keeps_the_result():
    def ignores_cancel(ctx, gate):
        gate.wait(WAIT)
        return 42

    mgr = JobManager()
    gate = threading.Event()
    job_id = mgr.submit(ignores_cancel, kind="demo", title="t", device="cpu", gate=gate)
    assert _until(lambda: mgr.get(job_id).status is JobStatus.RUNNING)
    mgr.cancel(job_id)
    gate.set()
    view = mgr.wait(job_id, WAIT)
    assert view.status is JobStatus.DONE and view.result == 42
    assert "before the cancel took effect" in view.message


def test_heavy_jobs_queue_per_device_and_say_so():
    mgr = JobManager()
    gate1, started1 = threading.Event(), threading.Event()
    gate2, started2 = threading.Event(), threading.Event()
    first = mgr.submit(_gated(gate1, started1), kind="demo", title="first", owner="a", device="cpu")
    assert started1.wait(WAIT)
    second = mgr.submit(_gated(gate2, started2), kind="demo", title="second", owner="b", device="cpu")
    waiting = mgr.get(second)
    assert waiting.status is JobStatus.QUEUED and waiting.queue_position == 1
    assert "waiting for cpu" in waiting.message and "1 job ahead" in waiting.message
    assert not started2.wait(0.2)  # one heavy job per device: the second one really waits
    assert mgr.lane_load("cpu") == 2 and mgr.lane_load("cpu", exclude_owner="b") == 1
    gate1.set()
    assert started2.wait(WAIT)
    assert mgr.get(first).status is JobStatus.DONE
    gate2.set()
    assert mgr.wait(second, WAIT).status is JobStatus.DONE


def test_light_jobs_do_not_wait_for_the_device():
    mgr = JobManager()
    gate, started = threading.Event(), threading.Event()
    heavy = mgr.submit(_gated(gate, started), kind="demo", title="heavy", device="cpu")
    assert started.wait(WAIT)
    light = mgr.submit(lambda ctx: "quick", kind="report", title="light", device="cpu", heavy=False)
    assert mgr.wait(light, WAIT).result == "quick"
    assert mgr.get(heavy).status is JobStatus.RUNNING
    gate.set()
    mgr.wait(heavy, WAIT)


def test_cancelling_a_queued_job_never_runs_it():
    mgr = JobManager()
    gate, started = threading.Event(), threading.Event()
    calls = []
    blocker = mgr.submit(_gated(gate, started), kind="demo", title="blocker", device="cpu")
    assert started.wait(WAIT)
    queued = mgr.submit(lambda ctx: calls.append(1), kind="demo", title="queued", device="cpu")
    third = mgr.submit(lambda ctx: "third", kind="demo", title="third", device="cpu")
    assert "2 jobs ahead" in mgr.get(third).message
    view = mgr.cancel(queued)
    assert view.status is JobStatus.CANCELLED and not view.active
    assert "1 job ahead" in mgr.get(third).message  # the queue message follows the queue
    gate.set()
    assert mgr.wait(third, WAIT).result == "third"
    mgr.wait(blocker, WAIT)
    assert calls == []


def test_owners_see_only_their_own_jobs():
    mgr = JobManager()
    a = mgr.submit(lambda ctx: 1, kind="demo", title="a's", owner="a", device="cpu")
    b = mgr.submit(lambda ctx: 2, kind="demo", title="b's", owner="b", device="cpu", tag="panel")
    shared = mgr.submit(lambda ctx: 3, kind="demo", title="everybody's", device="cpu")
    for job_id in (a, b, shared):
        mgr.wait(job_id, WAIT)
    assert {v.id for v in mgr.list(owner="a")} == {a, shared}
    assert {v.id for v in mgr.list(owner="b", tag="panel")} == {b}
    assert {v.id for v in mgr.list()} == {a, b, shared}
    assert mgr.get(a, owner="a").result == 1
    with pytest.raises(NnkitError):
        mgr.get(a, owner="b")
    with pytest.raises(NnkitError):
        mgr.cancel(a, owner="b")
    assert [v.id for v in mgr.list(owner="a", active=True)] == []


def test_manager_is_a_process_wide_singleton():
    assert get_manager() is get_manager()
    results = []
    threads = [threading.Thread(target=lambda: results.append(get_manager())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m is get_manager() for m in results)


def test_lanes_and_one_line():
    assert lane_of("cpu") == "cpu"
    with pytest.raises(NnkitError):
        lane_of("tpu")
    assert one_line("first\n  second") == "first"
    assert one_line("\n\n  x  ") == "x"
    assert len(one_line("y" * 1000, limit=50)) == 50
    with pytest.raises(NnkitError):
        JobManager().get("nope")


def test_train_task_reports_live_progress_and_saves_a_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    mgr = JobManager()
    config = TrainConfig(data="shapes", data_opts={"n_train": 300, "n_test": 100}, model="cnn",
                         model_opts={"widths": [8, 16, 16], "hidden": 32}, epochs=2, batch_size=32, seed=0)
    seen = []
    job_id = mgr.submit(train_task, kind="train", title="tiny", device="cpu", config=config)
    while not mgr.get(job_id).status.finished:
        seen.append(mgr.get(job_id).progress)
        time.sleep(0.02)
    view = mgr.wait(job_id, WAIT)
    assert view.status is JobStatus.DONE, view.error
    assert view.progress == 1.0 and "test accuracy" in view.message
    assert seen == sorted(seen)  # progress only moves forward
    batches = [m for m in view.metrics if "loss" in m]
    epochs = [m for m in view.metrics if "train_loss" in m]
    assert batches and [m["epoch"] for m in epochs] == [1, 2]
    assert {"train_accuracy", "val_accuracy", "val_loss", "step"} <= set(epochs[-1])
    run = RunStore().get(view.result["run_id"])
    assert run.meta["test_accuracy"] == pytest.approx(view.result["test_accuracy"])
    assert run.meta["seed"] == 0 and view.result["epochs_run"] == 2
    assert view.result["job_seconds"] >= view.result["seconds"] > 0  # the job also built the data
    assert config.device is None  # the caller's config is not changed


def test_cancel_stops_real_training_within_two_seconds_and_leaves_no_run(tmp_path, monkeypatch):
    monkeypatch.setenv("NNKIT_HOME", str(tmp_path))
    mgr = JobManager()
    config = TrainConfig(data="shapes", data_opts={"n_train": 1000, "n_test": 100}, model="cnn", epochs=200,
                         batch_size=32, seed=0)
    job_id = mgr.submit(train_task, kind="train", title="long", device="cpu", config=config)
    assert _until(lambda: any("loss" in m for m in mgr.get(job_id).metrics)), "training never started"
    assert mgr.get(job_id).status is JobStatus.RUNNING
    t0 = time.monotonic()
    mgr.cancel(job_id)
    view = mgr.wait(job_id, 2.0)
    elapsed = time.monotonic() - t0
    assert view.status is JobStatus.CANCELLED, f"still {view.status.value} after {elapsed:.1f} s"
    assert elapsed < 2.0
    store = RunStore()
    assert store.list() == []
    partial = store.root / ".partial"
    assert not partial.exists() or list(partial.iterdir()) == []  # the half-written run was deleted


def test_quick_start_config_is_valid():
    config = quick_start_config("cpu").validate()
    assert (config.data, config.model, config.device) == ("shapes", "cnn", "cpu")
    assert config.seed is not None  # one click, one reproducible model


def test_each_job_sets_its_own_threads_and_reports_a_live_eta(monkeypatch):
    import torch

    monkeypatch.setenv("NNKIT_THREADS", "1")
    mgr = JobManager()
    gate = threading.Event()

    def fn(ctx):
        for step in range(1, 4):
            ctx.update(done=step, total=10, unit="queries")
            time.sleep(0.3)
        gate.wait(WAIT)
        return torch.get_num_threads()  # set in this worker thread by the manager's thread policy

    job_id = mgr.submit(fn, kind="demo", title="t", device="cpu")
    assert _until(lambda: mgr.get(job_id).eta is not None)
    running = mgr.get(job_id)
    eta = running.eta
    assert eta.unit == "queries" and eta.total == 10 and eta.rate > 0 and eta.seconds_left > 0
    assert running.progress == pytest.approx(eta.done / 10)  # units also set the bar
    gate.set()
    view = mgr.wait(job_id, WAIT)
    assert view.result == 1 and view.eta is None
    monkeypatch.setenv("NNKIT_THREADS", "lots")  # a bad override fails the job with one line
    bad = mgr.wait(mgr.submit(lambda ctx: None, kind="demo", title="t", device="cpu"), WAIT)
    assert bad.status is JobStatus.FAILED and "NNKIT_THREADS" in bad.error
