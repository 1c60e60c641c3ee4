"""The one device helper: picks cuda / mps / cpu, overridable with an argument or NNKIT_DEVICE.

It also holds the CPU thread policy (:func:`cpu_threads`, :func:`apply_thread_policy`). On a machine
that other processes share, intra-op threads that outnumber the free cores wait on each other at every
parallel region, and OpenMP's default wait policy spins while it waits: a job then slows down far more
than its share of the cores says. nnkit therefore (1) sets ``OMP_WAIT_POLICY=PASSIVE`` before torch
loads (in ``nnkit/__init__.py`` and ``streamlit_app.py``: libgomp reads it once, when it loads), so a
waiting thread sleeps instead of burning a core another process needs; (2) gives each job as many
intra-op threads as there are free cores when it starts, at least one; (3) uses one inter-op thread.
"""

from __future__ import annotations

import os

import torch

from nnkit.errors import NnkitError

_CHOICES = ("auto", "cpu", "cuda", "mps")


def get_device(name: str | None = None) -> torch.device:
    """Return the torch device to run on.

    Args:
        name: "cpu", "cuda", "cuda:1", "mps" or "auto"/None. None reads NNKIT_DEVICE, then picks
            the best available (cuda, then mps, then cpu).

    Returns:
        A ``torch.device``. Raises NnkitError when the requested device is unknown or absent.
    """
    name = (name or os.environ.get("NNKIT_DEVICE") or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.split(":")[0] not in _CHOICES:
        raise NnkitError(f"unknown device {name!r}: choose one of {', '.join(_CHOICES)}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NnkitError(f"device {name!r} asked for, but no CUDA GPU is available here")
    if name == "mps" and not torch.backends.mps.is_available():
        raise NnkitError("device 'mps' asked for, but Apple MPS is not available here")
    return torch.device(name)


def describe_device(device: torch.device | str | None = None) -> str:
    """Human-readable device name, e.g. ``"cpu: AMD EPYC 7B13 (2 threads)"`` or ``"cuda: NVIDIA H100"``."""
    device = get_device(device if isinstance(device, str) or device is None else str(device))
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    threads = torch.get_num_threads()
    name = cpu_name()
    return f"cpu{': ' + name if name else ''} ({threads} thread{'s' if threads != 1 else ''})"


def cpu_name() -> str:
    """The processor's model name ("" where the system does not say)."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def cpu_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. a container's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity mask
        return max(1, os.cpu_count() or 1)


def cpu_threads(load: float | None = None) -> int:
    """Intra-op threads for one job: the cores that other work leaves free, at least 1.

    Args:
        load: CPU demand of the other processes (runnable threads); None measures it now (the
            smaller of the 1-minute load average and the runnable threads right now). ``NNKIT_THREADS``
            (a positive integer) overrides the choice.

    Returns:
        ``clamp(round(cores - load), 1, cores)``: all cores on an idle machine, one on a busy one, where
        more threads would only wait for each other.
    """
    override = os.environ.get("NNKIT_THREADS", "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise NnkitError(f"NNKIT_THREADS={override!r}: give a positive whole number of threads")
        return int(override)
    cores = cpu_cores()
    if load is None:
        load = _other_load()
    return int(min(cores, max(1, round(cores - load))))


def _other_load() -> float:
    """CPU demand of other work now: the smaller of the 1-minute load average and the runnable threads
    counted over ~25 ms (minus this one).

    The average lags by a minute: right after nnkit's own previous job it still counts that job. The
    instant count alone is noisy; the smaller of the two errs towards more threads only when both agree
    the machine has room.
    """
    import time

    try:
        average = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows: no load average; use every core
        return 0.0
    counts = []
    try:
        for _ in range(5):
            with open("/proc/loadavg") as fh:  # "0.52 0.58 0.59 3/1234 5678": 3 runnable now, this reader included
                counts.append(int(fh.read().split()[3].split("/")[0]) - 1)
            time.sleep(0.005)
    except (OSError, ValueError, IndexError):  # no /proc (macOS): the average alone
        return average
    return min(average, sum(counts) / len(counts))


_interop_set = False


def apply_thread_policy(threads: int | None = None) -> int:
    """Apply the CPU thread policy to the calling thread: call it at the start of each job's thread.

    Under OpenMP, ``torch.set_num_threads`` sets the calling thread's team size, so a worker thread
    that never calls it keeps the process default (all cores), whatever the main thread chose.

    Args:
        threads: intra-op threads; None chooses with :func:`cpu_threads`.

    Returns:
        The number of intra-op threads set.
    """
    global _interop_set
    n = cpu_threads() if threads is None else max(1, int(threads))
    torch.set_num_threads(n)
    if not _interop_set:
        _interop_set = True
        try:
            # One inter-op thread: nnkit runs no independent ops side by side, and a second pool would
            # only add threads that compete for the same cores. Possible only before the pool starts.
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
    return n
