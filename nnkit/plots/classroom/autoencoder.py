"""Figures of the autoencoder demo (``nnkit.classroom.autoencoder``): the loss curve, input and reconstruction
rows, and a 2-number bottleneck as a scatter (Hinton & Salakhutdinov 2006; denoising: Vincent et al. 2008).

Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _finite, _rgb
from nnkit.plots.data import image_grid
from nnkit.plots.theme import empty_figure


def metric_curves(records: Sequence[Mapping], keys: Sequence[str], x: str = "step", log: bool = False,
                  height: int = 300) -> go.Figure:
    """One line per key over ``x`` from a list of records (a job's live metrics); missing keys are skipped."""
    fig = go.Figure()
    for i, key in enumerate(keys):
        pts = [(r[x], r[key]) for r in records if key in r and x in r]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=_finite(p[1] for p in pts), mode="lines+markers",
                                     name=key.replace("_", " "), line=dict(color=_PALETTE[i % len(_PALETTE)])))
    if not fig.data:
        return empty_figure("waiting for the first steps…", height)
    fig.update_xaxes(title_text=x)
    if log:
        fig.update_yaxes(type="log", exponentformat="power")
    return fig.update_layout(height=height, legend=dict(orientation="h", y=-0.25), **_LAYOUT)


def image_rows(rows: Mapping[str, np.ndarray], scale: int | None = None, pad: int = 2) -> go.Figure:
    """Rows of images with a label each (e.g. clean / noisy / reconstructed), pixels not smoothed.

    Args:
        rows: ``{label: N×H×W or N×H×W×C array in [0, 1]}``, the same N, H, W in every row.
        scale: pixel repetition (default: about 64 pixels per image).
    """
    arrays = [np.asarray(a) for a in rows.values()]
    h, w = arrays[0].shape[1:3]
    scale = scale or max(1, 64 // max(h, w))
    cells = []
    for a in arrays:
        row = []
        for img in a:
            tile = np.full((h + pad, w + pad, 3), 255, np.uint8)
            tile[:h, :w] = _rgb(img)
            row.append(tile)
        cells.append(np.concatenate(row, axis=1))
    grid = np.kron(np.concatenate(cells, axis=0), np.ones((scale, scale, 1), np.uint8))
    centres = [(i + 0.5) * (h + pad) * scale for i in range(len(arrays))]
    return image_grid(grid, list(rows), centres)


def codes_scatter(codes: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
                  height: int = 420) -> go.Figure:
    """A 2-number bottleneck: each test image's code as a point, coloured by its class."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    fig = go.Figure()
    for k, name in enumerate(class_names):
        pts = codes[labels == k]
        if len(pts):
            fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=str(name),
                                     marker=dict(size=6, color=_PALETTE[k % len(_PALETTE)] if k < 8 else None)))
    fig.update_xaxes(title_text="code 1")
    fig.update_yaxes(title_text="code 2")
    return fig.update_layout(height=height, **_LAYOUT)
