"""Background jobs: long work runs in worker threads, never in the dashboard's script thread.

A job is a function ``fn(ctx, **kwargs)`` run by a process-wide :class:`JobManager`. Its
:class:`JobContext` carries the ``stop_event`` (a ``threading.Event`` to pass on to ``train`` and the
other long functions, which stop within one step and raise ``nnkit.errors.Cancelled``), and methods to
report progress, a message and live metrics. The page keeps only the job id and polls a
:class:`JobView` snapshot, so a browser refresh or a second tab finds the job again.

Heavy jobs run one at a time per device ("lane": ``cpu``, ``cuda:0``, ``mps``): two trainings on
one GPU (or on two CPU cores) would each take twice as long and may run out of memory, so the second
one waits in a FIFO queue and says so in its message. Light jobs (``heavy=False``) start at once.

Jobs carry an ``owner`` (the dashboard's browser id): listings filter by owner so classroom users do
not see each other's unfinished work. What a job finishes goes to the run store, which everybody sees.
This is separation, not security: anyone who knows an owner id can read that owner's jobs.
"""

from __future__ import annotations

import enum
import itertools
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nnkit.device import apply_thread_policy
from nnkit.errors import Cancelled, NnkitError
from nnkit.jobs.eta import Eta, RateMeter
from nnkit.runs.load import collect_data_warnings

log = logging.getLogger(__name__)

MAX_FINISHED = 200  # finished jobs kept for listings; older ones are forgotten (their runs stay in the store)
MAX_METRICS = 5000  # metric records kept per job; older ones are thinned (every other one dropped)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True)
class JobView:
    """A consistent, read-only snapshot of a job (what pages and tests read)."""

    id: str
    kind: str
    title: str
    owner: str | None
    tag: str | None  # the caller's label for finding it again (e.g. the page slot "quick-start")
    lane: str
    heavy: bool
    status: JobStatus
    progress: float  # 0..1
    message: str
    metrics: tuple[dict, ...]
    result: Any
    error: str | None  # one line; set when status is FAILED
    created: float
    started: float | None
    finished: float | None
    cancel_requested: bool
    queue_position: int | None  # jobs ahead of it in its lane while queued (0: next), else None
    eta: Eta | None = None  # live rate and time left, measured from the job's own progress (None: not yet)
    warnings: tuple[str, ...] = ()  # one-line warnings the job raised (e.g. its folder dataset changed)

    @property
    def active(self) -> bool:
        """Queued or running."""
        return not self.status.finished

    @property
    def seconds(self) -> float | None:
        """Running time so far (or in total once finished); None while queued."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of ``text``, cut to ``limit`` characters (error messages stay one line)."""
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


class _Job:
    """The mutable job record, guarded by its lock; only the manager and the context touch it."""

    def __init__(self, job_id: str, fn: Callable, kwargs: dict, kind: str, title: str, owner: str | None,
                 tag: str | None, lane: str, heavy: bool):
        self.id = job_id
        self.tag = tag
        self.fn = fn
        self.kwargs = kwargs
        self.kind = kind
        self.title = title
        self.owner = owner
        self.lane = lane
        self.heavy = heavy
        self.status = JobStatus.QUEUED
        self.progress = 0.0
        self.message = "queued"
        self.summary: str | None = None  # the message once done (set by the job), else "done"
        self.metrics: list[dict] = []
        self.warnings: list[str] = []
        self.result: Any = None
        self.error: str | None = None
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.stop_event = threading.Event()
        self.done_event = threading.Event()
        self.lock = threading.Lock()
        # Rate meters: one on the units the job reports (steps, queries) and one on the bare progress
        # fraction, for jobs that report no units; the view shows the first that has a measurement.
        self.unit_meter: RateMeter | None = None
        self.fraction_meter = RateMeter(1.0, unit="")

    def eta(self) -> Eta | None:
        # Caller holds self.lock.
        for meter in (self.unit_meter, self.fraction_meter):
            if meter is not None and meter.rate() is not None:
                return meter.eta()
        return None

    def view(self, queue_position: int | None) -> JobView:
        with self.lock:
            return JobView(self.id, self.kind, self.title, self.owner, self.tag, self.lane, self.heavy, self.status,
                           self.progress, self.message, tuple(self.metrics), self.result, self.error,
                           self.created, self.started, self.finished, self.stop_event.is_set(),
                           queue_position if self.status is JobStatus.QUEUED else None,
                           self.eta() if self.status is JobStatus.RUNNING else None, tuple(self.warnings))


class JobContext:
    """What a job function gets: the stop event, its device lane and ways to report.

    Example::

        def my_job(ctx, config):
            return train(config, stop_event=ctx.stop_event,
                         on_progress=lambda p: ctx.update(p.step / p.total_steps, f"step {p.step}"))
    """

    def __init__(self, job: _Job):
        self._job = job
        self.job_id = job.id
        self.device = job.lane  # e.g. "cpu" or "cuda:0": pass it on as the job's explicit device
        self.stop_event = job.stop_event

    def update(self, progress: float | None = None, message: str | None = None, *, done: float | None = None,
               total: float | None = None, unit: str = "steps") -> None:
        """Set the progress fraction (clamped to 0..1) and/or the one-line status message.

        Args:
            progress: the fraction done; None keeps it, or (with ``done`` and ``total``) is ``done / total``.
            message: the one-line status.
            done, total: units of work done and to do (steps, queries): the job's live rate and ETA
                ("14 steps/s · 31 s left") are measured from these, and its rate is remembered when it
                ends, for the next job of its kind. A ``done`` lower than the last one starts a new phase.
            unit: what a unit is, plural ("steps", "queries", "images").
        """
        now = time.monotonic()
        with self._job.lock:
            if progress is None and done is not None and total:
                progress = float(done) / float(total)
            if progress is not None:
                self._job.progress = min(1.0, max(0.0, float(progress)))
                self._job.fraction_meter.add(self._job.progress, now)
            if done is not None and total:
                meter = self._job.unit_meter
                if meter is None or meter.unit != unit or meter.total != float(total):
                    meter = self._job.unit_meter = RateMeter(total, unit=unit)
                meter.add(done, now)
            if message is not None:
                self._job.message = one_line(message)

    def set_summary(self, text: str) -> None:
        """The one line shown once the job is done, e.g. "test accuracy 96.1% in 31 s"."""
        with self._job.lock:
            self._job.summary = one_line(text)

    def log_metrics(self, record: dict) -> None:
        """Append one record (e.g. ``{"step": 10, "loss": 0.4}``) to the job's live metrics history."""
        with self._job.lock:
            self._job.metrics.append(dict(record))
            if len(self._job.metrics) > MAX_METRICS:  # bounded memory for very long jobs
                self._job.metrics = self._job.metrics[::2]

    @property
    def cancelled(self) -> bool:
        return self.stop_event.is_set()

    def check_cancelled(self) -> None:
        """Raise ``Cancelled`` when cancel was asked for (call between the phases of a job)."""
        if self.stop_event.is_set():
            raise Cancelled("cancelled")


def lane_of(device: str | None) -> str:
    """The queue a job on ``device`` waits in: ``cpu``, ``mps`` or ``cuda:<index>``.

    Raises NnkitError for an unknown or absent device (``nnkit.device.get_device``).
    """
    import torch

    from nnkit.device import get_device

    dev = get_device(device)
    if dev.type == "cuda":
        return f"cuda:{dev.index if dev.index is not None else torch.cuda.current_device()}"
    return dev.type


class JobManager:
    """Runs jobs in worker threads: one heavy job at a time per device lane, light jobs at once.

    Use the process-wide :func:`get_manager` in the app; tests may build their own.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._lanes: dict[str, queue.Queue] = {}
        self._waiting: dict[str, list[str]] = {}  # lane -> queued job ids in order
        self._counter = itertools.count(1)

    # -- submitting ---------------------------------------------------------------------------
    def submit(self, fn: Callable[..., Any], *, kind: str, title: str, owner: str | None = None,
               tag: str | None = None, device: str | None = None, heavy: bool = True, **kwargs) -> str:
        """Queue ``fn(ctx, **kwargs)`` as a job and return its id.

        Args:
            fn: the job function; it gets a JobContext first and must honour ``ctx.stop_event``.
                Return something small (a dict with a run id): big artefacts go to the run store.
            kind: what it is ("train", "attack", "gan", ...), shown in lists.
            title: one line for the sidebar, e.g. "Train cnn on shapes".
            owner: the browser/session id that may see it (None: everybody).
            tag: a label to find it again with ``list(tag=...)`` (e.g. which page panel shows it).
            device: "cpu", "cuda", "mps" or None (auto); it picks the lane and is ``ctx.device``.
            heavy: heavy jobs wait for their lane; light ones start at once in their own thread.
            **kwargs: passed on to ``fn``.

        Returns:
            The job id (a counter and 8 random hex digits, e.g. ``0003-9f2c41d0``).
        """
        lane = lane_of(device)
        job_id = f"{next(self._counter):04d}-{secrets.token_hex(4)}"
        job = _Job(job_id, fn, kwargs, kind, title, owner, tag, lane, heavy)
        with self._lock:
            self._jobs[job_id] = job
            self._prune()
            if heavy:
                self._waiting.setdefault(lane, []).append(job_id)
                ahead = len(self._waiting[lane]) - 1 + int(self._lane_busy(lane))
                job.message = f"queued: waiting for {lane}" + (f" ({ahead} job{'s' * (ahead != 1)} ahead)"
                                                               if ahead else "")
                self._lane_queue(lane).put(job_id)
            else:
                threading.Thread(target=self._run, args=(job,), name=f"nnkit-job-{job_id}", daemon=True).start()
        log.info("job %s queued: %s (%s, lane %s)", job_id, title, kind, lane)
        return job_id

    def _lane_queue(self, lane: str) -> queue.Queue:
        # One worker thread per lane drains its FIFO queue: the simplest way to keep one heavy job per device.
        if lane not in self._lanes:
            q: queue.Queue = queue.Queue()
            self._lanes[lane] = q
            threading.Thread(target=self._lane_worker, args=(lane, q), name=f"nnkit-lane-{lane}",
                             daemon=True).start()
        return self._lanes[lane]

    def _lane_busy(self, lane: str) -> bool:
        return any(j.heavy and j.lane == lane and j.status is JobStatus.RUNNING for j in self._jobs.values())

    def _lane_worker(self, lane: str, q: queue.Queue) -> None:
        while True:
            job_id = q.get()
            with self._lock:
                if job_id in self._waiting.get(lane, []):
                    self._waiting[lane].remove(job_id)
                job = self._jobs.get(job_id)
            if job is not None:
                self._run(job)
            q.task_done()

    # -- running ------------------------------------------------------------------------------
    def _run(self, job: _Job) -> None:
        with job.lock:
            if job.status is not JobStatus.QUEUED:  # cancelled while it waited
                job.done_event.set()
                return
            if job.stop_event.is_set():
                self._finish(job, JobStatus.CANCELLED, "cancelled before it started")
                return
            job.status = JobStatus.RUNNING
            job.started = time.time()
            job.message = "starting"
        ctx = JobContext(job)
        try:
            # Per job, in the job's own thread (OpenMP team sizes are per thread): the cores free when it starts.
            threads = apply_thread_policy()
            log.info("job %s runs with %d intra-op thread%s", job.id, threads, "s" * (threads != 1))
            with collect_data_warnings() as notes:
                try:
                    result = job.fn(ctx, **job.kwargs)
                finally:
                    with job.lock:
                        job.warnings = list(notes)
        except Cancelled:
            with job.lock:
                self._finish(job, JobStatus.CANCELLED, "cancelled")
            log.info("job %s cancelled", job.id)
        except NnkitError as exc:
            with job.lock:
                job.error = one_line(exc)
                self._finish(job, JobStatus.FAILED, job.error)
            log.info("job %s failed: %s", job.id, job.error)
        except Exception as exc:  # a bug, not bad input: keep the traceback for the log, show one line
            log.exception("job %s (%s) crashed", job.id, job.title)
            with job.lock:
                job.error = one_line(f"{type(exc).__name__}: {exc}") + " (details in the server log)"
                self._finish(job, JobStatus.FAILED, job.error)
        else:
            # Before the job is marked done, so that whoever waits for it finds the rate remembered.
            self._remember_rate(job, time.time())
            with job.lock:
                job.result = result
                job.progress = 1.0
                note = job.summary or "done"
                if job.stop_event.is_set():
                    note += " (it finished before the cancel took effect)"
                self._finish(job, JobStatus.DONE, note)
            log.info("job %s done", job.id)
        finally:
            with self._lock:
                self._refresh_queue_messages(job.lane)

    @staticmethod
    def _remember_rate(job: _Job, finished: float) -> None:
        # The rate a finished job measured is the next job's first estimate (by kind, and by page slot,
        # which names the same work more closely: the quick start is always the same training).
        from nnkit.jobs.eta import remember_rate

        if job.started is None:
            return
        seconds = finished - job.started
        meter = job.unit_meter
        rate = meter.mean_rate() if meter is not None else None
        # A job that reports no units is remembered as one whole job in its running time ("the last one took 5 min").
        unit, total = (meter.unit, meter.total) if rate is not None else ("", 1.0)
        if rate is None:
            rate = 1.0 / seconds if seconds > 0 else None
        if rate is None:
            return
        try:
            for key in [job.kind] + ([f"{job.kind}/{job.tag}"] if job.tag else []):
                remember_rate(key, rate, unit, total, seconds, job.title)
        except (OSError, NnkitError) as exc:  # a read-only home costs the next estimate, not this result
            log.warning("could not remember the rate of job %s: %s", job.id, exc)

    @staticmethod
    def _finish(job: _Job, status: JobStatus, message: str) -> None:
        # Caller holds job.lock.
        job.status = status
        job.message = message
        job.finished = time.time()
        job.fn = None  # drop references to big arguments (configs are small, but a closure may not be)
        job.kwargs = {}
        job.done_event.set()

    def _refresh_queue_messages(self, lane: str) -> None:
        # Caller holds self._lock: keep "N jobs ahead" honest as the queue moves.
        waiting = self._waiting.get(lane, [])
        busy = int(self._lane_busy(lane))
        for pos, jid in enumerate(waiting):
            job = self._jobs.get(jid)
            if job is None:
                continue
            with job.lock:
                if job.status is JobStatus.QUEUED:
                    ahead = pos + busy
                    job.message = f"queued: waiting for {lane}" + (
                        f" ({ahead} job{'s' * (ahead != 1)} ahead)" if ahead else "")

    def _prune(self) -> None:
        # Caller holds self._lock.
        finished = [j for j in self._jobs.values() if j.status.finished]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(finished) - MAX_FINISHED)]:
            del self._jobs[job.id]

    # -- reading and cancelling ---------------------------------------------------------------
    def get(self, job_id: str, owner: str | None = None) -> JobView:
        """The job's snapshot; NnkitError when unknown (or owned by someone else when ``owner`` is given)."""
        with self._lock:
            job = self._jobs.get(job_id)
            pos = self._position(job) if job is not None else None
        if job is None or (owner is not None and job.owner not in (None, owner)):
            raise NnkitError(f"no job {job_id!r} (it may have finished long ago)")
        return job.view(pos)

    def _position(self, job: _Job) -> int | None:
        waiting = self._waiting.get(job.lane, [])
        if job.id not in waiting:
            return None
        return waiting.index(job.id) + int(self._lane_busy(job.lane))

    def list(self, owner: str | None = None, active: bool | None = None, kind: str | None = None,
             tag: str | None = None) -> list[JobView]:
        """Jobs newest first, filtered by ``owner`` (that owner's and ownerless ones), activity, kind and tag."""
        with self._lock:
            jobs = [(j, self._position(j)) for j in self._jobs.values()]
        views = [j.view(pos) for j, pos in jobs
                 if (owner is None or j.owner in (None, owner)) and (kind is None or j.kind == kind)
                 and (tag is None or j.tag == tag)]
        if active is not None:
            views = [v for v in views if v.active == active]
        return sorted(views, key=lambda v: v.created, reverse=True)

    def lane_load(self, lane: str, exclude_owner: str | None = None) -> int:
        """Heavy jobs queued or running on ``lane`` (optionally not counting one owner's own jobs)."""
        with self._lock:
            return sum(1 for j in self._jobs.values()
                       if j.heavy and j.lane == lane and not j.status.finished
                       and (exclude_owner is None or j.owner != exclude_owner))

    def cancel(self, job_id: str, owner: str | None = None) -> JobView:
        """Ask a job to stop: a queued job is cancelled at once, a running one within one step.

        Returns the job's snapshot after the request.
        """
        self.get(job_id, owner)  # raises for an unknown job or someone else's
        with self._lock:
            job = self._jobs[job_id]
            job.stop_event.set()
            with job.lock:
                if job.status is JobStatus.QUEUED:
                    if job.id in self._waiting.get(job.lane, []):
                        self._waiting[job.lane].remove(job.id)
                    self._finish(job, JobStatus.CANCELLED, "cancelled before it started")
                elif job.status is JobStatus.RUNNING:
                    job.message = "cancelling…"
            self._refresh_queue_messages(job.lane)
        return self.get(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobView:
        """Block until the job has finished (or ``timeout`` seconds passed); return its snapshot."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NnkitError(f"no job {job_id!r}")
        job.done_event.wait(timeout)
        return self.get(job_id)


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def get_manager() -> JobManager:
    """The process-wide JobManager: every browser tab of one dashboard server shares it."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager
