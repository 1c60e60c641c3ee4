"""Render a report as Markdown with its figures as PNG files in a folder beside it.

Plotly figures become static PNGs (``nnkit.report.png``, matplotlib), images are written as they are;
tables are Markdown tables, so the numbers read without any picture.
"""

from __future__ import annotations

from nnkit.report.assets import image_bytes
from nnkit.report.document import blocks, toc


def _cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _anchor(title: str) -> str:
    return "".join(c for c in title.lower().replace(" ", "-") if c.isalnum() or c == "-")


def _table(headers, rows) -> str:
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _picture(entry: dict, path: str) -> str:
    text = f"**{entry['title']}**\n\n![{entry['title']}]({path})\n\n*{entry['caption']}*"
    if entry.get("cli"):
        text += f"\n\n```\n{entry['cli']}\n```"
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
            parts.append(f"{'#' * b[1]} {b[2]}")
        elif kind == "text":
            parts.append(b[1])
            if i == 1:  # under the title line: the contents, with GitHub's heading anchors
                parts.append("Contents: " + " · ".join(f"[{t}](#{_anchor(t)})" for _, t in toc(items)))
        elif kind == "findings":
            parts.append("\n".join(f"{n}. **{f['headline']}.** {f['text']}" for n, f in enumerate(b[1], 1)))
        elif kind == "pairs":
            parts.append(_table(["", ""], [[f"**{k}**", v] for k, v in b[1]]))
        elif kind == "table":
            parts.append(_table(b[1], b[2]))
        elif kind == "list":
            parts.append("\n".join(f"- {t}" for t in b[1]))
        elif kind == "figure":
            entry = report["figures"][b[1]]
            files[f"{b[1]}.png"] = figure_png(entry["plotly"])
            parts.append(_picture(entry, f"{folder}/{b[1]}.png"))
        elif kind == "images":
            for key in b[1]:
                entry = report["images"][key]
                files[f"{key}.png"] = image_bytes(entry)
                parts.append(_picture(entry, f"{folder}/{key}.png"))
        elif kind == "code":
            parts.append(f"```\n{b[1]}\n```")
    return "\n\n".join(parts) + "\n", files
