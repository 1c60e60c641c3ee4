"""Figures of the brittleness demo (``nnkit.classroom.brittleness``): a one-pixel change that flips the
prediction (Su et al. 2019), a model that reads a corner tag instead of the shape (confounding), and
the robustness trade-off of adversarial training (Madry et al. 2018).

Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _rgb


def one_pixel_figure(flip, class_names: Sequence[str], height: int = 360) -> go.Figure:
    """The image before and after the one-pixel change (the pixel ringed) and both class probability bars.

    Args:
        flip: ``nnkit.classroom.brittleness.PixelFlip``.
        class_names: the model's classes.
    """
    names = [str(c) for c in class_names]
    before, after = names[flip.prediction_before], names[flip.prediction_after]
    fig = make_subplots(rows=1, cols=3, column_widths=[0.28, 0.28, 0.44], horizontal_spacing=0.06,
                        subplot_titles=(f"original: {before}", f"one pixel changed: {after}", "class probabilities"))
    fig.add_trace(go.Image(z=_rgb(flip.image), hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Image(z=_rgb(flip.flipped), hoverinfo="skip"), row=1, col=2)
    fig.add_shape(type="circle", x0=flip.col - 2, x1=flip.col + 2, y0=flip.row - 2, y1=flip.row + 2,
                  line=dict(color="#EF553B", width=3), row=1, col=2)
    fig.add_trace(go.Bar(x=names, y=flip.probabilities_before, name="before", marker_color=_PALETTE[0]), row=1, col=3)
    fig.add_trace(go.Bar(x=names, y=flip.probabilities_after, name="after", marker_color=_PALETTE[1]), row=1, col=3)
    for c in (1, 2):
        fig.update_xaxes(visible=False, row=1, col=c)
        fig.update_yaxes(visible=False, row=1, col=c)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=3)
    fig.update_xaxes(tickangle=-45, row=1, col=3)
    return fig.update_layout(height=height, barmode="group", legend=dict(orientation="h", y=-0.3), **_LAYOUT)


def tag_accuracy_figure(report, height: int = 320) -> go.Figure:
    """Accuracy with the tag agreeing, absent and moved (``TagMovedReport``), chance marked."""
    keys = list(report.accuracy)
    fig = go.Figure(go.Bar(x=keys, y=[report.accuracy[k] for k in keys], marker_color=_PALETTE[0],
                           text=[f"{report.accuracy[k]:.0%}" for k in keys], textposition="outside"))
    fig.add_hline(y=report.chance, line_dash="dash", annotation_text=f"chance {report.chance:.0%}")
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%", title_text="accuracy")
    return fig.update_layout(height=height, **_LAYOUT)


def tag_examples_figure(report, height_per_row: int = 190) -> go.Figure:
    """Each example with its own tag and with a moved tag, each beside its saliency map.

    Args:
        report: ``nnkit.classroom.brittleness.TagMovedReport`` with examples.

    Returns:
        One row per example: image (own tag), saliency, image (moved tag), saliency; titles give the
        predictions and the share of saliency inside the tag's box.
    """
    names = report.class_names
    exs = report.examples
    titles = []
    for e in exs:
        titles += [f"{names[e.label]} with its tag → {names[e.prediction_tagged]}",
                   f"saliency: {e.tag_share_tagged:.0%} on the tag",
                   f"tag of {names[e.tag_class]} → {names[e.prediction_moved]}",
                   f"saliency: {e.tag_share_moved:.0%} on the tag"]
    fig = make_subplots(rows=len(exs), cols=4, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.25 / max(len(exs), 1))
    for r, e in enumerate(exs, start=1):
        fig.add_trace(go.Image(z=_rgb(e.image_tagged), hoverinfo="skip"), row=r, col=1)
        fig.add_trace(go.Heatmap(z=e.saliency_tagged, colorscale="Hot", showscale=False, hoverinfo="skip"),
                      row=r, col=2)
        fig.add_trace(go.Image(z=_rgb(e.image_moved), hoverinfo="skip"), row=r, col=3)
        fig.add_trace(go.Heatmap(z=e.saliency_moved, colorscale="Hot", showscale=False, hoverinfo="skip"),
                      row=r, col=4)
        for c in (2, 4):
            fig.update_yaxes(autorange="reversed", row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    return fig.update_layout(height=60 + height_per_row * len(exs), **_LAYOUT)


def eps_label(eps: float) -> str:
    """0, 1/255, 8/255 (the grid's budgets in the units papers use)."""
    n = eps * 255
    return "0" if eps == 0 else (f"{round(n)}/255" if abs(n - round(n)) < 1e-6 else f"{eps:.3g}")


_TRADEOFF_COLOURS = {"standard": _PALETTE[1], "adversarial": _PALETTE[0]}


def tradeoff_curve(report, eps: float | None = None, height: int = 360) -> go.Figure:
    """Robust accuracy against the PGD budget ε for the standard and the adversarially trained model.

    Madry et al. 2018 (PGD, adversarial training); the trade-off as in Tsipras et al. 2019.

    Args:
        report: ``nnkit.classroom.brittleness.TradeoffReport``.
        eps: the budget chosen on the page, marked with a vertical line (None: no mark).

    Returns:
        One line per model over the ε grid (evenly spaced, labelled k/255); ε = 0 is the clean accuracy.
    """
    labels = [eps_label(e) for e in report.eps]
    fig = go.Figure()
    for m in report.models:
        fig.add_trace(go.Scatter(x=labels, y=m.robust_accuracy, mode="lines+markers+text", name=m.label,
                                 text=[f"{a:.1%}" for a in m.robust_accuracy], textposition="top center",
                                 line=dict(color=_TRADEOFF_COLOURS.get(m.key, _PALETTE[2]), width=3)))
    if eps is not None:
        fig.add_vline(x=report.at(eps), line_dash="dash", line_color="grey")
    fig.update_xaxes(title_text="PGD budget ε (L∞, pixel values in [0, 1])", type="category")
    fig.update_yaxes(title_text="robust accuracy", range=[0, 1.08], tickformat=".0%")
    return fig.update_layout(height=height, legend=dict(orientation="h", y=-0.3), **_LAYOUT)


def tradeoff_examples(report, eps: float, height_per_row: int = 150) -> go.Figure:
    """The same test images, clean and as PGD left them at ε for each model, with each model's prediction.

    Args:
        report: ``nnkit.classroom.brittleness.TradeoffReport``; eps: the budget shown (nearest grid value).

    Returns:
        Rows: clean (true class), then one row per model (its prediction, ✓ right / ✗ wrong).
    """
    k = report.at(eps)
    names = report.class_names
    n = len(report.labels)
    titles = [f"{names[y]}" for y in report.labels]
    for m in report.models:
        titles += [f"{'✓' if p == y else '✗'} {names[p]}" for p, y in zip(m.predictions[k], report.labels,
                                                                           strict=True)]
    fig = make_subplots(rows=1 + len(report.models), cols=n, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.12, row_titles=["clean"] + [m.key for m in report.models])
    for c in range(n):
        fig.add_trace(go.Image(z=_rgb(report.clean_images[c]), hoverinfo="skip"), row=1, col=c + 1)
        for r, m in enumerate(report.models, start=2):
            fig.add_trace(go.Image(z=_rgb(m.images[k][c]), hoverinfo="skip"), row=r, col=c + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    return fig.update_layout(height=40 + height_per_row * (1 + len(report.models)),
                             title=f"PGD at ε = {eps_label(report.eps[k])}", **_LAYOUT)
