"""Plotly figure builders of the Attack page: arrays and numbers in, figure out; nothing here runs a model.

- :func:`thumbnail_strip`: images of a split to choose targets from, labelled with index and class.
- :func:`before_after`: the clean and attacked image side by side, enlarged, with what changed outlined.
- :func:`probability_bars`: class probabilities before and after the attack.
- :func:`examples_figure`: all of the above for several images in one figure (the HTML download).
- :func:`sweep_curves`: success rate and robust accuracy against pixels k (Su et al. 2019) and patch
  area (Brown et al. 2017, Fig. 2), from live job metrics or finished sweep points.
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
