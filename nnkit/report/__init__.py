"""Robustness reports: one canonical JSON per run (model card, robustness, explanations, shortcut discovery,
summary), rendered to self-contained HTML, Markdown with PNG figures, and PDF through headless Chromium.

    from nnkit.report import build_report, write_report
    report = build_report("quick-start", quick=True)     # a dict, valid against schema.json
    write_report(report, "report.html")                   # or report.md / report.json / report.pdf

Names are imported on first use (PEP 562), so the CLI can read ``SECTIONS`` and ``FORMATS`` for its help
without loading torch.
"""

from importlib import import_module

_WHERE = {"build_report": "build", "validate_report": "schema", "SECTIONS": "settings", "ReportSettings": "settings",
          "parse_sections": "settings", "FORMATS": "write", "list_reports": "write", "reports_dir": "write",
          "save_report_folder": "write", "write_report": "write"}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f"nnkit.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'nnkit.report' has no attribute {name!r}")
