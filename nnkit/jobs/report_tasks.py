"""The Report page's work: build a run's robustness report in a JobManager worker and save it in every format."""

from __future__ import annotations

import time

from nnkit.jobs.manager import JobContext
from nnkit.report import build_report, save_report_folder
from nnkit.report.build import part_count
from nnkit.report.settings import ReportSettings


def report_task(ctx: JobContext, run_id: str, sections=None, quick: bool = False, overrides: dict | None = None) -> dict:
    """Build the report of ``run_id`` as a job (live progress, cancel) and save it under ``$NNKIT_HOME/reports``.

    Args:
        ctx: the job context; every check runs on ``ctx.device`` and stops on ``ctx.stop_event``.
        run_id: the run.
        sections: ``model_card``, ``robustness``, ``explanations`` (None: all).
        quick: the quick budget instead of the full one.
        overrides: report settings to change (``{field: value}``, see ``ReportSettings``).

    Progress is reported in report parts (loading, evaluation, each check, writing the files), so the bar shows
    a measured rate and time left.

    Returns:
        ``{"run_id", "folder", "files", "findings", "seconds", "quick", "sections"}``: the folder holds
        report.html, report.json, report.md with its PNGs and, where Chromium is installed, report.pdf.
    """
    t0 = time.perf_counter()
    settings = ReportSettings.make(quick, overrides)
    # The unit is a part of the build (loading, evaluation, each check): the build names each part as it begins,
    # so a new message is a part done. Parts differ in cost, so while one runs longer than the rate window the
    # bar's time left comes from the cost-weighted fraction instead (see JobContext.update).
    parts = part_count(sections, settings) + 1  # and writing the files
    state = {"message": None, "done": -1}

    def on_progress(fraction: float, message: str) -> None:
        if message != state["message"]:
            state["message"], state["done"] = message, state["done"] + 1
        ctx.update(0.95 * fraction, message, done=min(state["done"], parts), total=parts, unit="report parts")

    report = build_report(run_id, sections=sections, settings=settings, device=ctx.device,
                          on_progress=on_progress, stop_event=ctx.stop_event)
    ctx.check_cancelled()
    ctx.update(0.96, "writing HTML, JSON, Markdown and PDF", done=parts - 1, total=parts, unit="report parts")
    folder = save_report_folder(report)
    ctx.update(1.0, "report saved", done=parts, total=parts, unit="report parts")
    seconds = time.perf_counter() - t0
    ctx.set_summary(f"report of {report['run']['run_id']} built in {seconds:.0f} s")
    return {"run_id": report["run"]["run_id"], "folder": str(folder),
            "files": sorted(p.name for p in folder.iterdir() if p.is_file()),
            "findings": report["summary"]["findings"], "seconds": seconds, "quick": settings.quick,
            "sections": report["settings"]["sections"]}
