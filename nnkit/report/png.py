"""Static PNG pictures of the report's plotly figures, drawn with matplotlib (for the Markdown report).

plotly's own PNG export needs kaleido, which nnkit does not install; matplotlib is there already (captum
depends on it). This draws the subset of plotly the report's figures use, from their stored JSON:
scatter and bar traces, heatmaps with cell text, subplots placed by their axis domains, horizontal
reference lines, titles, axis titles and percentage ticks. The interactive originals are in the HTML.
"""

from __future__ import annotations

import io
import re

_DASH = {"solid": "-", "dot": ":", "dash": "--", "dashdot": "-.", "longdash": "--", "longdashdot": "-."}
_PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880")
WIDTH_PX = 960
DPI = 100


def colour(value, default="#636EFA"):
    """A plotly colour (hex, name, ``rgb(...)``, ``rgba(...)``) as something matplotlib accepts."""
    if not isinstance(value, str):
        return default
    m = re.fullmatch(r"\s*rgba?\(([^)]*)\)\s*", value)
    if m:
        parts = [float(p) for p in m.group(1).split(",")]
        rgb = [p / 255 for p in parts[:3]]
        return (*rgb, parts[3] if len(parts) > 3 else 1.0)
    return value


def _suffix(ref: str | None, letter: str) -> str:
    """``"x2"`` → ``"xaxis2"``; None / ``"x"`` → ``"xaxis"``."""
    ref = ref or letter
    return f"{letter}axis{ref[1:]}"


def _cmap(scale):
    from matplotlib.colors import LinearSegmentedColormap

    if isinstance(scale, str):
        return scale if scale[:1].isupper() else "viridis"
    return LinearSegmentedColormap.from_list("plotly", [(float(p), colour(c)) for p, c in scale])


def _style_axis(ax, xa: dict, ya: dict, image: bool) -> None:
    from matplotlib.ticker import PercentFormatter

    for axis, spec, setter in ((ax.xaxis, xa, ax.set_xlabel), (ax.yaxis, ya, ax.set_ylabel)):
        title = (spec.get("title") or {}).get("text")
        if title:
            setter(title, fontsize=9)
        if spec.get("tickformat", "").endswith("%"):
            axis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        if spec.get("visible") is False:
            axis.set_visible(False)
    if xa.get("range"):
        ax.set_xlim(*xa["range"])
    if ya.get("range"):
        ax.set_ylim(*ya["range"])
    if ya.get("autorange") == "reversed" and not image:  # imshow already draws row 0 at the top
        ax.invert_yaxis()
    if xa.get("tickvals"):
        ax.set_xticks(xa["tickvals"], [str(v) for v in xa.get("ticktext") or xa["tickvals"]])
    if xa.get("tickangle"):
        ax.tick_params(axis="x", labelrotation=-float(xa["tickangle"]))
    ax.tick_params(labelsize=8)
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)


def _draw_bars(ax, bars: list[dict]) -> None:
    cats: list = []
    for t in bars:
        cats += [c for c in t.get("x", []) if c not in cats]
    width = 0.8 / max(1, len(bars))
    for i, t in enumerate(bars):
        pos = [cats.index(c) - 0.4 + width * (i + 0.5) for c in t.get("x", [])]
        y = [float("nan") if v is None else v for v in t.get("y", [])]
        ax.bar(pos, y, width=width, label=t.get("name"), color=colour((t.get("marker") or {}).get("color"),
                                                                        _PALETTE[i % len(_PALETTE)]))
    ax.set_xticks(range(len(cats)), [str(c) for c in cats])


def _draw_heatmap(fig, ax, t: dict) -> None:
    import numpy as np

    z = np.array([[np.nan if v is None else v for v in row] for row in t["z"]], dtype=float)
    im = ax.imshow(z, cmap=_cmap(t.get("colorscale", "Blues")), vmin=t.get("zmin"), vmax=t.get("zmax"),
                   aspect="auto")
    if t.get("x") is not None:
        ax.set_xticks(range(len(t["x"])), [str(v) for v in t["x"]])
    if t.get("y") is not None:
        ax.set_yticks(range(len(t["y"])), [str(v) for v in t["y"]])
    text = t.get("text")
    if text is not None:
        top = np.nanmax(z) if np.isfinite(z).any() else 1.0
        for r, row in enumerate(text):
            for c, value in enumerate(row):
                ax.text(c, r, str(value), ha="center", va="center", fontsize=7,
                        color="white" if z[r, c] > 0.6 * top else "black")
    fig.colorbar(im, ax=ax, fraction=0.04)


def figure_png(spec: dict, width_px: int = WIDTH_PX) -> bytes:
    """A plotly figure's JSON (``{"data", "layout"}``) drawn as a PNG with matplotlib.

    Args:
        spec: the figure's plotly JSON, as stored in a report.
        width_px: the picture's width (the height is the layout's).

    Returns:
        PNG bytes.
    """
    from matplotlib.figure import Figure
    from matplotlib.transforms import blended_transform_factory

    layout = spec.get("layout", {})
    height_px = int(layout.get("height") or 400)
    # Figure (not pyplot): no global state, safe in a job's worker thread.
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
    traces = spec.get("data", [])
    pairs = sorted({(_suffix(t.get("xaxis"), "x"), _suffix(t.get("yaxis"), "y")) for t in traces})
    axes = {}
    for xname, yname in pairs:
        x0, x1 = layout.get(xname, {}).get("domain", [0, 1])
        y0, y1 = layout.get(yname, {}).get("domain", [0, 1])
        # Leave room inside each domain for tick labels, axis titles and the subplot title.
        axes[(xname, yname)] = fig.add_axes((x0 + 0.07 * (x1 - x0) + 0.02, y0 + 0.22 * (y1 - y0) + 0.03,
                                             (x1 - x0) * 0.9 - 0.04, (y1 - y0) * 0.66))
    for (xname, yname), ax in axes.items():
        mine = [t for t in traces if (_suffix(t.get("xaxis"), "x"), _suffix(t.get("yaxis"), "y")) == (xname, yname)]
        bars = [t for t in mine if t.get("type") == "bar"]
        if bars:
            _draw_bars(ax, bars)
        for i, t in enumerate(mine):
            if t.get("type") == "heatmap":
                _draw_heatmap(fig, ax, t)
            elif t.get("type", "scatter") == "scatter":
                line = t.get("line") or {}
                mode = t.get("mode", "lines")
                y = [float("nan") if v is None else v for v in t.get("y", [])]
                ax.plot([str(v) if isinstance(v, str) else v for v in t.get("x", [])], y,
                        linestyle=_DASH.get(line.get("dash", "solid"), "-") if "lines" in mode else "none",
                        marker="o" if "markers" in mode else None, markersize=3,
                        color=colour(line.get("color"), _PALETTE[i % len(_PALETTE)]),
                        label=t.get("name") if t.get("showlegend", True) is not False else None)
        _style_axis(ax, layout.get(xname, {}), layout.get(yname, {}), any(t.get("type") == "heatmap" for t in mine))
        if layout.get("showlegend", True) is not False and any(
                label and not label.startswith("_") for label in ax.get_legend_handles_labels()[1]):
            ax.legend(fontsize=7, loc="best", framealpha=0.85)
    first = next(iter(axes.values()), None)
    for shape in layout.get("shapes", []):
        yref = shape.get("yref", "y")
        ax = next((a for (xn, yn), a in axes.items() if yn == _suffix(yref, "y")), first)
        if ax is not None and shape.get("type") == "line" and shape.get("y0") == shape.get("y1"):
            line = shape.get("line") or {}
            ax.axhline(shape["y0"], color=colour(line.get("color"), "grey"),
                       linestyle=_DASH.get(line.get("dash", "solid"), "-"), linewidth=1)
    for a in layout.get("annotations", []):
        if a.get("xref") == "paper" and a.get("yref") == "paper":
            fig.text(a.get("x", 0.5), min(0.97, a.get("y", 1.0) * 0.9 + 0.03), a.get("text", ""), ha="center",
                     fontsize=9)
        elif str(a.get("xref", "")).endswith("domain") and first is not None:
            ax = next((ax for (xn, yn), ax in axes.items() if yn == _suffix(a.get("yref"), "y")), first)
            ax.text(a.get("x", 0), a.get("y", 0), a.get("text", ""), fontsize=7, color="#52606d",
                    ha=a.get("xanchor", "left") if a.get("xanchor") in ("left", "right", "center") else "left",
                    va=a.get("yanchor", "bottom") if a.get("yanchor") in ("top", "bottom") else "bottom",
                    transform=blended_transform_factory(ax.transAxes, ax.transData))
    title = (layout.get("title") or {}).get("text")
    if title:
        fig.suptitle(title, fontsize=11)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()
