"""Render a report as one self-contained HTML file: plotly.js inlined once, images as data URIs.

The file opens offline and makes no network request: no external script, style sheet, font or image.
The interactive figures are plotly's own ``to_html`` output (without the library) from the report's
stored plotly JSON.
"""

from __future__ import annotations

import html

from nnkit.report.document import blocks, toc

CONFIG = {"displaylogo": False, "responsive": True}

_CSS = """
:root { --fg: #1f2933; --muted: #52606d; --line: #d9e2ec; --accent: #3451b2; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg);
       max-width: 1040px; margin: 0 auto; padding: 24px; line-height: 1.5; }
h1 { font-size: 1.8rem; margin-bottom: 0.2rem; } h2 { border-bottom: 2px solid var(--line); padding-bottom: 4px;
margin-top: 2.2rem; } h3 { margin-top: 1.6rem; }
.meta { color: var(--muted); font-size: 0.9rem; }
nav ul { list-style: none; padding: 0; display: flex; gap: 16px; flex-wrap: wrap; }
nav a { color: var(--accent); text-decoration: none; }
.findings { display: grid; grid-template-columns: repeat(auto-fit, minmax(280px, 1fr)); gap: 12px; }
.finding { border: 1px solid var(--line); border-left: 6px solid #8dbb5e; border-radius: 6px; padding: 10px 14px; }
.finding.medium { border-left-color: #f0b429; } .finding.high { border-left-color: #d64545; }
.finding .headline { font-weight: 600; } .finding .topic { color: var(--muted); font-size: 0.8rem;
text-transform: uppercase; letter-spacing: 0.04em; }
table { border-collapse: collapse; margin: 10px 0; font-size: 0.88rem; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f5f7fa; } table.pairs th { width: 180px; }
pre { background: #f5f7fa; border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px; overflow-x: auto;
      font-size: 0.8rem; white-space: pre-wrap; word-break: break-all; }
figure { margin: 16px 0; break-inside: avoid; } figcaption { color: var(--muted); font-size: 0.95rem; }
figure .title { font-weight: 600; } figure img { max-width: 100%; height: auto; image-rendering: pixelated;
border: 1px solid var(--line); }
.plot { width: 100%; }
.images { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
/* Picture sheets keep their own width (wrapping to the next line, shrinking only to the page): the labels drawn
   in them are small pixel text that becomes unreadable when a sheet is scaled down to fit beside another. */
.images figure { flex: 0 1 auto; max-width: 100%; }
/* The plotly toolbar is for the screen: it has no use on paper and covers the figure's top right corner. */
@media print { body { max-width: none; padding: 0; } nav { display: none; } h2 { break-after: avoid; }
               .modebar-container, .modebar { display: none !important; } }
"""


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _figure(key: str, entry: dict, cli: str | None) -> str:
    import plotly.io as pio

    plot = pio.to_html(entry["plotly"], include_plotlyjs=False, full_html=False, div_id=f"fig-{key}", config=CONFIG,
                       default_width="100%")
    cli = f"<pre>{_esc(cli)}</pre>" if cli else ""
    return (f'<figure id="{_esc(key)}" class="report-figure"><div class="title">{_esc(entry["title"])}</div>'
            f'<div class="plot">{plot}</div><figcaption>{_esc(entry["caption"])}</figcaption>{cli}</figure>')


def _image(key: str, entry: dict, cli: str | None) -> str:
    cli = f"<pre>{_esc(cli)}</pre>" if cli else ""
    width = min(entry["width"], 980)
    return (f'<figure id="{_esc(key)}" class="report-image"><div class="title">{_esc(entry["title"])}</div>'
            f'<img alt="{_esc(entry["title"])}" width="{width}" src="data:{entry["mime"]};base64,{entry["base64"]}">'
            f'<figcaption>{_esc(entry["caption"])}</figcaption>{cli}</figure>')


def _table(headers, rows, cls: str = "") -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _block(b, report: dict) -> str:
    kind = b[0]
    if kind == "heading":
        _, level, text, anchor = b
        return f'<h{level} id="{_esc(anchor)}">{_esc(text)}</h{level}>'
    if kind == "text":
        return f"<p>{_esc(b[1])}</p>"
    if kind == "findings":
        cards = "".join(f'<div class="finding {_esc(f["severity"])}"><div class="topic">{_esc(f["topic"])}</div>'
                        f'<div class="headline">{_esc(f["headline"])}</div><div>{_esc(f["text"])}</div></div>'
                        for f in b[1])
        return f'<div class="findings">{cards}</div>'
    if kind == "pairs":
        rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in b[1])
        return f'<table class="pairs"><tbody>{rows}</tbody></table>'
    if kind == "table":
        return _table(b[1], b[2])
    if kind == "list":
        return "<ul>" + "".join(f"<li>{_esc(t)}</li>" for t in b[1]) + "</ul>"
    if kind == "figure":
        return _figure(b[1], report["figures"][b[1]], b[2])
    if kind == "images":
        return '<div class="images">' + "".join(_image(k, report["images"][k], c) for k, c in zip(b[1], b[2])) + "</div>"
    if kind == "code":
        return f"<pre>{_esc(b[1])}</pre>"
    raise ValueError(f"unknown block kind {kind!r}")


def render_html(report: dict) -> str:
    """The report as a self-contained HTML document.

    Args:
        report: a report dict (``build_report`` output or a loaded, valid report.json).

    Returns:
        HTML text: plotly.js inlined once in the head, every figure drawn by it, every image a
        ``data:`` URI; nothing is fetched from a network.
    """
    from plotly.offline import get_plotlyjs

    items = blocks(report)
    body = "\n".join(_block(b, report) for b in items[:2])
    nav = "".join(f'<li><a href="#{_esc(a)}">{_esc(t)}</a></li>' for a, t in toc(items))
    body += f"\n<nav><ul>{nav}</ul></nav>\n" + "\n".join(_block(b, report) for b in items[2:])
    body = body.replace("<p>", '<p class="meta">', 1)  # the line under the title
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta name=\"generator\" content=\"nnkit report\"><title>{_esc(report['title'])}</title>"
            f"<style>{_CSS}</style>\n<script type=\"text/javascript\">{get_plotlyjs()}</script>\n</head>\n"
            f"<body>\n{body}\n</body></html>\n")
