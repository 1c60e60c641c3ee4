"""``nnkit compare RUN RUN ...``: runs side by side, every cell from a stored evaluation (``nnkit.compare``).

Prints an aligned table (percentages as 97.0%, ``—`` for a missing cell) and, below it, the commands that
would fill the missing cells; ``--compute`` runs them first (progress bars); ``--json`` / ``--csv`` print
the raw numbers with their sources instead.
"""

from __future__ import annotations

import sys

from nnkit.cli.common import add_device_arg, emit_json, positive_int, progress_bar


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="runs side by side: clean and robust accuracy, attacks, corruptions, "
                       "confounding, each from a stored evaluation",
                       description="One row per run. Every number comes from the run's meta.json or an evaluation "
                       "stored by the command shown beside it; a missing cell is listed with the command that "
                       "computes it (--compute runs them).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run ids, unique id prefixes, or names")
    p.add_argument("--eps", default="8/255", help="L∞ budget of the robust-accuracy column, a number or a fraction "
                   "(default: %(default)s)")
    p.add_argument("--reference", metavar="RUN", help="the run the mCE column is relative to (Hendrycks & Dietterich "
                   "2019), e.g. the standard model beside adversarially trained ones (default: as stored)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON object (raw numbers and sources)")
    out.add_argument("--csv", action="store_true", help="print CSV (raw numbers and sources)")
    p.add_argument("--compute", action="store_true", help="compute the missing cells first (with the commands "
                   "listed under the table)")
    p.add_argument("--n", type=positive_int, help="images per computed cell (default: each evaluation's own, see "
                   "nnkit.compare.COMPUTE_DEFAULTS)")
    add_device_arg(p)
    p.set_defaults(func=run_compare, seed=0)  # seed: no random draw by the CLI (compute uses the fixed defaults)


def run_compare(args) -> int:
    from nnkit.compare import cell_command, compare_runs, compute_cell, missing_cells, parse_eps
    from nnkit.runs import RunStore

    eps = parse_eps(args.eps)  # a bad ε fails before any run is read
    table = compare_runs(args.runs, eps=eps, reference=args.reference)
    if args.compute:
        todo = missing_cells(table)
        store = RunStore()
        for i, cell in enumerate(todo, 1):
            command = cell_command(store.get(cell.run_id), cell.column, eps=eps, n=args.n, reference=table.reference)[0]
            sys.stderr.write(f"[{i}/{len(todo)}] {command}\n")
            bar = progress_bar(0, f"{cell.column} of {cell.run_id[:24]}", disable=args.json or args.csv)

            def update(done: int, total: int, bar=bar) -> None:
                if bar.total != total:
                    bar.reset(total=total)
                bar.n = done
                bar.refresh()

            try:
                compute_cell(cell.run_id, cell.column, eps=eps, n=args.n, reference=table.reference, device=args.device,
                             on_progress=update)
            finally:
                bar.close()
        if todo:
            table = compare_runs(args.runs, eps=eps, reference=args.reference)
    if args.json:
        emit_json(table.to_dict())
        return 0
    if args.csv:
        sys.stdout.write(table.to_csv())
        return 0
    print(aligned(table.text_rows()))
    missing = missing_cells(table, computable_only=False)
    if missing:
        print(f"\n{len(missing)} missing cell{'s' * (len(missing) != 1)} (—); the commands that fill them"
              + (" (or run nnkit compare --compute):" if any(c.computable for c in missing) else ":"))
        for c in missing:
            print(f"  {c.command}" + ("" if c.computable else f"    # {c.note}"))
    notes = [(row.label, c) for row in table.rows for c in row.cells.values() if not c.missing and c.source
             and c.source != "meta.json"]
    if notes:
        print("\nsources:")
        for label, c in notes:
            print(f"  {label} · {c.column}: {c.command} ({c.created})")
    return 0


def aligned(rows: list[list[str]]) -> str:
    """Rows of strings as a table: text left-aligned, numbers right-aligned, a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]

    def numeric(text: str) -> bool:
        return text[:1].isdigit() or text == "—"

    lines = []
    for j, r in enumerate(rows):
        cells = [(v.rjust(w) if j and numeric(v) else v.ljust(w)) for v, w in zip(r, widths)]
        lines.append("  ".join(cells).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
