"""Validate a report against ``schema.json`` (JSON Schema draft 2020-12, checked with jsonschema)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from nnkit.errors import NnkitError

SCHEMA_PATH = Path(__file__).with_name("schema.json")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The report schema (parsed once)."""
    return json.loads(SCHEMA_PATH.read_text())


def _references(obj, key: str):
    """Every id listed under ``key`` ("figures" / "images") inside the report's sections."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key and isinstance(v, list):
                yield from (x for x in v if isinstance(x, str))
            else:
                yield from _references(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from _references(v, key)


def validate_report(report: dict) -> dict:
    """Check ``report`` against the schema, that it is strict JSON (no NaN) and that every figure or image
    a section names exists.

    Args:
        report: a report dict (``build_report``'s output or a loaded report.json).

    Returns:
        ``report`` unchanged; a one-line NnkitError names the first problem.
    """
    from jsonschema import Draft202012Validator

    try:
        json.dumps(report, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NnkitError(f"the report is not strict JSON: {exc}") from None
    validator = Draft202012Validator(load_schema())
    error = next(iter(sorted(validator.iter_errors(report), key=lambda e: list(e.absolute_path))), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise NnkitError(f"the report does not match {SCHEMA_PATH.name} at {where}: {error.message[:200]}")
    sections = {k: v for k, v in report.items() if k not in ("figures", "images")}
    for key in ("figures", "images"):
        missing = sorted(set(_references(sections, key)) - set(report[key]))
        if missing:
            raise NnkitError(f"the report names {key[:-1]} {missing[0]!r}, which it does not hold")
    return report
