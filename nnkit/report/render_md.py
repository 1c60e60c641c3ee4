"""Render a report as Markdown with its figures as PNG files in a folder beside it.

Plotly figures become static PNGs (``nnkit.report.png``, matplotlib), images are written as they are;
tables are Markdown tables, so the numbers read without any picture.
"""

from __future__ import annotations

import re

from nnkit.report.assets import image_bytes
from nnkit.report.document import blocks, toc
from nnkit.runs import safe_text

# Markdown's inline syntax: run names and class names come from users of a shared store, and in the
# report they must stay text (``[x](http://...)`` or ``![](...)`` never becomes a link or an image).
_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def _esc(value) -> str:
    """``value`` as Markdown source that renders as exactly its text, on one line."""
    return _SPECIAL.sub(r"\\\1", safe_text(str(value)).replace("\n", " "))


def _anchor(title: str) -> str:
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c == "-")


def _table(headers, rows, bold_first: bool = False) -> str:
    def cells(row) -> str:
        out = [_esc(c) for c in row]
        if bold_first and out and out[0]:
            out[0] = f"**{out[0]}**"
        return " | ".join(out)

    lines = ["| " + " | ".join(_esc(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + cells(row) + " |" for row in rows]
    return "\n".join(lines)


def _picture(entry: dict, path: str, cli: str | None) -> str:
    text = f"**{_esc(entry['title'])}**\n\n![{_esc(entry['title'])}]({path})\n\n*{_esc(entry['caption'])}*"
    if cli:
        text += f"\n\n```\n{cli}\n```"
    return text


def render_markdown(report: dict, folder: str) -> tuple[str, dict[str, bytes]]:
    """The report as Markdown, and the PNG files it links to.

    Args:
        report: a report dict.
        folder: the folder name (relative to the Markdown file) the PNGs are linked from.

    Returns:
        ``(markdown text, {file name inside folder: PNG bytes})``: one PNG per figure (drawn with
        matplotlib) and per image.
    """
    from nnkit.report.png import figure_png

    files: dict[str, bytes] = {}
    parts = []
    items = blocks(report)
    for i, b in enumerate(items):
        kind = b[0]
        if kind == "heading":
            parts.append(f"{'#' * b[1]} {_esc(b[2])}")
        elif kind == "text":
            parts.append(_esc(b[1]))
            if i == 1:  # under the title line: the contents, with GitHub's heading anchors
                parts.append("Contents: " + " · ".join(f"[{_esc(t)}](#{_anchor(t)})" for _, t in toc(items)))
        elif kind == "findings":
            parts.append("\n".join(f"{n}. **{_esc(f['headline'])}.** {_esc(f['text'])}" for n, f in enumerate(b[1], 1)))
        elif kind == "pairs":
            parts.append(_table(["", ""], [[k, v] for k, v in b[1]], bold_first=True))
        elif kind == "table":
            parts.append(_table(b[1], b[2]))
        elif kind == "list":
            parts.append("\n".join(f"- {_esc(t)}" for t in b[1]))
        elif kind == "figure":
            entry = report["figures"][b[1]]
            files[f"{b[1]}.png"] = figure_png(entry["plotly"])
            parts.append(_picture(entry, f"{folder}/{b[1]}.png", b[2]))
        elif kind == "images":
            for key, cli in zip(b[1], b[2]):
                entry = report["images"][key]
                files[f"{key}.png"] = image_bytes(entry)
                parts.append(_picture(entry, f"{folder}/{key}.png", cli))
        elif kind == "code":
            parts.append(f"```\n{b[1]}\n```")
    return "\n\n".join(parts) + "\n", files
