"""Runs side by side: one row per run, every cell read from the run's meta.json or a stored evaluation.

    table = compare_runs(["cnn-a", "cnn-adv"], eps=8/255)
    for cell in missing_cells(table):
        print(cell.run_id, cell.column, cell.command)        # what would fill it
    compute_cell("cnn-a", "robust_accuracy", eps=8/255)      # runs that command's library function, records it

The columns follow RobustBench's leaderboard (Croce et al., RobustBench, NeurIPS 2021 Datasets and
Benchmarks: clean and robust accuracy under one threat model and ε, APGD as the reliable attack) and
Hendrycks & Dietterich 2019 (mean accuracy and mCE over common corruptions), plus the one-pixel (Su et
al. 2019) and patch (Brown et al. 2017) success rates and the confounding verdict.

No number is computed here while a table is built: a cell holds what ``nnkit.runs.evaluations`` stored
for the run (with the stored command and the time it was made), or it is missing and names the command
that :func:`compute_cell` would run to fill it. That command uses :data:`COMPUTE_DEFAULTS`, so the
command shown for a missing cell is exactly what ``compute_cell`` (``nnkit compare --compute``, the
Compare page's "compute missing cells") runs.
"""

from __future__ import annotations

import csv
import io
import math
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from nnkit.errors import NnkitError
from nnkit.runs.evaluations import Evaluation, command_line, list_evaluations, record_evaluation
from nnkit.runs.meta import safe_text
from nnkit.runs.store import RunInfo, RunStore

ProgressFn = Callable[[int, int], None]  # (done, total) within one cell

DEFAULT_EPS = 8 / 255

# The budget of every cell compute_cell fills (documented in the command it shows): fixed, so two runs
# compared were measured on the same seeded, stratified images with the same attack budget.
COMPUTE_DEFAULTS = {
    "seed": 0,
    "robust": {"attack": "apgd", "n": 100},  # APGD-CE (Croce & Hein 2020), L∞, the attack's default steps
    "one-pixel": {"n": 100, "pixels": 1, "popsize": 100, "generations": 15},  # the full report's reduced budget
    "patch": {"n": 100, "target": 0, "area": 0.05, "train_n": 500, "steps": 50},  # universal, class 0 as target
    "corruptions": {"n": 100},  # every corruption at severities 1-5, mCE against the table's reference run
    "confounding": {"n": 100},  # only on data with confounder masks (shapes-confounded)
}

SEVERITIES = (1, 2, 3, 4, 5)  # Hendrycks & Dietterich 2019: five severities of every corruption

# Data whose splits carry confounder masks: a confounding check there needs no box from the user.
MASKED_DATA = ("shapes-confounded",)


@dataclass(frozen=True)
class Column:
    """One column of the table: its key, header, what its value is, and the evaluation kind it comes from."""

    key: str
    header: str
    fmt: str  # text | int | seconds | percent (a fraction shown as 97.0%)
    kind: str | None = None  # the stored evaluation kind (None: read from meta.json)


COLUMNS: tuple[Column, ...] = (
    Column("run", "run", "text"),
    Column("model", "model", "text"),
    Column("data", "data", "text"),
    Column("defence", "defence", "text"),
    Column("parameters", "parameters", "int"),
    Column("train_seconds", "training time", "seconds"),
    Column("clean_accuracy", "clean acc.", "percent"),
    Column("robust_accuracy", "robust acc.", "percent", "robust"),
    Column("one_pixel_success", "one-pixel success", "percent", "one-pixel"),
    Column("patch_success", "patch success", "percent", "patch"),
    Column("corruption_accuracy", "corruption acc.", "percent", "corruptions"),
    Column("mce", "mCE", "percent", "corruptions"),
    Column("confounding", "confounding", "text", "confounding"),
)
COLUMN = {c.key: c for c in COLUMNS}
COMPUTABLE = ("robust_accuracy", "one_pixel_success", "patch_success", "corruption_accuracy", "mce", "confounding")


@dataclass
class Cell:
    """One cell: its value (raw: a fraction, a count, seconds or text), where it came from, or why it is empty.

    ``command`` is the command that printed the value (from the stored evaluation) or, for a missing cell,
    the one that would compute it (:func:`cell_command`); ``computable`` says whether :func:`compute_cell`
    can fill it without more input from the user.
    """

    run_id: str
    column: str
    value: float | int | str | None = None
    source: str = ""  # "meta.json", "evaluation robust (apgd, n=100)", ... or "" when missing
    command: str = ""
    created: str = ""
    note: str = ""
    missing: bool = False
    computable: bool = False

    def text(self) -> str:
        """The value as the table shows it: ``97.0%``, ``73,378``, ``12.3 s``, or ``—`` when missing."""
        return format_value(self.value, COLUMN[self.column].fmt)


@dataclass
class CompareRow:
    """One run: its id, a printable label and one :class:`Cell` per column key."""

    run_id: str
    label: str
    cells: dict[str, Cell]


@dataclass
class CompareTable:
    """The result of :func:`compare_runs`: rows in the order the runs were given, and what went wrong reading."""

    eps: float
    rows: list[CompareRow]
    columns: tuple[Column, ...] = COLUMNS
    reference: str | None = None  # the run the mCE column is relative to (None: as stored)
    warnings: list[str] = field(default_factory=list)

    @property
    def eps_text(self) -> str:
        return eps_label(self.eps)

    def to_dict(self) -> dict:
        """JSON-ready: ε, the columns, every row with each cell's raw value and source, and the warnings."""
        return {"eps": self.eps, "eps_text": self.eps_text, "reference": self.reference,
                "columns": [asdict(c) for c in self.columns],
                "rows": [{"run_id": r.run_id, "label": r.label,
                          "cells": {k: _jsonable(asdict(c)) for k, c in r.cells.items()}} for r in self.rows],
                "missing": [{"run_id": c.run_id, "column": c.column, "command": c.command, "computable": c.computable,
                             "note": c.note} for c in missing_cells(self, computable_only=False)],
                "warnings": list(self.warnings)}

    def to_csv(self) -> str:
        """CSV: one line per run, raw values (fractions), then for each cell a ``<column> source`` column."""
        buf = io.StringIO()
        keys = [c.key for c in self.columns]
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["run_id", *keys, *[f"{k} source" for k in keys if k != "run"]])
        for r in self.rows:
            values = ["" if r.cells[k].value is None else r.cells[k].value for k in keys]
            sources = [r.cells[k].command if not r.cells[k].missing else f"missing: {r.cells[k].command}"
                       for k in keys if k != "run"]
            writer.writerow([r.run_id, *values, *sources])
        return buf.getvalue()

    def text_rows(self) -> list[list[str]]:
        """The table as strings (headers first), percentages as ``97.0%`` and ``—`` for missing cells."""
        head = [c.header if c.key != "robust_accuracy" else f"robust acc. ε={self.eps_text}" for c in self.columns]
        return [head] + [[r.cells[c.key].text() for c in self.columns] for r in self.rows]


def _jsonable(d: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def format_value(value, fmt: str) -> str:
    """A cell value in words: fractions as ``97.0%``, counts with separators, seconds with one decimal.

    Args:
        value: the raw value (None: missing).
        fmt: the column's format (``Column.fmt``).

    Returns:
        The text; ``—`` for a missing value.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if fmt == "percent":
        return f"{float(value):.1%}"
    if fmt == "int":
        return f"{int(value):,}"
    if fmt == "seconds":
        return f"{float(value):.1f} s"
    return str(value)


def parse_eps(text: str | float) -> float:
    """An ε as a number or a fraction (``8/255``, ``0.03``) → float in (0, 1] (``nnkit.cli.common.eps_value``).

    Raises:
        NnkitError: for text that is not a number or a value outside (0, 1].
    """
    import argparse

    from nnkit.cli.common import eps_value

    try:
        return eps_value(repr(float(text)) if isinstance(text, int | float) else str(text))
    except argparse.ArgumentTypeError as exc:
        raise NnkitError(f"ε: {exc}") from None


def eps_label(eps: float) -> str:
    """``8/255`` for a multiple of 1/255 (how ε is written for images in [0, 1]), else the number
    (``attacks.pgd.eps_label``, so labels match the stored ``robust_accuracy`` keys)."""
    from attacks.pgd import eps_label as label

    return label(eps)


def _same_eps(a, b: float) -> bool:
    try:
        return abs(float(a) - b) < 1e-6
    except (TypeError, ValueError):
        return False


# -- reading the cells --------------------------------------------------------------------------------------
def _meta_cells(info: RunInfo) -> dict[str, Cell]:
    meta = info.meta
    created = str(meta.get("created", ""))
    eval_cmd = command_line(["eval", info.run_id])

    def cell(key, value, note=""):
        return Cell(info.run_id, key, value, source="meta.json" if value is not None else "",
                    command=eval_cmd if key == "clean_accuracy" else "", created=created, note=note,
                    missing=value is None)

    spec = meta.get("model") or {}
    return {
        "run": cell("run", info.label),
        "model": cell("model", safe_text(spec.get("name", "?"))),
        "data": cell("data", safe_text((meta.get("dataset") or {}).get("name", "?"))),
        "defence": cell("defence", defence_text(meta.get("defence"))),
        "parameters": cell("parameters", meta.get("parameters")),
        "train_seconds": cell("train_seconds", meta.get("seconds")),
        "clean_accuracy": cell("clean_accuracy", meta.get("test_accuracy"),
                               "full test split, measured at the end of training"),
    }


def defence_text(defence) -> str:
    """The run's recorded defence in words (``meta["defence"]``, ``TrainConfig.defence()``): ``none``,
    ``fgsm ε=8/255``, ``pgd ε=8/255, 7 steps``."""
    if not defence:
        return "none"
    if not isinstance(defence, dict):
        return safe_text(str(defence))
    kind = str(defence.get("kind", "?"))
    text = kind
    if isinstance(defence.get("eps"), int | float):
        text += f" ε={eps_label(float(defence['eps']))}"
    if kind == "pgd" and isinstance(defence.get("steps"), int):
        text += f", {defence['steps']} steps"
    return safe_text(text)


def _share(v) -> float | None:
    """A fraction in [0, 1], or None (a hand-edited or broken file's 1.5 is not shown as 150%)."""
    f = _number(v)
    return f if f is not None and 0 <= f <= 1 else None


def _robust_value(ev: Evaluation, eps: float) -> float | None:
    """The robust accuracy an evaluation of kind ``robust`` stored at ``eps``, or None when it did not test it."""
    res = ev.result.get("robust_accuracy")
    if isinstance(res, dict):
        if eps_label(eps) in res:
            return _share(res[eps_label(eps)])
        for i, e in enumerate(_list(ev.result.get("eps")) or _list(ev.params.get("eps"))):
            if _same_eps(e, eps):
                vals = list(res.values())
                return _share(vals[i]) if i < len(vals) else None
        for k, v in res.items():
            try:
                if _same_eps(parse_eps(k), eps):
                    return _share(v)
            except NnkitError:
                continue
    elif isinstance(res, int | float):
        eps_list = _list(ev.params.get("eps")) or [ev.params.get("eps")]
        if any(_same_eps(e, eps) for e in eps_list):
            return _share(res)
    return None


def _list(x) -> list:
    return x if isinstance(x, list) else []


def _count(ev: Evaluation) -> int:
    """The evaluation's image count (0 when the file holds something else: hand-edited files rank last)."""
    n = ev.params.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) else 0


def _number(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _pick(evs: list[Evaluation], rank) -> Evaluation | None:
    """The best evaluation by ``rank`` (a sort key; higher is preferred), newest among equals."""
    ranked = [(rank(ev), i, ev) for i, ev in enumerate(evs)]  # list_evaluations is oldest first
    ranked = [r for r in ranked if r[0] is not None]
    return max(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None


def _describe(ev: Evaluation, what: str) -> str:
    n = ev.params.get("n", ev.result.get("n"))
    return f"evaluation {ev.kind} ({what}{', n=' + str(n) if n is not None else ''})"


def _from_eval(run_id: str, key: str, ev: Evaluation, value, what: str, note: str = "") -> Cell:
    return Cell(run_id, key, value, source=_describe(ev, what), command=ev.command, created=ev.created, note=note,
                missing=value is None)


def _missing(info: RunInfo, key: str, eps: float, note: str = "", reference: str | None = None) -> Cell:
    cmd, computable, why = cell_command(info, key, eps=eps, reference=reference)
    return Cell(info.run_id, key, None, command=cmd, note=note or why, missing=True, computable=computable)


def _eval_cells(info: RunInfo, eps: float, reference: str | None) -> dict[str, Cell]:
    evs = list_evaluations(info)
    by_kind: dict[str, list[Evaluation]] = {}
    for ev in evs:
        by_kind.setdefault(ev.kind, []).append(ev)
    cells: dict[str, Cell] = {}

    # Robust accuracy: APGD preferred (the reliable attack, Croce & Hein 2020), else PGD, else FGSM; only untargeted
    # L∞ attacks on the test split (ε here is an L∞ budget, and a targeted attack only bounds robustness from
    # above); more images before fewer.
    order = {"apgd": 3, "pgd": 2, "fgsm": 1}

    def robust_rank(ev):
        p = ev.params
        if _robust_value(ev, eps) is None or str(p.get("norm", "linf")).lower() != "linf" \
                or p.get("target") is not None or p.get("split", "test") != "test":
            return None
        return order.get(str(ev.params.get("attack", "")).lower(), 0), _count(ev)

    ev = _pick(by_kind.get("robust", []), robust_rank)
    if ev is not None:
        attack = str(ev.params.get("attack", "?")).upper()
        cells["robust_accuracy"] = _from_eval(info.run_id, "robust_accuracy", ev, _robust_value(ev, eps),
                                              f"{attack} ε={eps_label(eps)}", note=attack)
    else:
        other = sorted({eps_label(float(e)) for ev in by_kind.get("robust", [])
                        for e in _list(ev.result.get("eps")) if _share(e) is not None})
        note = f"stored at ε = {', '.join(other)} only" if other else ""
        cells["robust_accuracy"] = _missing(info, "robust_accuracy", eps, note)

    def success_rank(prefer: dict):
        def rank(ev):
            if _share(ev.result.get("success_rate")) is None:
                return None
            return sum(ev.params.get(k) == v for k, v in prefer.items()), _count(ev)
        return rank

    ev = _pick(by_kind.get("one-pixel", []), success_rank({"pixels": 1, "target": None}))
    cells["one_pixel_success"] = (_from_eval(info.run_id, "one_pixel_success", ev, _share(ev.result["success_rate"]),
                                             f"k={ev.params.get('pixels', '?')}"
                                             + (", targeted" if ev.params.get("target") is not None else ""))
                                  if ev is not None else _missing(info, "one_pixel_success", eps))
    ev = _pick(by_kind.get("patch", []), success_rank({"kind": "universal"}))
    cells["patch_success"] = (_from_eval(info.run_id, "patch_success", ev, _share(ev.result["success_rate"]),
                                         f"area {ev.params.get('area', '?')}, target {ev.params.get('target', '?')}")
                              if ev is not None else _missing(info, "patch_success", eps))

    # Corruptions (Hendrycks & Dietterich 2019): the mean accuracy from any evaluation (more images first); the
    # mCE only from one against the chosen reference run (any reference when none is chosen).
    def corruption_rank(ev):
        if _share(ev.result.get("mean_accuracy")) is None:
            return None
        return int(_ref_of(ev) == reference), _count(ev)

    def mce_rank(ev):
        if _number(ev.result.get("mce")) is None or (reference is not None and _ref_of(ev) != reference):
            return None
        return _count(ev)

    corr = by_kind.get("corruptions", [])
    ev = _pick(corr, corruption_rank)
    cells["corruption_accuracy"] = (_from_eval(info.run_id, "corruption_accuracy", ev,
                                               _share(ev.result["mean_accuracy"]), "mean over corruptions")
                                    if ev is not None else _missing(info, "corruption_accuracy", eps,
                                                                    reference=reference))
    ev = _pick(corr, mce_rank)
    if ev is not None:
        cells["mce"] = _from_eval(info.run_id, "mce", ev, _number(ev.result["mce"]), f"reference {_ref_of(ev)}",
                                  note=f"relative to run {_ref_of(ev)}")
    else:
        why = "" if reference is not None else ("mCE is relative to a reference run: choose one (nnkit compare "
                                                "--reference RUN)" if corr else "")
        cells["mce"] = _missing(info, "mce", eps, why, reference=reference)
        if reference is None and corr:
            cells["mce"].computable = False

    ev = _pick(by_kind.get("confounding", []),
               lambda ev: (_count(ev),) if ev.result.get("verdict") in ("relies_on_confounder", "no_evidence") else None)
    if ev is not None:
        box = ev.params.get("mask_box") or "dataset masks"
        cells["confounding"] = _from_eval(info.run_id, "confounding", ev, verdict_text(ev.result["verdict"]),
                                          f"mask {box}", note=str(ev.result.get("reason", ""))[:200])
    else:
        cells["confounding"] = _missing(info, "confounding", eps)
    return cells


def _ref_of(ev: Evaluation) -> str | None:
    return ev.result.get("reference") or ev.params.get("reference")


def verdict_text(verdict: str) -> str:
    """``relies_on_confounder`` → ``relies on confounder``; ``no_evidence`` → ``no evidence``."""
    return {"relies_on_confounder": "relies on confounder", "no_evidence": "no evidence"}.get(verdict, str(verdict))


def compare_runs(refs: Sequence[str | RunInfo], *, eps: float | str = DEFAULT_EPS, reference: str | RunInfo | None = None,
                 store: RunStore | None = None) -> CompareTable:
    """The runs side by side, read from their meta.json and stored evaluations (nothing is computed).

    Args:
        refs: runs (ids, unique prefixes, names or RunInfo); repeats are shown once, in the given order.
        eps: the L∞ budget of the robust-accuracy column (a number or a fraction such as ``"8/255"``).
        reference: the run the mCE column is relative to (Hendrycks & Dietterich 2019 use AlexNet; here
            e.g. the standard model beside adversarially trained ones); None: whichever reference was stored.
        store: the run store (default: ``$NNKIT_HOME/runs``).

    Returns:
        CompareTable: one row per run with one Cell per column of :data:`COLUMNS`; a broken evaluation file
        is skipped with a ``BrokenRunWarning`` (also listed in ``table.warnings``).

    Raises:
        NnkitError: for an unknown run or a bad ε (one line).
    """
    eps = parse_eps(eps)
    store = store or RunStore()
    ref_id = None
    if reference is not None:
        ref_id = (reference if isinstance(reference, RunInfo) else store.get(str(reference))).run_id
    infos: list[RunInfo] = []
    for ref in refs:
        info = ref if isinstance(ref, RunInfo) else store.get(str(ref))
        if info.kind != "classifier":
            raise NnkitError(f"run {info.label} is a {info.kind} run: only classifiers can be compared")
        if info.run_id not in {i.run_id for i in infos}:
            infos.append(info)
    rows = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for info in infos:
            rows.append(CompareRow(info.run_id, info.label, {**_meta_cells(info), **_eval_cells(info, eps, ref_id)}))
    table = CompareTable(eps, rows, reference=ref_id)
    for w in caught:
        table.warnings.append(str(w.message))
        warnings.warn(w.message if isinstance(w.message, Warning) else str(w.message), w.category, stacklevel=2)
    return table


def missing_cells(table: CompareTable, *, computable_only: bool = True) -> list[Cell]:
    """The empty cells of a table, one per command to run (one corruption evaluation fills accuracy and mCE).

    Args:
        table: from :func:`compare_runs`.
        computable_only: leave out the cells :func:`compute_cell` cannot fill alone (a confounding check on
            data without masks needs a box from the user).

    Returns:
        The cells, run by run, in column order; each names its command.
    """
    out, commands = [], set()
    for row in table.rows:
        for c in table.columns:
            cell = row.cells[c.key]
            if cell.missing and c.key in COMPUTABLE and (cell.computable or not computable_only) \
                    and (cell.run_id, cell.command) not in commands:
                commands.add((cell.run_id, cell.command))
                out.append(cell)
    return out


# -- computing a cell ---------------------------------------------------------------------------------------
def _budget(kind: str, n: int | None, seed: int | None) -> tuple[dict, int]:
    b = dict(COMPUTE_DEFAULTS[kind])
    if n is not None:
        b["n"] = int(n)
    return b, COMPUTE_DEFAULTS["seed"] if seed is None else int(seed)


def cell_command(run: RunInfo, column: str, *, eps: float = DEFAULT_EPS, n: int | None = None,
                 seed: int | None = None, reference: str | None = None) -> tuple[str, bool, str]:
    """The command that computes a cell with :data:`COMPUTE_DEFAULTS` (or the ``n``/``seed`` given): the very
    command the library function records when :func:`compute_cell` runs it.

    Args:
        run: the run.
        column: a column key (``robust_accuracy``, ``one_pixel_success``, ``patch_success``,
            ``corruption_accuracy``, ``mce``, ``confounding``).
        eps: the robust-accuracy ε; n, seed: override the default budget.
        reference: the mCE reference run id (corruption columns).

    Returns:
        ``(command, computable, why not)``: ``computable`` is False when the command needs more input (a
        confounding box) or the column is not computed (read from meta.json).
    """
    from nnkit.cli import attack as attack_cli

    rid = run.run_id
    if column == "robust_accuracy":
        from attacks.apgd import DEFAULT_STEPS

        b, s = _budget("robust", n, seed)
        argv = attack_cli.robust_argv(rid, attack=b["attack"], eps=[eps], norm="linf", steps=DEFAULT_STEPS, n=b["n"],
                                      seed=s)
        return command_line(argv), True, ""
    if column == "one_pixel_success":
        b, s = _budget("one-pixel", n, seed)
        argv = attack_cli.one_pixel_argv(rid, n=b["n"], pixels=b["pixels"], popsize=b["popsize"],
                                         generations=b["generations"], seed=s)
        return command_line(argv), True, ""
    if column == "patch_success":
        b, s = _budget("patch", n, seed)
        argv = attack_cli.patch_argv(rid, target=b["target"], area=b["area"], shape="square", kind="universal",
                                     n=b["n"], train_n=b["train_n"], steps=b["steps"], seed=s)
        return command_line(argv), True, ""
    if column in ("corruption_accuracy", "mce"):
        from nnkit.corruptions.evaluate import corrupt_command
        from nnkit.corruptions.registry import check_corruptions

        b, s = _budget("corruptions", n, seed)
        return corrupt_command(rid, b["n"], "test", s, check_corruptions(None), SEVERITIES, reference), True, ""
    if column == "confounding":
        b, s = _budget("confounding", n, seed)
        data = (run.meta.get("dataset") or {}).get("name", "")
        if data in MASKED_DATA:
            return command_line(["confounding", rid, "--n", b["n"], "--seed", s]), True, ""
        return (command_line(["confounding", rid, "--mask-box", "x0,y0,x1,y1", "--n", b["n"], "--seed", s]), False,
                f"{data} has no confounder masks: name the suspected region (nnkit discover finds candidates)")
    return "", False, "read from meta.json (training)"


def compute_cell(run: str | RunInfo, column: str, *, eps: float | str = DEFAULT_EPS, n: int | None = None,
                 seed: int | None = None, reference: str | None = None, device: str | None = None,
                 on_progress: ProgressFn | None = None, stop_event: threading.Event | None = None) -> Evaluation:
    """Fill one cell: run the library function behind :func:`cell_command` with ``record=True``.

    APGD-CE at ε (Croce & Hein 2020) via ``attacks.on_run.robust_on_run``; the corruption suite (Hendrycks &
    Dietterich 2019) via ``nnkit.corruptions.evaluate.corruption_eval_on_run`` (accuracy and, with a
    reference, mCE); the single-pixel (Su et al. 2019) and universal patch (Brown et al. 2017) attacks via
    ``one_pixel_on_run`` / ``patch_on_run``; the confounding check (:func:`nnkit.jobs.explain_tasks.confounding`,
    recorded by :func:`record_confounding`) on data with confounder masks.

    Args:
        run: the run (id, prefix, name or RunInfo).
        column: a computable column key (see :data:`COMPUTABLE`).
        eps: ε of the robust accuracy; n, seed: override :data:`COMPUTE_DEFAULTS` (the recorded command says so).
        reference: the mCE reference run (corruption columns; None: no mCE).
        device: where it runs (None: ``nnkit.device.get_device``).
        on_progress: called with (done, total) units of work; stop_event: set it to cancel.

    Returns:
        The stored Evaluation.

    Raises:
        NnkitError: the column is not computable (or needs a box).
    """
    info = run if isinstance(run, RunInfo) else RunStore().get(run)
    eps = parse_eps(eps)
    if column not in COMPUTABLE:
        raise NnkitError(f"column {column!r} is read from the run's meta.json, not computed: choose one of "
                         f"{', '.join(COMPUTABLE)}")
    if reference is not None:
        reference = RunStore().get(reference).run_id
    command, computable, why = cell_command(info, column, eps=eps, n=n, seed=seed, reference=reference)
    if not computable:
        raise NnkitError(f"cannot compute {column} of run {info.label}: {why}")
    common = dict(on_progress=on_progress, stop_event=stop_event, device=device)
    if column == "robust_accuracy":
        from attacks.on_run import robust_on_run

        b, s = _budget("robust", n, seed)
        done = robust_on_run(info, attack=b["attack"], eps=[eps], norm="linf", n=b["n"], seed=s, split="test",
                             record=True, **common)
        return _stored(done.evaluation, command)
    if column == "one_pixel_success":
        from attacks.on_run import one_pixel_on_run

        b, s = _budget("one-pixel", n, seed)
        done = one_pixel_on_run(info, n=b["n"], pixels=b["pixels"], popsize=b["popsize"],
                                generations=b["generations"], seed=s, record=True, **common)
        return _stored(done.evaluation, command)
    if column == "patch_success":
        from attacks.on_run import patch_on_run

        b, s = _budget("patch", n, seed)
        done = patch_on_run(info, target=b["target"], area=b["area"], shape="square", kind="universal", n=b["n"],
                            train_n=b["train_n"], steps=b["steps"], seed=s, record=True, **common)
        return _stored(done.evaluation, command)
    if column in ("corruption_accuracy", "mce"):
        from nnkit.corruptions.evaluate import KIND, corruption_eval_on_run
        from nnkit.runs.evaluations import find_evaluation

        b, s = _budget("corruptions", n, seed)
        done = corruption_eval_on_run(info, n=b["n"], seed=s, severities=SEVERITIES, reference=reference,
                                      record=True, **common)
        return _stored(find_evaluation(info, KIND, done.params), command)
    from nnkit.jobs.explain_tasks import confounding

    b, s = _budget("confounding", n, seed)

    def progress(fraction: float, message: str) -> None:
        if on_progress is not None:
            on_progress(int(round(1000 * fraction)), 1000)

    t0 = time.perf_counter()
    out = confounding(info.run_id, n=b["n"], seed=s, device=device, on_progress=progress, stop_event=stop_event)
    return record_confounding(info, out, n=b["n"], seed=s, seconds=time.perf_counter() - t0)


def _stored(ev: Evaluation | None, command: str) -> Evaluation:
    if ev is None:  # another rank under torchrun, or a function that did not record
        raise NnkitError(f"{command} ran but stored no evaluation")
    return ev


# -- the confounding evaluation -----------------------------------------------------------------------------
def record_confounding(run: RunInfo, out: dict, *, n: int, seed: int, data: str | None = None,
                       split: str | None = None, mask_box: str | None = None, methods=None,
                       reference: str | None = None, classes: list[str] | None = None,
                       data_opts: list[str] | None = None, seconds: float = 0.0) -> Evaluation:
    """Store a confounding check (``nnkit confounding --json``'s output) as an evaluation of kind ``confounding``.

    The check is ``nnkit.confounding.check`` (relevance mass and pointing game inside the mask, Lapuschkin et
    al. 2019; counterfactual and erasure tests against a control region); params identify it (data, split, mask box, n, seed, methods,
    reference, classes), the result keeps the verdict and the key evidence, and the command repeats it.

    Args:
        run: the checked run.
        out: ``{"verdict", "reason", "evidence", "mass_ratio", ...}`` as ``nnkit confounding --json`` prints it.
        n, seed, data, split, mask_box, methods, reference, classes: the check's settings, as given on the
            command line (None: the default).
        data_opts: ``--data-opt KEY=VALUE`` items given (None: the run's own data options).
        seconds: how long it took.

    Returns:
        The stored Evaluation.
    """
    from nnkit.confounding.check import DEFAULT_METHODS

    methods = list(methods or DEFAULT_METHODS) if not isinstance(methods, str) else methods.split(",")
    params = {"data": data, "split": split, "mask_box": mask_box, "n": int(n), "seed": int(seed),
              "methods": methods, "reference": reference, "classes": list(classes or []) or None,
              "data_opts": list(data_opts or []) or None}
    argv = ["confounding", run.run_id]
    if data:
        argv += ["--data", data]
    for opt in data_opts or []:
        argv += ["--data-opt", opt]
    if split:
        argv += ["--split", split]
    if mask_box:
        argv += ["--mask-box", str(mask_box)]
    argv += ["--n", int(n), "--seed", int(seed)]
    if list(methods) != list(DEFAULT_METHODS):
        argv += ["--methods", ",".join(methods)]
    if reference:
        argv += ["--reference", reference]
    for c in classes or []:
        argv += ["--class", c]
    info = out.get("info") or {}
    result = {"verdict": out.get("verdict"), "reason": out.get("reason"), "n": out.get("n"),
              "mass_ratio": out.get("mass_ratio"), "relevance_mass": out.get("relevance_mass"),
              "pointing_game": out.get("pointing_game"), "area_share": out.get("area_share"),
              "evidence": [{k: e.get(k) for k in ("test", "kind", "value", "threshold", "passed")}
                           for e in out.get("evidence") or []],
              "mask": (info.get("box") or {}).get("text", info.get("mask")), "data": info.get("data"),
              "split": info.get("split"), "reference_run_id": out.get("reference_run_id"),
              "reference_verdict": (out.get("reference") or {}).get("verdict")}
    return record_evaluation(run, "confounding", params, result, command_line(argv), seconds=seconds)
