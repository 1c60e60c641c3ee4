"""Figures of the Data page family: class balance and image grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from nnkit.plots.theme import LAYOUT


def class_balance(counts: Mapping[str, Sequence[int]], class_names: Sequence[str], height: int = 320) -> go.Figure:
    """Grouped bars: images per class in each split.

    Args:
        counts: ``{split name: per-class counts}`` (``nnkit.data.preview.class_counts``).
        class_names: the class names.

    Returns:
        The bar chart.
    """
    fig = go.Figure([go.Bar(name=split, x=[str(c) for c in class_names], y=list(values))
                     for split, values in counts.items()])
    fig.update_yaxes(title_text="images")
    return fig.update_layout(barmode="group", height=height, **LAYOUT)


def image_grid(grid: np.ndarray, row_labels: Sequence[str] | None = None,
               row_centres: Sequence[float] | None = None, height: int | None = None) -> go.Figure:
    """Show a uint8 H×W×3 image (e.g. ``nnkit.data.preview.sample_grid``) with optional row labels.

    Args:
        grid: the image.
        row_labels: one label per row of cells (e.g. class names).
        row_centres: the y pixel of each label (``nnkit.data.preview.grid_row_centres``).
        height: figure height in pixels (default: the image's own height plus margins).

    Returns:
        An image figure without zoom clutter; pixels are not smoothed.
    """
    fig = go.Figure(go.Image(z=grid, hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    if row_labels is not None and row_centres is not None:
        fig.update_yaxes(tickmode="array", tickvals=list(row_centres), ticktext=[str(s) for s in row_labels],
                         showgrid=False, zeroline=False, ticks="")
    else:
        fig.update_yaxes(visible=False)
    h = height or int(grid.shape[0]) + 20
    return fig.update_layout(height=h, margin=dict(l=10, r=10, t=10, b=10), template="plotly_white",
                             dragmode=False)
