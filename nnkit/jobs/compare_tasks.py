"""The Compare page's work: fill a table's missing cells in a JobManager worker (progress, cancel)."""

from __future__ import annotations

from nnkit.compare import compare_runs, compute_cell, missing_cells
from nnkit.jobs.manager import JobContext


def compute_missing_task(ctx: JobContext, run_ids: list[str], eps: float, reference: str | None = None,
                         columns: list[str] | None = None) -> dict:
    """Compute the missing cells of ``compare_runs(run_ids, eps=eps)`` one after another, each stored as an
    evaluation of its run (``nnkit.compare.compute_cell``, the command shown for the cell).

    Args:
        ctx: the job context; every cell runs on ``ctx.device`` and stops on ``ctx.stop_event``.
        run_ids: the runs of the table.
        eps: ε of the robust-accuracy column.
        reference: the run the mCE column is relative to (None: no mCE is computed).
        columns: only these column keys (None: every computable missing cell).

    Returns:
        ``{"computed": [{"run_id", "column", "command"}, ...], "failed": [{"run_id", "column", "error"}, ...]}``;
        a cell whose library function is not available is listed under ``failed`` and the others go on.
    """
    from nnkit.errors import NnkitError

    table = compare_runs(run_ids, eps=eps, reference=reference)
    todo = [c for c in missing_cells(table) if columns is None or c.column in columns]
    computed, failed = [], []
    # Each cell gets 1,000 units of the bar whatever its own unit (steps, queries, images): the ETA says time left only.
    total = 1000 * max(1, len(todo))
    for i, cell in enumerate(todo):
        ctx.check_cancelled()
        what = f"{cell.column.replace('_', ' ')} of {cell.run_id} ({i + 1}/{len(todo)})"
        ctx.update(message=what, done=1000 * i, total=total, unit="")

        def progress(done: int, cell_total: int, i=i, what=what) -> None:
            frac = done / cell_total if cell_total else 0.0
            ctx.update(message=what, done=1000 * i + int(1000 * min(1.0, frac)), total=total, unit="")

        try:
            compute_cell(cell.run_id, cell.column, eps=eps, reference=table.reference, device=ctx.device,
                         on_progress=progress, stop_event=ctx.stop_event)
        except NnkitError as exc:
            failed.append({"run_id": cell.run_id, "column": cell.column, "error": str(exc)})
            continue
        computed.append({"run_id": cell.run_id, "column": cell.column, "command": cell.command})
    ctx.update(1.0, "done", done=total, total=total, unit="")
    ctx.set_summary(f"{len(computed)} cell{'s' * (len(computed) != 1)} computed"
                    + (f", {len(failed)} failed" if failed else ""))
    return {"computed": computed, "failed": failed}
