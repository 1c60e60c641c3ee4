"""Helpers shared by the CLI commands: JSON output, progress bars, option parsing."""

from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from nnkit.errors import NnkitError


def emit_json(obj: dict) -> None:
    """Print ``obj`` as one JSON line on stdout (the last line of a ``--json`` command)."""
    sys.stdout.write(json.dumps(obj, default=float) + "\n")
    sys.stdout.flush()


def progress_bar(total: int, desc: str, disable: bool = False) -> tqdm:
    """A tqdm bar on stderr (stdout stays clean for ``--json``)."""
    return tqdm(total=total, desc=desc, file=sys.stderr, disable=disable, dynamic_ncols=True, leave=False)


def parse_value(text: str):
    """'3' → 3, '0.5' → 0.5, 'true' → True, '32,64' → (32, 64), anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if "," in text:
        return tuple(parse_value(t) for t in text.split(","))
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_options(items: list[str] | None) -> dict:
    """``["key=value", ...]`` → dict with parsed values; a one-line error for a malformed item."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NnkitError(f"expected KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = parse_value(value)
    return out


def add_device_arg(p) -> None:
    p.add_argument("--device", help="cpu, cuda, mps (default: $NNKIT_DEVICE or the best available)")


def add_json_arg(p) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")


def add_data_root_arg(p) -> None:
    p.add_argument("--data-root", help="root of downloaded datasets (default: $NNKIT_DATA or ~/.nnkit/data)")


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {value}")
    return value


def _decimal_or_fraction(text: str) -> float:
    """A float from "0.5" or "8/255" (a one-line argparse error otherwise)."""
    num, slash, den = text.strip().partition("/")
    try:
        return float(num) / float(den) if slash else float(num)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 0.03 or a fraction such as 8/255, got {text!r}") \
            from None
    except ZeroDivisionError:
        raise argparse.ArgumentTypeError(f"division by zero in {text!r}") from None


def number_or_fraction(text: str) -> float:
    """argparse type: a finite number > 0 written as a decimal ("0.5") or a fraction ("8/255")."""
    value = _decimal_or_fraction(text)
    if not 0 < value < float("inf"):  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def eps_value(text: str) -> float:
    """argparse type: one perturbation budget in (0, 1], as a number or a fraction of whole numbers.

    ``"8/255"`` → 0.0313…, ``"0.03"`` → 0.03; pixel values are in [0, 1], so budgets are too.
    """
    value = _decimal_or_fraction(text)
    if not 0 < value <= 1:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"expected a budget in (0, 1] (pixel values are in [0, 1]), got {text!r}")
    return value
