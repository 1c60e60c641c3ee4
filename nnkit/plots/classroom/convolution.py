"""Figures of the convolution demo (``nnkit.classroom.convolution``): a kernel sliding over its input, max
pooling, and a CNN's feature maps layer by layer (LeCun et al. 1998).

Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _rgb
from nnkit.plots.data import image_grid


def _labels(a: np.ndarray) -> list[list[str]]:
    """Cell labels as a textbook writes numbers: 5, -2, 0.111 (no trailing zeros)."""
    return [[f"{float(v):.3g}" for v in row] for row in np.asarray(a)]


def _box(fig: go.Figure, top: int, left: int, size: int, row: int, col: int, colour: str = "#EF553B") -> None:
    fig.add_shape(type="rect", x0=left - 0.5, x1=left + size - 0.5, y0=top - 0.5, y1=top + size - 0.5,
                  line=dict(color=colour, width=3), row=row, col=col)


def convolution_figure(result, window, height: int = 420) -> go.Figure:
    """The padded input with the kernel's window, the kernel, and the output with the window's pixel.

    Args:
        result: ``nnkit.classroom.convolution.ConvResult``.
        window: the ``Window`` to highlight (from ``conv_windows``), or None.

    Returns:
        Three heatmaps side by side (rows top-down, like the image).
    """
    k = result.kernel.shape[0]
    fig = make_subplots(rows=1, cols=3, column_widths=[0.42, 0.16, 0.42], horizontal_spacing=0.05,
                        subplot_titles=(f"input, zero padding {result.padding}", "kernel",
                                        f"output {result.output.shape[0]}×{result.output.shape[1]}"))
    fig.add_trace(go.Heatmap(z=result.padded, colorscale="Greys", reversescale=True, showscale=False,
                             hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=result.kernel, colorscale="RdBu", zmid=0, showscale=False, text=_labels(result.kernel),
                             texttemplate="%{text}", hovertemplate="%{z:.3g}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Heatmap(z=result.output, colorscale="RdBu", zmid=0, colorbar=dict(len=0.8),
                             hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>"), row=1, col=3)
    if result.padding:
        n = result.padded.shape[0]
        _box(fig, result.padding, result.padding, n - 2 * result.padding, 1, 1, colour="#636EFA")
    if window is not None:
        _box(fig, window.top, window.left, k, 1, 1)
        _box(fig, window.row, window.col, 1, 1, 3)
    for c in (1, 2, 3):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if c == 1 else c}", constrain="domain",
                         showgrid=False, row=1, col=c)
        fig.update_xaxes(showgrid=False, constrain="domain", row=1, col=c)
    return fig.update_layout(height=height, **_LAYOUT)


def pooling_figure(grid: np.ndarray, result, height: int = 340) -> go.Figure:
    """Max pooling: the input with each window outlined and its maximum ringed, and the pooled output.

    Args:
        grid: the H×W input; result: ``nnkit.classroom.convolution.PoolResult``.
    """
    grid = np.asarray(grid, dtype=np.float64)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.08,
                        subplot_titles=(f"input {grid.shape[0]}×{grid.shape[1]}",
                                        f"{result.size}×{result.size} max pool, stride {result.stride}"))
    fig.add_trace(go.Heatmap(z=grid, text=_labels(grid), texttemplate="%{text}", colorscale="Blues", showscale=False,
                             hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=result.output, text=_labels(result.output), texttemplate="%{text}", colorscale="Blues",
                             showscale=False, hoverinfo="skip"), row=1, col=2)
    n, m = result.output.shape
    for r in range(n):
        for c in range(m):
            colour = _PALETTE[(r * m + c) % len(_PALETTE)]
            _box(fig, r * result.stride, c * result.stride, result.size, 1, 1, colour=colour)
            ar, ac = result.argmax[r, c]
            fig.add_shape(type="circle", x0=ac - 0.35, x1=ac + 0.35, y0=ar - 0.35, y1=ar + 0.35,
                          line=dict(color=colour, width=3), row=1, col=1)
            _box(fig, r, c, 1, 1, 2, colour=colour)
    for c in (1, 2):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if c == 1 else c}", constrain="domain",
                         showgrid=False, showticklabels=False, row=1, col=c)
        fig.update_xaxes(showgrid=False, showticklabels=False, constrain="domain", row=1, col=c)
    return fig.update_layout(height=height, **_LAYOUT)


def _tile(maps: np.ndarray, cell: int, pad: int) -> np.ndarray:
    """C×h×w maps, each scaled to [0, 1] on its own, enlarged by pixel repetition to ``cell`` and put side by side."""
    tiles = []
    for m in maps:
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        rep = max(1, cell // max(m.shape))
        m = np.kron(m, np.ones((rep, rep)))[:cell, :cell]
        tile = np.ones((cell + pad, cell + pad))
        tile[:m.shape[0], :m.shape[1]] = m
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def feature_maps_figure(image: np.ndarray, maps: Sequence, cell: int = 32) -> go.Figure:
    """Feature maps of a CNN layer by layer: the input on top, then one row per layer, a tile per channel.

    Args:
        image: the input, H×W or H×W×C in [0, 1].
        maps: ``nnkit.classroom.convolution.FeatureMap`` list (``feature_maps``).
        cell: pixels per tile (small maps are enlarged without smoothing); each tile is scaled to its own
            range, so a dim channel is still visible.

    Returns:
        A grey image with a label per row (stage · layer · channels shown/total).
    """
    pad = 2
    cell = max(cell, *(max(fm.maps.shape[1:]) for fm in maps), *np.shape(image)[:2])
    rows = [_tile(fm.maps, cell, pad) for fm in maps]
    width = max(r.shape[1] for r in rows)
    img = _rgb(image)
    rep = max(1, cell // max(img.shape[:2]))
    top = np.full((cell + pad, width, 3), 255, np.uint8)
    big = np.kron(img, np.ones((rep, rep, 1), np.uint8))[:cell, :cell]
    top[:big.shape[0], :big.shape[1]] = big
    body = [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=1.0) for r in rows]
    grey = (np.concatenate(body, axis=0) * 255).astype(np.uint8)
    grid = np.concatenate([top, np.repeat(grey[..., None], 3, axis=2)], axis=0)
    labels = ["input"] + [f"stage {fm.stage} · {fm.layer} · {fm.maps.shape[0]}/{fm.channels} ch" for fm in maps]
    centres = [(i + 0.5) * (cell + pad) for i in range(len(labels))]
    scale = max(1, min(900 // max(grid.shape[1], 1), 1100 // max(grid.shape[0], 1)))
    grid = np.kron(grid, np.ones((scale, scale, 1), np.uint8))
    return image_grid(grid, labels, [c * scale for c in centres])
