"""Figures of shortcut discovery (SpRAy): the eigengap plot, cluster members with their maps, the
prototypes with their boxes, the 2-D spectral embedding. Each function returns a plotly figure and never
shows it (the Discover tab shows it, a report can save it)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from nnkit.errors import NnkitError
from nnkit.saliency.figures import blend

BOX_COLOUR = "#00CC96"


def _rgb(images: torch.Tensor) -> list[np.ndarray]:
    """N×3×H×W floats in [0, 1] → H×W×3 uint8 arrays."""
    return [(img.permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8) for img in images]


def eigengap_figure(eigenvalues: Sequence[float], n_clusters: int, title: str | None = None,
                    height: int = 300) -> go.Figure:
    """The smallest eigenvalues of the normalised graph Laplacian with the gap that chose k marked
    (von Luxburg 2007: k clusters give k eigenvalues near 0, then a jump).

    Args:
        eigenvalues: ascending.
        n_clusters: the k chosen.
        title: figure title.

    Returns:
        Eigenvalue λ_i against i (1-based), the chosen gap between λ_k and λ_{k+1} shaded.
    """
    ev = np.asarray(eigenvalues, dtype=float)
    if ev.size == 0:
        raise NnkitError("no eigenvalues to plot")
    k = np.arange(1, len(ev) + 1)
    fig = go.Figure(go.Scatter(x=k, y=ev, mode="lines+markers", name="eigenvalue",
                               hovertemplate="λ%{x} = %{y:.4f}<extra></extra>"))
    if 1 <= n_clusters < len(ev):
        fig.add_vrect(x0=n_clusters, x1=n_clusters + 1, fillcolor=BOX_COLOUR, opacity=0.15, line_width=0)
        fig.add_annotation(x=n_clusters + 0.5, y=float(ev[n_clusters]), text=f"largest gap: k = {n_clusters}",
                           showarrow=False, yshift=14)
    fig.update_xaxes(title="i", dtick=1)
    fig.update_yaxes(title="λ_i of the normalised Laplacian", rangemode="tozero")
    return fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                             template="plotly_white", showlegend=False)


def members_figure(images: torch.Tensor, maps: torch.Tensor, titles: Sequence[str] | None = None, cols: int = 6,
                   opacity: float = 0.55) -> go.Figure:
    """A grid of a cluster's member images, each with its relevance map blended over it.

    Args:
        images: N×C×H×W in [0, 1] (C = 1 or 3).
        maps: N×H×W relevance maps.
        titles: one per image (e.g. its index in the split).
        cols: images per row.
        opacity: of the map over the image.

    Returns:
        The grid (hover gives x, y).
    """
    n = images.shape[0]
    if n == 0 or tuple(maps.shape) != (n, *images.shape[-2:]):
        raise NnkitError(f"need N×H×W maps for N images, got {tuple(maps.shape)} for {tuple(images.shape)}")
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles) if titles else None,
                        horizontal_spacing=0.01, vertical_spacing=0.06 if titles else 0.01)
    for i, img in enumerate(_rgb(blend(images, maps, opacity))):
        fig.add_trace(go.Image(z=img, hovertemplate="x %{x}, y %{y}<extra></extra>"), row=i // cols + 1,
                      col=i % cols + 1)
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_annotations(font_size=10)
    return fig.update_layout(height=max(140, 110 * rows + 30), width=max(200, 100 * cols + 20),
                             margin=dict(l=5, r=5, t=25, b=5))


def prototypes_figure(prototypes: Sequence[torch.Tensor], mean_images: Sequence[torch.Tensor],
                      boxes: Sequence[Sequence[int]], titles: Sequence[str], opacity: float = 0.6) -> go.Figure:
    """Each cluster's prototype (mean map) over its mean image, with the found box drawn.

    Args:
        prototypes: H×W per cluster.
        mean_images: C×H×W per cluster, in [0, 1].
        boxes: ``(x0, y0, x1, y1)`` end-exclusive per cluster.
        titles: per cluster.
        opacity: of the prototype over the mean image.

    Returns:
        One panel per cluster.
    """
    if not len(prototypes) or not len(prototypes) == len(mean_images) == len(boxes) == len(titles):
        raise NnkitError("need one prototype, mean image, box and title per cluster")
    n = len(prototypes)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles), horizontal_spacing=0.02)
    imgs = _rgb(blend(torch.stack(list(mean_images)), torch.stack(list(prototypes)), opacity))
    for j, (img, box) in enumerate(zip(imgs, boxes)):
        fig.add_trace(go.Image(z=img, hovertemplate="x %{x}, y %{y}<extra></extra>"), row=1, col=j + 1)
        x0, y0, x1, y1 = (int(v) for v in box)
        fig.add_shape(type="rect", x0=x0 - 0.5, y0=y0 - 0.5, x1=x1 - 0.5, y1=y1 - 0.5,
                      line=dict(color=BOX_COLOUR, width=3), row=1, col=j + 1)
    fig.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    fig.update_xaxes(visible=False)
    fig.update_annotations(font_size=11)
    return fig.update_layout(height=260, width=max(260, 220 * n), margin=dict(l=5, r=5, t=40, b=5))


def embedding_figure(embedding: Sequence[Sequence[float]], groups: Sequence, hover: Sequence[str] | None = None,
                     title: str | None = None, prefix: str = "cluster ", height: int = 380) -> go.Figure:
    """The maps' 2-D spectral embedding, one colour per group (a cluster, or a class).

    Args:
        embedding: N×2.
        groups: group of each point (cluster numbers, class names, ...), in the legend as ``prefix + group``.
        hover: text per point (e.g. "image 12 of test").
        title: figure title.
        prefix: legend text before each group.

    Returns:
        A scatter plot, one trace (legend entry) per group, in order of first appearance; each point's
        ``customdata`` is its row in ``embedding`` (see :func:`selected_points`).
    """
    emb = np.asarray(embedding, dtype=float)
    grp = [str(g) for g in groups]
    if emb.ndim != 2 or emb.shape[1] != 2 or emb.shape[0] != len(grp):
        raise NnkitError(f"need N×2 points and N groups, got {emb.shape} and {len(grp)}")
    text = list(hover) if hover is not None else [f"map {i}" for i in range(len(grp))]
    fig = go.Figure()
    for g in dict.fromkeys(grp):
        sel = [i for i, v in enumerate(grp) if v == g]
        fig.add_trace(go.Scattergl(x=emb[sel, 0], y=emb[sel, 1], mode="markers", name=f"{prefix}{g}",
                                   text=[text[i] for i in sel], customdata=sel,
                                   hovertemplate="%{text}<extra>" + f"{prefix}{g}" + "</extra>"))
    fig.update_xaxes(title="spectral dimension 1")
    fig.update_yaxes(title="spectral dimension 2")
    return fig.update_layout(title=title, height=height, margin=dict(l=10, r=10, t=40, b=10),
                             template="plotly_white")


def selected_points(points: Sequence[dict]) -> list[int]:
    """Rows of the embedding picked in an :func:`embedding_figure` (click, box or lasso), in pick order.

    Args:
        points: the selection's points as the browser reports them (each with the ``customdata`` the figure
            gave it: a row number, or a one-item list holding it).

    Returns:
        The distinct rows, without points that carry no row.
    """
    rows = []
    for p in points:
        data = p.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            rows.append(int(data))
    return list(dict.fromkeys(rows))
