"""Write a report in one format (``nnkit report --out``) or in all of them into a report folder (the dashboard).

Every file is written atomically (``nnkit.atomic``); a report folder is assembled under
``$NNKIT_HOME/reports/.partial/`` and renamed into place only when complete, like a run.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import zipfile
from pathlib import Path

from nnkit.atomic import check_writable, write_bytes, write_json, write_text
from nnkit.errors import NnkitError
from nnkit.paths import nnkit_home

FORMATS = ("html", "md", "json", "pdf")
_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".markdown": "md", ".json": "json", ".pdf": "pdf"}
_PARTIAL = ".partial"


def reports_dir() -> Path:
    """Where the dashboard's report jobs put their folders: ``$NNKIT_HOME/reports``."""
    return nnkit_home() / "reports"


def resolve_format(out: str | os.PathLike, fmt: str | None = None) -> str:
    """The output format: ``fmt`` when given, else read off the file suffix of ``out``.

    Returns:
        One of ``FORMATS``; a one-line NnkitError for an unknown format or a suffix that names none.
    """
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise NnkitError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
        return fmt
    suffix = Path(out).suffix.lower()
    if suffix not in _SUFFIXES:
        raise NnkitError(f"cannot tell the format of {str(out)!r} from its suffix: end it in .html, .md, .json or "
                         ".pdf, or give --format")
    return _SUFFIXES[suffix]


def write_report(report: dict, out: str | os.PathLike, fmt: str | None = None) -> list[Path]:
    """Validate ``report`` and write it to ``out`` in one format.

    Args:
        report: a report dict (``build_report``).
        out: the file; Markdown also writes the PNGs into ``<stem>_files/`` beside it.
        fmt: html, md, json or pdf (None: from the suffix of ``out``).

    Returns:
        The files written, the main one first.
    """
    from nnkit.report.schema import validate_report

    fmt = resolve_format(out, fmt)
    path = check_writable(out)
    validate_report(report)
    if fmt == "json":
        return [write_json(path, report)]
    if fmt == "md":
        from nnkit.report.render_md import render_markdown

        folder = f"{path.stem}_files"
        text, files = render_markdown(report, folder)
        written = [write_bytes(path.parent / folder / name, data) for name, data in files.items()]
        return [write_text(path, text), *written]
    from nnkit.report.render_html import render_html

    html = render_html(report)
    if fmt == "pdf":
        from nnkit.report.pdf import html_to_pdf

        return [write_bytes(path, html_to_pdf(html))]
    return [write_text(path, html)]


def save_report_folder(report: dict, pdf: bool = True) -> Path:
    """Write a report in every format into a new folder ``$NNKIT_HOME/reports/<run id>-<UTC time>/``.

    Args:
        report: a report dict.
        pdf: also print report.pdf when headless Chromium is installed (skipped quietly otherwise).

    Returns:
        The folder: report.html, report.json, report.md with report_files/, report.pdf where printed, and a
        small meta.json (run id, title, created, sections, files) for listing reports without reading them.
    """
    from nnkit.report.pdf import find_chromium

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = f"{report['run']['run_id']}-{stamp}"
    root = reports_dir()
    partial = root / _PARTIAL / name
    final = root / name
    n = 1
    while final.exists() or partial.exists():  # two reports of one run within a second
        n += 1
        partial, final = root / _PARTIAL / f"{name}-{n}", root / f"{name}-{n}"
    try:
        write_report(report, partial / "report.json", "json")
        write_report(report, partial / "report.html", "html")
        write_report(report, partial / "report.md", "md")
        if pdf and find_chromium() is not None:
            write_report(report, partial / "report.pdf", "pdf")
        files = sorted(str(f.relative_to(partial)) for f in partial.rglob("*") if f.is_file())
        write_json(partial / "meta.json", {"run_id": report["run"]["run_id"], "title": report["title"],
                                           "created": report["created"], "quick": report["settings"]["quick"],
                                           "sections": report["settings"]["sections"], "files": files,
                                           "findings": report["summary"]["findings"]})
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def list_reports(run_id: str | None = None) -> list[dict]:
    """Complete report folders, newest first (only those of ``run_id`` when given).

    Returns:
        Each folder's meta.json (run_id, title, created, quick, sections, files, findings) with ``folder`` added.
    """
    import json

    root = reports_dir()
    if not root.is_dir():
        return []
    found = []
    for d in root.iterdir():
        if d.name.startswith(".") or not (d / "meta.json").is_file():
            continue
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a damaged folder is not listed rather than breaking the listing
        if run_id is None or meta.get("run_id") == run_id:
            found.append((meta.get("created", ""), d.name, {**meta, "folder": d}))
    return [m for *_, m in sorted(found, key=lambda t: t[:2], reverse=True)]


def markdown_zip(folder: str | os.PathLike) -> bytes:
    """report.md and its PNG folder from a report folder, zipped (the Markdown download)."""
    folder = Path(folder)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(folder / "report.md", "report.md")
        for f in sorted((folder / "report_files").glob("*.png")):
            zf.write(f, f"report_files/{f.name}")
    return buf.getvalue()
