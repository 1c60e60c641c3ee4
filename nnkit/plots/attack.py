"""Plotly figure builders of the Attack page: arrays and numbers in, figure out; nothing here runs a model.

- :func:`thumbnail_strip`: images of a split to choose targets from, labelled with index and class.
- :func:`before_after`: the clean and attacked image side by side, enlarged, with what changed outlined.
- :func:`probability_bars`: class probabilities before and after the attack.
- :func:`examples_figure`: all of the above for several images in one figure (the HTML download).
- :func:`sweep_curves`: success rate and robust accuracy against pixels k (Su et al. 2019) and patch
  area (Brown et al. 2017, Fig. 2), from live job metrics or finished sweep points.
- :func:`robust_curve`: robust accuracy against the budget ε of a gradient attack (FGSM, PGD, APGD), with
  clean accuracy for reference (Madry et al. 2018, Fig. 6 draws the same curve).
- :func:`robust_curve_points`: the same from a job's live records.
- :func:`min_eps_histogram`: how the smallest flipping ε (bisection with PGD) spreads over the images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.theme import LAYOUT, TRAIN_COLOUR, VAL_COLOUR, empty_figure

BEFORE_COLOUR = TRAIN_COLOUR
AFTER_COLOUR = VAL_COLOUR
MARK_COLOUR = "red"


def thumbnail_strip(images: np.ndarray, indices: Sequence[int], labels: Sequence[int] | None = None,
                    class_names: Sequence[str] | None = None, scale: int = 2, height: int | None = None) -> go.Figure:
    """A row of images with their split index (and class) underneath, to choose attack targets from.

    Shape:
        images N×H×W×3 uint8.

    Returns:
        One image figure; tick labels "index<br>class" under each image.
    """
    n, h, w = images.shape[:3]
    pad = 2
    strip = np.full((h + 2 * pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for j in range(n):
        x = pad + j * (w + pad)
        strip[pad:pad + h, x:x + w] = images[j]
    strip = strip.repeat(scale, 0).repeat(scale, 1)
    fig = go.Figure(go.Image(z=strip, hoverinfo="skip"))
    names = list(class_names or [])
    ticks = []
    for j, i in enumerate(indices):
        cls = ""
        if labels is not None:
            k = int(labels[j])
            cls = f"<br>{names[k] if k < len(names) else k}"
        ticks.append(f"{i}{cls}")
    centres = [(pad + j * (w + pad) + w / 2) * scale - 0.5 for j in range(n)]
    fig.update_xaxes(tickmode="array", tickvals=centres, ticktext=ticks, showgrid=False, zeroline=False, ticks="")
    fig.update_yaxes(visible=False)
    return fig.update_layout(height=height or strip.shape[0] + 60, margin=dict(l=10, r=10, t=10, b=40),
                             template="plotly_white", dragmode=False)


MARK_PAD = 0.3  # outlines sit this many pixels outside what changed, so a changed pixel stays visible inside


def _add_marks(fig: go.Figure, marks: Sequence[Mapping], row: int, col: int, dash: str | None = None) -> None:
    # go.Image puts pixel (r, c) at the integer point (c, r); marks use pixel edges, hence the half-pixel shift.
    line = dict(color=MARK_COLOUR, width=2, dash=dash)
    lo, hi = -0.5 - MARK_PAD, -0.5 + MARK_PAD
    for m in marks:
        if m["type"] == "path":
            pts = [(x - 0.5, y - 0.5) for x, y in m["points"]]
            path = "M " + " L ".join(f"{x:.3f} {y:.3f}" for x, y in pts) + " Z"
            fig.add_shape(type="path", path=path, line=line, row=row, col=col)
        else:
            fig.add_shape(type=m["type"], x0=m["x0"] + lo, y0=m["y0"] + lo, x1=m["x1"] + hi, y1=m["y1"] + hi,
                          line=line, row=row, col=col)


def before_after(before: np.ndarray, after: np.ndarray, marks: Sequence[Mapping] = (),
                 titles: Sequence[str] = ("before", "after"), height: int = 340) -> go.Figure:
    """The clean image and the attacked one side by side, enlarged without smoothing, with the changed
    pixels (single-pixel attack) or the placed patch outlined in red (dotted on the clean image).

    Args:
        before, after: H×W×3 uint8 images.
        marks: ``attacks.figures.perturbation_marks`` of the image (image coordinates).
        titles: the two panel titles (e.g. predicted class and confidence).
        height: figure height in pixels.

    Returns:
        A two-panel figure.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=tuple(titles), horizontal_spacing=0.04)
    fig.add_trace(go.Image(z=before, hovertemplate="row %{y}, column %{x}<extra>before</extra>"), row=1, col=1)
    fig.add_trace(go.Image(z=after, hovertemplate="row %{y}, column %{x}<extra>after</extra>"), row=1, col=2)
    _add_marks(fig, marks, 1, 1, dash="dot")
    _add_marks(fig, marks, 1, 2)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig.update_layout(height=height, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
                             dragmode=False)


def probability_bars(probs_before: Sequence[float], probs_after: Sequence[float], class_names: Sequence[str],
                     label: int | None = None, target: int | None = None, height: int = 340) -> go.Figure:
    """Class probabilities of one image before and after the attack, as grouped bars.

    Args:
        probs_before, probs_after: K softmax probabilities each.
        class_names: the K class names.
        label: the true class (marked "true" under its bar); target: the attack's target class (marked "target").

    Returns:
        The bar chart (probability axis 0-100%).
    """
    names = []
    for k, name in enumerate(class_names):
        tags = [t for t, hit in (("true", k == label), ("target", k == target)) if hit]
        names.append(f"{name} ({', '.join(tags)})" if tags else str(name))
    fig = go.Figure([go.Bar(name="before", x=names, y=list(probs_before), marker_color=BEFORE_COLOUR),
                     go.Bar(name="after", x=names, y=list(probs_after), marker_color=AFTER_COLOUR)])
    fig.update_yaxes(title_text="probability", range=[0, 1.02], tickformat=".0%")
    fig.update_xaxes(tickangle=-45)
    return fig.update_layout(barmode="group", height=height, **LAYOUT)


def _caption(view: Mapping, class_names: Sequence[str], when: str) -> str:
    k = int(view[f"pred_{when}"])
    name = class_names[k] if k < len(class_names) else str(k)
    return f"{name} {view[f'conf_{when}']:.0%}"


def examples_figure(views: Sequence[Mapping], class_names: Sequence[str], row_height: int = 260) -> go.Figure:
    """Every attacked image in one figure: per row, before | after (outlined) | class probabilities.

    Args:
        views: ``attacks.figures.example_views`` of the images.
        class_names: the class names.

    Returns:
        A figure with one row per image.
    """
    if not views:
        return empty_figure("no images")
    titles = []
    for v in views:
        titles += [f"#{v['index']} before: {_caption(v, class_names, 'before')}",
                   f"after ({v['status']}): {_caption(v, class_names, 'after')}", "class probabilities"]
    fig = make_subplots(rows=len(views), cols=3, subplot_titles=titles, column_widths=[0.25, 0.25, 0.5],
                        horizontal_spacing=0.05, vertical_spacing=min(0.08, 0.4 / len(views)))
    for r, v in enumerate(views, start=1):
        fig.add_trace(go.Image(z=v["before"], hoverinfo="skip"), row=r, col=1)
        fig.add_trace(go.Image(z=v["after"], hoverinfo="skip"), row=r, col=2)
        _add_marks(fig, v["marks"], r, 1, dash="dot")
        _add_marks(fig, v["marks"], r, 2)
        names = [str(c) for c in class_names]
        for when, colour in (("before", BEFORE_COLOUR), ("after", AFTER_COLOUR)):
            fig.add_trace(go.Bar(x=names, y=v[f"probs_{when}"], name=when, marker_color=colour, showlegend=r == 1),
                          row=r, col=3)
        fig.update_xaxes(visible=False, row=r, col=1)
        fig.update_xaxes(visible=False, row=r, col=2)
        fig.update_yaxes(visible=False, row=r, col=1)
        fig.update_yaxes(visible=False, row=r, col=2)
        fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=r, col=3)
    return fig.update_layout(barmode="group", height=row_height * len(views) + 60, **LAYOUT)


def sweep_curves(points: Sequence[Mapping], height: int = 340) -> go.Figure:
    """Success rate and robust accuracy against pixels k and against patch area.

    Args:
        points: records ``{"sweep": "pixels"|"area", "value", "success_rate", "robust_accuracy",
            "clean_accuracy"}`` (a sweep job's live metrics or its finished points); other records are
            ignored.

    Returns:
        A figure with a panel per swept quantity (success solid, robust accuracy dotted, clean accuracy
        as a dashed line for reference).
    """
    sweeps = [s for s in ("pixels", "area") if any(p.get("sweep") == s for p in points)]
    if not sweeps:
        return empty_figure("waiting for the first sweep point…", height)
    titles = {"pixels": "success vs pixels changed (k)", "area": "success vs patch area"}
    fig = make_subplots(rows=1, cols=len(sweeps), subplot_titles=[titles[s] for s in sweeps],
                        horizontal_spacing=0.1)
    for col, sweep in enumerate(sweeps, start=1):
        pts = sorted((p for p in points if p.get("sweep") == sweep), key=lambda p: p["value"])
        x = [p["value"] for p in pts]
        first = col == 1
        fig.add_trace(go.Scatter(x=x, y=[p["success_rate"] for p in pts], mode="lines+markers", name="success rate",
                                 line=dict(color=AFTER_COLOUR), legendgroup="success", showlegend=first),
                      row=1, col=col)
        fig.add_trace(go.Scatter(x=x, y=[p["robust_accuracy"] for p in pts], mode="lines+markers",
                                 name="robust accuracy", line=dict(color=BEFORE_COLOUR, dash="dot"),
                                 legendgroup="robust", showlegend=first), row=1, col=col)
        clean = [p["clean_accuracy"] for p in pts if p.get("clean_accuracy") is not None]
        if clean:
            fig.add_trace(go.Scatter(x=[min(x), max(x)], y=[clean[0], clean[0]], mode="lines", name="clean accuracy",
                                     line=dict(color="grey", dash="dash", width=1), legendgroup="clean",
                                     showlegend=first), row=1, col=col)
        if sweep == "pixels":
            fig.update_xaxes(title_text="pixels changed (k)", tickmode="array", tickvals=x, row=1, col=col)
        else:
            fig.update_xaxes(title_text="patch area (share of the image)", tickformat=".0%", row=1, col=col)
        fig.update_yaxes(range=[-0.03, 1.05], tickformat=".0%", row=1, col=col)  # room for markers at 0 and 100%
    return fig.update_layout(height=height, **LAYOUT)


def _eps_text(eps: float) -> str:
    k = round(eps * 255)
    return f"{k}/255" if k > 0 and abs(eps * 255 - k) < 1e-6 else f"{eps:.3g}"


def robust_curve(eps: Sequence[float], robust_accuracy: Sequence[float], clean_accuracy: float | None = None,
                 label: str = "robust accuracy", norm: str = "linf", height: int = 340) -> go.Figure:
    """Robust accuracy against the attack budget ε (a point per ε; ε = 0 is the clean accuracy).

    Args:
        eps: the budgets, increasing; robust_accuracy: the accuracy at each (fractions in [0, 1]).
        clean_accuracy: drawn at ε = 0 and as a dashed reference line (None: left out).
        label: the curve's legend name (e.g. "PGD L∞, 10 steps").
        norm: "linf" or "l2" (names the axis; L∞ ticks read as k/255).

    Returns:
        One panel: robust accuracy (solid, markers), clean accuracy (dashed grey); y as percentages.
    """
    if not len(eps):
        return empty_figure("waiting for the first ε…", height)
    x = [0.0, *[float(e) for e in eps]] if clean_accuracy is not None else [float(e) for e in eps]
    y = [float(clean_accuracy), *map(float, robust_accuracy)] if clean_accuracy is not None \
        else [float(a) for a in robust_accuracy]
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines+markers", name=label, line=dict(color=AFTER_COLOUR),
                               hovertemplate="ε %{text}: %{y:.1%}<extra></extra>",
                               text=["0" if v == 0 else _eps_text(v) for v in x]))
    if clean_accuracy is not None:
        fig.add_trace(go.Scatter(x=[0, max(x)], y=[clean_accuracy] * 2, mode="lines", name="clean accuracy",
                                 line=dict(color="grey", dash="dash", width=1)))
    name = "L∞" if norm == "linf" else "L2"
    fig.update_xaxes(title_text=f"budget ε ({name})", tickmode="array", tickvals=x,
                     ticktext=["0" if v == 0 else _eps_text(v) for v in x])
    fig.update_yaxes(title_text="accuracy", range=[-0.03, 1.05], tickformat=".0%")
    return fig.update_layout(height=height, title="robust accuracy vs ε", **LAYOUT)


def robust_curve_points(points: Sequence[Mapping], height: int = 340) -> go.Figure:
    """:func:`robust_curve` from a job's live records ``{"eps", "robust_accuracy", "clean_accuracy", "norm",
    "label"}`` (other records are ignored; the points are sorted by ε)."""
    pts = sorted((p for p in points if "eps" in p and "robust_accuracy" in p), key=lambda p: p["eps"])
    if not pts:
        return empty_figure("waiting for the first ε…", height)
    return robust_curve([p["eps"] for p in pts], [p["robust_accuracy"] for p in pts], pts[0].get("clean_accuracy"),
                        label=pts[0].get("label", "robust accuracy"), norm=pts[0].get("norm", "linf"), height=height)


def _eps_in_255(eps: float) -> str:
    return f"{eps * 255:.3g}/255"


def min_eps_histogram(min_eps: Sequence[float | None], eps_max: float, norm: str = "linf", bins: int = 16,
                      height: int = 300) -> go.Figure:
    """Distribution of each image's smallest flipping ε, with the images never flipped within ``eps_max``
    counted in a bar of their own ("> ε max").

    Args:
        min_eps: per image: a finite ε, inf (or None) for not flipped within ``eps_max``; NaN entries
            (images the model already got wrong, not attacked) are left out.
        eps_max: the largest ε searched.
        norm: "linf" or "l2" (names the axis; L∞ budgets read as k/255, one bar per 1/255 up to 32/255).
        bins: bars between 0 and ``eps_max`` (L2, or L∞ beyond 32/255).

    Returns:
        A bar chart of image counts per ε bin plus the never-flipped bar; the median is in the title.
    """
    vals = [float("inf") if v is None else float(v) for v in min_eps]
    vals = [v for v in vals if v == v]  # drop NaN
    if not vals:
        return empty_figure("no correctly classified image to measure", height)
    finite = np.array([v for v in vals if np.isfinite(v)])
    never = sum(1 for v in vals if not np.isfinite(v))
    whole = round(eps_max * 255)
    per_255 = norm == "linf" and 0 < whole <= 32 and abs(eps_max * 255 - whole) < 1e-6
    text = _eps_in_255 if norm == "linf" else (lambda e: f"{e:.3g}")
    edges = np.arange(whole + 1) / 255 if per_255 else np.linspace(0, eps_max, bins + 1)
    counts, _ = np.histogram(finite, bins=edges)
    ranges = [f"{text(a)} – {text(b)}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    # Plain lists: plotly would store numpy arrays as typed binary blobs, which the PNG export does not read.
    fig = go.Figure(go.Bar(x=[f"≤ {_eps_text(b) if per_255 else text(b)}" for b in edges[1:]], y=counts.tolist(),
                           name="flipped", marker_color=AFTER_COLOUR, hovertext=ranges,
                           hovertemplate="ε %{hovertext}: %{y} images<extra></extra>"))
    fig.add_trace(go.Bar(x=[f"> {_eps_text(eps_max) if norm == 'linf' else text(eps_max)}"], y=[never],
                         name="not flipped", marker_color=BEFORE_COLOUR,
                         hovertemplate="not flipped within ε max: %{y} images<extra></extra>"))
    med = float(np.median(np.array(vals)))
    title = "smallest flipping ε per image" + (f" (median {text(med)})" if np.isfinite(med) else
                                               " (median beyond the largest ε)")
    name = "L∞" if norm == "linf" else "L2"
    fig.update_xaxes(title_text=f"smallest ε that flips the image ({name})", type="category")
    fig.update_yaxes(title_text="images")
    return fig.update_layout(height=height, title=title, barmode="overlay", bargap=0.1, **LAYOUT)
