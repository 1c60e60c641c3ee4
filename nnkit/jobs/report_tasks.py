"""The Report page's work: build a run's robustness report in a JobManager worker and save it in every format."""

from __future__ import annotations

import time

from nnkit.jobs.manager import JobContext
from nnkit.report import build_report, save_report_folder
from nnkit.report.settings import ReportSettings


def report_task(ctx: JobContext, run_id: str, sections=None, quick: bool = False, overrides: dict | None = None) -> dict:
    """Build the report of ``run_id`` as a job (live progress, cancel) and save it under ``$NNKIT_HOME/reports``.

    Args:
        ctx: the job context; every check runs on ``ctx.device`` and stops on ``ctx.stop_event``.
        run_id: the run.
        sections: ``model_card``, ``robustness``, ``explanations`` (None: all).
        quick: the quick budget instead of the full one.
        overrides: report settings to change (``{field: value}``, see ``ReportSettings``).

    Returns:
        ``{"run_id", "folder", "files", "findings", "seconds", "quick", "sections"}``: the folder holds
        report.html, report.json, report.md with its PNGs and, where Chromium is installed, report.pdf.
    """
    t0 = time.perf_counter()
    settings = ReportSettings.make(quick, overrides)
    report = build_report(run_id, sections=sections, settings=settings, device=ctx.device,
                          on_progress=lambda f, m: ctx.update(0.95 * f, m), stop_event=ctx.stop_event)
    ctx.check_cancelled()
    ctx.update(0.96, "writing HTML, JSON, Markdown and PDF")
    folder = save_report_folder(report)
    seconds = time.perf_counter() - t0
    ctx.set_summary(f"report of {report['run']['run_id']} built in {seconds:.0f} s")
    return {"run_id": report["run"]["run_id"], "folder": str(folder),
            "files": sorted(p.name for p in folder.iterdir() if p.is_file()),
            "findings": report["summary"]["findings"], "seconds": seconds, "quick": settings.quick,
            "sections": report["settings"]["sections"]}
