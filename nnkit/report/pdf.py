"""Print a report's HTML to PDF with headless Chromium (``chromium --headless --print-to-pdf``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from nnkit.errors import NnkitError

DEFAULT_CHROMIUM = "/usr/bin/chromium"
TIMEOUT_S = 120
# No sandbox (containers run as root), no GPU, and nothing that phones home: the report needs no network.
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--run-all-compositor-stages-before-draw", "--virtual-time-budget=15000", "--no-pdf-header-footer",
          "--window-size=700,1000"]  # about the printable width of A4 and Letter: plotly draws at that width


def find_chromium() -> str | None:
    """The Chromium executable: ``$NNKIT_CHROMIUM``, else /usr/bin/chromium, else ``chromium`` on the PATH."""
    for candidate in (os.environ.get("NNKIT_CHROMIUM"), DEFAULT_CHROMIUM, shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_chromium() -> str:
    """The Chromium executable, or a one-line NnkitError saying how to get PDF output."""
    found = find_chromium()
    if found is None:
        raise NnkitError(f"PDF output needs headless Chromium: none at {DEFAULT_CHROMIUM} or on the PATH "
                         "(apt-get install chromium, or set NNKIT_CHROMIUM); choose --format html, md or json")
    return found


def html_to_pdf(html: str) -> bytes:
    """Print an HTML document to PDF with headless Chromium (scripts run first, so plotly figures are drawn).

    Args:
        html: the document (self-contained: Chromium gets no network).

    Returns:
        The PDF bytes.
    """
    chromium = require_chromium()
    with tempfile.TemporaryDirectory(prefix="nnkit-pdf-") as tmp:
        src, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        src.write_text(html, encoding="utf-8")
        cmd = [chromium, *_FLAGS, f"--user-data-dir={tmp}/profile", f"--print-to-pdf={out}", src.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise NnkitError(f"Chromium did not print the PDF within {TIMEOUT_S} s") from None
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            detail = (proc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            raise NnkitError(f"Chromium could not print the PDF (exit {proc.returncode}): {detail[0][:160]}")
        return out.read_bytes()
