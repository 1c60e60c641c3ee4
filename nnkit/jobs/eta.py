"""Time estimates from measured progress: a job's own rate (steps/s, queries/s) and the last rate seen here.

A promise written once ("about half a minute") breaks on a busy machine; a rate measured on this
machine, now, does not. :class:`RateMeter` turns a job's progress reports into a smoothed rate over a
recent window (so a change of load shows within that window) and an ETA = remaining / rate. When a job
ends, its rate is kept in ``$NNKIT_HOME/jobs/rates.json`` (:func:`remember_rate`), so the next job of
the same kind can say before it starts what it assumes (:func:`last_rate`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

WINDOW_SECONDS = 15.0  # the rate is measured over about this much recent time: short enough to follow a load change
MIN_SPAN_SECONDS = 0.5  # below this span of samples (or fewer than 2 samples) the rate is unknown, not guessed
_RATES_LOCK = threading.Lock()  # one writer at a time within the process (the file write itself is atomic)


@dataclass(frozen=True)
class Eta:
    """A live estimate: what was done, at what rate, and how long the rest will take."""

    done: float
    total: float
    unit: str  # plural, e.g. "steps", "queries", "images"
    rate: float | None  # units per second over the recent window; None until measured
    seconds_left: float | None  # None until the rate is known

    def text(self) -> str:
        """One line for a progress bar, e.g. ``"14.2 steps/s · 31 s left"`` ("" before the first measurement)."""
        if self.rate is None or self.seconds_left is None:
            return ""
        left = f"{format_seconds(self.seconds_left)} left"
        return f"{format_rate(self.rate, self.unit)} · {left}" if self.unit else left


class RateMeter:
    """Measures a job's rate from its ``(time, units done)`` reports, smoothed over a recent time window.

    The rate is the units done between the oldest report still inside the window and the newest one,
    divided by the time between them: steady work gives the mean rate, and after a load change the
    old reports leave the window within ``window`` seconds. Time before the first report (start-up,
    data loading) is never counted as work.

    Args:
        total: the units the job will do (e.g. its optimiser steps), > 0.
        unit: what a unit is, plural ("steps").
        window: seconds of recent reports the rate is measured over.
        clock: the time source (``time.monotonic``; tests may pass their own).

    Example::

        meter = RateMeter(total=400, unit="steps")
        meter.add(done=10)   # after each step, or every few
        meter.eta().text()   # "12.5 steps/s · 31 s left"
    """

    def __init__(self, total: float, unit: str = "steps", window: float = WINDOW_SECONDS,
                 clock=time.monotonic):
        self.total = float(total)
        self.unit = unit
        self.window = float(window)
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self.first_time: float | None = None  # time of the first report (the start of measured work)
        self.first_done = 0.0  # units done at the first report (done before any time was measured)

    def add(self, done: float, now: float | None = None) -> None:
        """Record that ``done`` units are complete at time ``now`` (default: the clock)."""
        now = self._clock() if now is None else float(now)
        done = float(done)
        if self._samples and done < self._samples[-1][1]:  # a restart of the count (a new phase): measure anew
            self._samples.clear()
        if self.first_time is None:
            self.first_time, self.first_done = now, done
        self._samples.append((now, done))
        # Keep the newest report before the window's start too, so the window always spans ~window seconds.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    @property
    def done(self) -> float:
        return self._samples[-1][1] if self._samples else 0.0

    def rate(self) -> float | None:
        """Units per second over the recent window; None before two reports ``MIN_SPAN_SECONDS`` apart."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 < MIN_SPAN_SECONDS or d1 <= d0:
            return None
        return (d1 - d0) / (t1 - t0)

    def eta(self) -> Eta:
        """The estimate now: rate over the window, seconds left = remaining units / rate."""
        rate = self.rate()
        left = None if rate is None else max(0.0, self.total - self.done) / rate
        return Eta(self.done, self.total, self.unit, rate, left)

    def mean_rate(self) -> float | None:
        """Units per second over the whole measured work (first report to last), for remembering."""
        if len(self._samples) < 1 or self.first_time is None:
            return None
        t1, d1 = self._samples[-1]
        span, units = t1 - self.first_time, d1 - self.first_done
        return units / span if span > 0 and units > 0 else None


def format_rate(rate: float, unit: str) -> str:
    """``"14 steps/s"``, ``"2.5 queries/s"``, ``"0.31 steps/s"``: three significant figures at most."""
    if rate >= 100:
        return f"{rate:,.0f} {unit}/s"
    if rate >= 10:
        return f"{rate:.1f} {unit}/s"
    return f"{rate:.2g} {unit}/s"


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 5 s"``, ``"1 h 4 min"``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


# -- the last rate on this machine --------------------------------------------------------------
def rates_path() -> Path:
    """``$NNKIT_HOME/jobs/rates.json``: the last measured rate per kind of job on this machine."""
    from nnkit.paths import nnkit_home

    return nnkit_home() / "jobs" / "rates.json"


def _read_rates(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: no assumption rather than an error
        return {}
    return data if isinstance(data, dict) else {}


def remember_rate(key: str, rate: float, unit: str, total: float, seconds: float, title: str = "") -> None:
    """Keep the rate a finished job measured, for the next job of the same ``key`` (its kind or page slot).

    Args:
        key: e.g. ``"train"`` or ``"train/quick-start"``.
        rate: units per second over the job's measured work.
        unit: the plural unit ("steps").
        total: the units the job did.
        seconds: the job's whole running time (data preparation included).
        title: the job's title, for the page's sentence.
    """
    from nnkit.atomic import write_json

    with _RATES_LOCK:
        path = rates_path()
        rates = _read_rates(path)
        rates[key] = {"rate": float(rate), "unit": unit, "total": float(total), "seconds": float(seconds),
                      "title": title, "when": time.time()}
        write_json(path, rates)


def last_rate(*keys: str) -> dict | None:
    """The remembered rate of the first key that has one (e.g. ``last_rate("train/quick-start", "train")``).

    Returns:
        ``{"rate", "unit", "total", "seconds", "title", "when"}`` or None when no such job ran here yet.
    """
    rates = _read_rates(rates_path())
    for key in keys:
        entry = rates.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("rate"), (int, float)) and entry["rate"] > 0:
            return entry
    return None
