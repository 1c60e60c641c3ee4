"""Stored evaluations of a run: every number the Compare table and the report show, with its command.

A complete run's folder holds ``evals/<kind>-<key>.json``, one file per (kind, parameters), written
atomically (never half-written). ``key`` is a short hash of the parameters, so the same evaluation
run twice replaces its file, and an evaluation with other parameters (another ε, another n) sits
beside it. Each file holds::

    {"kind": "robust", "params": {...}, "result": {...}, "command": "nnkit attack pgd RUN ...",
     "created": "2026-12-02T07:30:00+00:00", "seconds": 12.3, "versions": {...}}

Kinds used by nnkit (each writer documents its ``params`` and ``result``):

- ``robust``: a gradient attack (FGSM, PGD, APGD) at one or more ε — ``attacks.on_run``;
- ``one-pixel`` and ``patch``: the query and patch attacks — ``attacks.on_run``;
- ``corruptions``: accuracy per corruption and severity, and mCE — ``nnkit.corruptions``;
- ``confounding``: the confounding verdict — ``nnkit.confounding``.

A broken file is skipped with a :class:`~nnkit.runs.store.BrokenRunWarning`; the other evaluations
and the run itself still load.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import shlex
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nnkit.atomic import write_json
from nnkit.errors import NnkitError
from nnkit.jsonable import json_ready
from nnkit.runs.meta import safe_text
from nnkit.runs.store import BrokenRunWarning, RunInfo

EVALS = "evals"
KINDS = ("robust", "one-pixel", "patch", "corruptions", "confounding")


@dataclass
class Evaluation:
    """One stored evaluation of a run (see the module docstring for the file format)."""

    kind: str
    params: dict
    result: dict
    command: str
    created: str = ""
    seconds: float = 0.0
    versions: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return evaluation_key(self.kind, self.params)


def evaluation_key(kind: str, params: dict) -> str:
    """The file key of an evaluation: 12 hex digits of the SHA-256 of its kind and canonical JSON params."""
    text = json.dumps({"kind": kind, "params": json_ready(params)}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def command_line(argv: list[str]) -> str:
    """A shell-quoted ``nnkit ...`` command line from CLI arguments (without the program name)."""
    return shlex.join(["nnkit", *[str(a) for a in argv]])


def record_evaluation(run: RunInfo, kind: str, params: dict, result: dict, command: str,
                      seconds: float = 0.0) -> Evaluation:
    """Store one evaluation in the run's folder (atomically; replaces one with the same kind and params).

    Args:
        run: the evaluated run (``RunStore.get``).
        kind: one of :data:`KINDS`.
        params: what identifies the evaluation (attack, ε list, n, seed, split, ...); JSON-able.
        result: the numbers; JSON-able.
        command: the CLI command that reproduces it (``command_line``).
        seconds: how long it took.
    Returns:
        The stored :class:`Evaluation`.
    """
    if kind not in KINDS:
        raise NnkitError(f"unknown evaluation kind {kind!r} (one of {', '.join(KINDS)})")
    from nnkit.versions import library_versions

    ev = Evaluation(kind=kind, params=json_ready(params), result=json_ready(result), command=str(command),
                    created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                    seconds=float(seconds), versions=library_versions())
    path = Path(run.path) / EVALS / f"{kind}-{ev.key}.json"
    try:
        write_json(path, asdict(ev))
    except OSError as exc:
        raise NnkitError(f"run {run.run_id}: cannot store the {kind} evaluation ({exc.strerror or exc})") from None
    return ev


def _read(path: Path, run_id: str) -> Evaluation | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
        ev = Evaluation(kind=str(obj["kind"]), params=dict(obj["params"]), result=dict(obj["result"]),
                        command=str(obj["command"]), created=str(obj.get("created", "")),
                        seconds=float(obj.get("seconds", 0.0)), versions=dict(obj.get("versions", {})))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, KeyError, TypeError,
            ValueError) as exc:
        warnings.warn(f"run {run_id}: {EVALS}/{safe_text(path.name)} is unreadable ({safe_text(str(exc))[:80]}; "
                      "skipped)", BrokenRunWarning, stacklevel=3)
        return None
    if ev.kind not in KINDS:
        warnings.warn(f"run {run_id}: {EVALS}/{safe_text(path.name)} has an unknown kind (skipped)",
                      BrokenRunWarning, stacklevel=3)
        return None
    return ev


def list_evaluations(run: RunInfo, kind: str | None = None) -> list[Evaluation]:
    """The run's stored evaluations (of one kind, or all), oldest first; broken files skipped with a warning."""
    folder = Path(run.path) / EVALS
    if not folder.is_dir():
        return []
    pattern = f"{kind}-*.json" if kind else "*.json"
    found = [ev for p in sorted(folder.glob(pattern)) if not p.name.startswith(".")
             if (ev := _read(p, run.run_id)) is not None and (kind is None or ev.kind == kind)]
    return sorted(found, key=lambda ev: ev.created)


def find_evaluation(run: RunInfo, kind: str, params: dict) -> Evaluation | None:
    """The stored evaluation with exactly these params, or None."""
    path = Path(run.path) / EVALS / f"{kind}-{evaluation_key(kind, params)}.json"
    return _read(path, run.run_id) if path.is_file() else None


def latest_evaluation(run: RunInfo, kind: str, match: dict | None = None) -> Evaluation | None:
    """The newest stored evaluation of ``kind`` whose params contain every item of ``match``, or None."""
    match = json_ready(match or {})
    hits = [ev for ev in list_evaluations(run, kind) if all(ev.params.get(k) == v for k, v in match.items())]
    return hits[-1] if hits else None
