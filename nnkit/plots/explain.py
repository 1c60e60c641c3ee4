"""Plotly figure builders of the Explain page: the sanity check's curves, the confounding check's
relevance bars and the box over an image. Plain numbers and arrays in (the checks' ``to_dict()``
output), a figure out; nothing is shown here and nothing imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25), template="plotly_white")
RANDOM_COLOUR = "grey"
FLAG_COLOUR = "#EF553B"
PALETTE = ("#636EFA", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF")  # plotly's, no red


def randomisation_curves(randomisation: Mapping, height: int = 380) -> go.Figure:
    """Rank correlation between the trained and the cascade-randomised model's maps, per method and
    layer (Adebayo et al. 2018, "Sanity checks for saliency maps", Fig. 2).

    Args:
        randomisation: ``SanityReport.to_dict()``: ``layers`` (output layer first), ``methods``
            (``{name: {label, spearman, similarity, flagged}}``), ``threshold``.

    Returns:
        One line per method over the cascade; flagged methods (mean correlation at or above the
        threshold: their maps barely change) are dashed and named so in the legend, the threshold is
        a dotted line.
    """
    layers = list(randomisation["layers"])
    x = [f"{i + 1}. {name}" for i, name in enumerate(layers)]
    fig = go.Figure()
    for k, m in enumerate(randomisation["methods"].values()):
        name = f"{m['label']} (mean {m['similarity']:.2f}{', flagged' if m['flagged'] else ''})"
        fig.add_trace(go.Scatter(x=x, y=m["spearman"], mode="lines+markers", name=name,
                                 line=dict(color=PALETTE[k % len(PALETTE)], dash="dash" if m["flagged"] else "solid")))
    fig.add_hline(y=randomisation["threshold"], line=dict(color=FLAG_COLOUR, dash="dot", width=1),
                  annotation_text=f"flag at {randomisation['threshold']:g}", annotation_position="top left")
    fig.update_xaxes(title_text="layers randomised (cumulative, from the output down)", tickangle=-30)
    fig.update_yaxes(title_text="rank correlation with the trained maps", range=[-1.05, 1.05])
    return fig.update_layout(height=height, **LAYOUT)


def deletion_insertion_curves(faithfulness: Mapping, height: int = 360) -> go.Figure:
    """Deletion and insertion curves per method (Petsiuk, Das & Saenko 2018, RISE), random order as
    chance level.

    Args:
        faithfulness: ``FaithfulnessReport.to_dict()``: ``methods`` (``{name: {label, fractions,
            deletion, insertion, deletion_auc, insertion_auc}}``, ``random`` among them).

    Returns:
        Two panels (deletion left: lower is more faithful; insertion right: higher is); each legend
        entry carries the method's two AUCs.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("deletion (lower AUC is better)", "insertion (higher AUC is better)"))
    for k, (name, m) in enumerate(faithfulness["methods"].items()):
        # One colour per method in both panels (legend groups), the random order grey.
        colour = RANDOM_COLOUR if name == "random" else PALETTE[k % len(PALETTE)]
        label = f"{m['label']} (AUC del {m['deletion_auc']:.2f} / ins {m['insertion_auc']:.2f})"
        line = dict(color=colour, dash="dot" if name == "random" else "solid")
        for col, key in ((1, "deletion"), (2, "insertion")):
            fig.add_trace(go.Scatter(x=m["fractions"], y=m[key], mode="lines", name=label, legendgroup=name,
                                     showlegend=col == 1, line=line), row=1, col=col)
    fig.update_xaxes(title_text="share of pixels changed", tickformat=".0%", range=[0, 1])
    fig.update_yaxes(title_text="probability of the class", range=[0, 1.02], col=1)
    fig.update_yaxes(range=[0, 1.02], col=2)
    return fig.update_layout(height=height, **LAYOUT)


def relevance_ratio_bars(methods: Mapping, threshold: float, reference: Mapping | None = None,
                         height: int = 320) -> go.Figure:
    """Relevance mass inside the suspected confounder over the region's share of the image, per method
    (Arras, Osman & Samek 2022 relevance mass; 1× is what the region's size alone would get).

    Args:
        methods: ``ConfoundingReport.to_dict()["methods"]`` (``{name: {label, mass_ratio, ...}}``).
        threshold: the verdict's mass-ratio threshold (a dotted line).
        reference: the reference model's ``methods`` (drawn beside, grey), or None.

    Returns:
        A bar chart.
    """
    labels = [m["label"] for m in methods.values()]
    fig = go.Figure(go.Bar(x=labels, y=[_num(m["mass_ratio"]) for m in methods.values()], name="this model"))
    if reference:
        fig.add_trace(go.Bar(x=labels, y=[_num(reference[k]["mass_ratio"]) for k in methods], name="reference",
                             marker_color=RANDOM_COLOUR))
    fig.add_hline(y=threshold, line=dict(color=FLAG_COLOUR, dash="dot", width=1),
                  annotation_text=f"threshold {threshold:g}×", annotation_position="top left")
    fig.add_hline(y=1.0, line=dict(color=RANDOM_COLOUR, dash="dot", width=1),
                  annotation_text="area share (1×)", annotation_position="bottom right")
    fig.update_yaxes(title_text="relevance mass ÷ area share", rangemode="tozero")
    return fig.update_layout(height=height, barmode="group", **LAYOUT)


def _num(value) -> float:
    return float("nan") if value is None else float(value)


def box_preview(image: np.ndarray, box: Sequence[int] | None, title: str | None = None,
                height: int = 320) -> go.Figure:
    """An image with a suspected-confounder box drawn on it.

    Args:
        image: H×W×3 uint8 (or H×W, or C×H×W floats in [0, 1] with C = 1 or 3).
        box: ``(x0, y0, x1, y1)`` end-exclusive pixel coordinates, or None.
        title: figure title.

    Returns:
        The image (pixel centres at whole coordinates) with the box's outline.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:  # C×H×W floats in [0, 1]
        img = np.clip(img, 0, 1)
        if img.ndim == 3 and img.shape[0] in (1, 3):
            img = np.moveaxis(img, 0, -1)
        img = (img * 255).round().astype(np.uint8)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    fig = go.Figure(go.Image(z=img, hovertemplate="x %{x}, y %{y}<extra></extra>"))
    if box is not None:
        x0, y0, x1, y1 = (int(v) for v in box)
        fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x1 - 0.5, y1=y1 - 0.5,
                      line=dict(color="#00CC96", width=3))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showgrid=False, zeroline=False)
    fig.update_xaxes(showgrid=False, zeroline=False, side="top")
    return fig.update_layout(title=title, height=height, width=height, margin=dict(l=10, r=10, t=40, b=10),
                             template="plotly_white")
