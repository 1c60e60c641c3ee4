"""Figures of the Train page family: live and finished training curves, runs compared, the confusion matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.theme import BATCH_ACC_COLOUR, BATCH_COLOUR, LAYOUT, TRAIN_COLOUR, VAL_COLOUR, empty_figure


def training_curves(metrics: Sequence[Mapping], title: str | None = None, height: int = 320) -> go.Figure:
    """Loss and accuracy curves of one training, live or finished.

    Args:
        metrics: records in time order. Batch records ``{"step", "loss"}`` (and ``"accuracy"`` of the
            batch, when recorded) draw the faint batch lines; epoch records ``{"step" or "epoch", "train_loss", "train_accuracy", "val_loss",
            "val_accuracy"}`` (as in a run's metrics.jsonl) draw the train and validation curves.
        title: figure title.

    Returns:
        A two-panel figure (loss left, accuracy right) over optimiser steps (epochs when no step is
        recorded).
    """
    batches = [m for m in metrics if "loss" in m and "step" in m]
    epochs = [m for m in metrics if "train_loss" in m]
    if not batches and not epochs:
        return empty_figure("waiting for the first training steps…", height)
    xname = "step" if all("step" in m for m in epochs) else "epoch"
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"), horizontal_spacing=0.08)
    # A line through one point draws nothing: until there are a few, the batch points are marked.
    mode = "lines" if len(batches) > 3 else "lines+markers"
    if batches:
        fig.add_trace(go.Scatter(x=[m["step"] for m in batches], y=[m["loss"] for m in batches], mode=mode,
                                 name="batch loss", line=dict(color=BATCH_COLOUR, width=1)), row=1, col=1)
    batch_acc = [m for m in batches if m.get("accuracy") is not None]
    if batch_acc:
        fig.add_trace(go.Scatter(x=[m["step"] for m in batch_acc], y=[m["accuracy"] for m in batch_acc], mode=mode,
                                 name="batch accuracy", line=dict(color=BATCH_ACC_COLOUR, width=1)), row=1, col=2)
    elif not any("train_accuracy" in m or "val_accuracy" in m for m in epochs):
        fig.add_annotation(text="accuracy after the first epoch", showarrow=False, x=0.5, y=0.5, xref="x2 domain",
                           yref="y2 domain", font=dict(size=13, color="grey"))
    x = [m.get(xname) for m in epochs]
    for key, colour, name in (("train", TRAIN_COLOUR, "train"), ("val", VAL_COLOUR, "validation")):
        if any(f"{key}_loss" in m for m in epochs):
            fig.add_trace(go.Scatter(x=x, y=[m.get(f"{key}_loss") for m in epochs], mode="lines+markers",
                                     name=f"{name} loss", line=dict(color=colour)), row=1, col=1)
        if any(f"{key}_accuracy" in m for m in epochs):
            fig.add_trace(go.Scatter(x=x, y=[m.get(f"{key}_accuracy") for m in epochs], mode="lines+markers",
                                     name=f"{name} accuracy", line=dict(color=colour, dash="dot")), row=1, col=2)
    fig.update_xaxes(title_text=xname)
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    return fig.update_layout(title=title, height=height, **LAYOUT)


def compare_runs(histories: Mapping[str, Sequence[Mapping]], metric: str = "val_accuracy",
                 height: int = 340) -> go.Figure:
    """One curve per run of ``metric`` over epochs (e.g. to compare activations or optimisers).

    Args:
        histories: ``{run label: epoch records}`` (a run's ``metrics()``).
        metric: the record key to draw, e.g. ``val_accuracy``, ``train_loss``.

    Returns:
        The figure; runs without that metric are left out.
    """
    fig = go.Figure()
    for label, records in histories.items():
        pts = [(m.get("epoch", i + 1), m[metric]) for i, m in enumerate(records) if metric in m]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=label))
    if not fig.data:
        return empty_figure(f"no run has {metric!r} recorded", height)
    if "accuracy" in metric:
        fig.update_yaxes(tickformat=".0%", range=[0, 1.02])
    else:
        fig.update_yaxes(rangemode="tozero")
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text=metric.replace("_", " "))
    return fig.update_layout(height=height, **LAYOUT)


def confusion_matrix(confusion: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str],
                     height: int | None = None) -> go.Figure:
    """Heatmap of a confusion matrix, coloured by the share of each true class, labelled with counts.

    Args:
        confusion: K×K counts, ``confusion[true][predicted]``.
        class_names: the K class names.

    Returns:
        The heatmap (true class down, predicted class across).
    """
    counts = np.asarray(confusion, dtype=np.int64)
    share = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    names = [str(c) for c in class_names]
    fig = go.Figure(go.Heatmap(z=share, x=names, y=names, text=counts, texttemplate="%{text}", colorscale="Blues",
                               zmin=0, zmax=1, colorbar=dict(title="share", tickformat=".0%"),
                               hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.1%})<extra></extra>"))
    fig.update_xaxes(title_text="predicted", side="bottom", tickangle=-45)
    fig.update_yaxes(title_text="true", autorange="reversed")
    side = height or max(320, 60 + 34 * len(names))
    return fig.update_layout(height=side, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white")
