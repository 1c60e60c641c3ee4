"""Checks of user-given numbers shared by every config's ``validate()``: one-line NnkitErrors, never a crash.

The CLI's argparse types catch the same cases earlier with a nicer message, but the dashboard builds
configs directly, so the library checks again here.
"""

from __future__ import annotations

import math
import numbers

from nnkit.errors import NnkitError


def check_number(name: str, value, low: float | None = None, high: float | None = None, *,
                 high_open: bool = False) -> float:
    """A finite real number in ``[low, high]`` (``[low, high)`` with ``high_open``), else a one-line NnkitError.

    Args:
        name: the option's name as the user knows it (goes into the message).
        value: the value to check (bools and strings are refused: ``True`` is not a learning rate).
        low, high: inclusive bounds; None for no bound.
        high_open: exclude ``high`` itself.

    Returns:
        The value as a float.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise NnkitError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise NnkitError(f"{name} must be a finite number, got {value}")
    too_high = high is not None and (value >= high if high_open else value > high)
    if (low is not None and value < low) or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise NnkitError(f"{name} must be in [{lo}, {hi}{')' if high_open or high is None else ']'}, got {value:g}")
    return value


def check_whole(name: str, value, low: int, high: int) -> int:
    """A whole number in ``[low, high]``, else a one-line NnkitError.

    Args:
        name: the option's name as the user knows it.
        value: an int (a float with no fraction, as JSON may give, is accepted).
        low, high: inclusive bounds.

    Returns:
        The value as an int.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (
            isinstance(value, float) and not value.is_integer()):
        raise NnkitError(f"{name} must be a whole number, got {value!r}")
    value = int(value)
    if not low <= value <= high:
        raise NnkitError(f"{name} must be between {low:,} and {high:,}, got {value:,}")
    return value
