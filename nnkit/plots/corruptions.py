"""Plotly figure builders for common-corruption robustness (Hendrycks & Dietterich 2019): numbers and arrays in,
figure out; nothing here runs a model or corrupts an image.

- :func:`accuracy_heatmap`: accuracy per corruption (rows) and severity (columns), as percentages;
- :func:`severity_curves`: accuracy against severity, one line per corruption, clean accuracy as severity 0;
- :func:`example_grid`: one image under every corruption and severity.

Each takes the ``result`` of a stored ``corruptions`` evaluation (``nnkit.corruptions.evaluate``) or its parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from nnkit.plots.theme import LAYOUT, empty_figure


def accuracy_heatmap(accuracy: Mapping[str, Sequence[float]], severities: Sequence[int],
                     ce: Mapping[str, float | None] | None = None, title: str = "Accuracy under corruption") -> go.Figure:
    """Accuracy per corruption and severity as a heatmap, each cell labelled like 97.0%.

    Args:
        accuracy: {corruption: [accuracy in 0..1 per severity]}.
        severities: the severities, in the order of the lists.
        ce: corruption error per corruption (shown in the row label), or None.
        title: the figure's title.

    Returns:
        A heatmap figure, corruptions top to bottom in the given order.
    """
    if not accuracy:
        return empty_figure("no corruption measured yet")
    names = list(accuracy)
    z = np.array([[100.0 * a for a in accuracy[n]] for n in names])
    labels = [n if not ce or ce.get(n) is None else f"{n} (CE {100 * ce[n]:.0f}%)" for n in names]
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"severity {s}" for s in severities], y=labels, zmin=0, zmax=100, colorscale="RdYlGn",
        text=[[f"{v:.1f}%" for v in row] for row in z], texttemplate="%{text}",
        colorbar=dict(title="accuracy", ticksuffix="%"),
        hovertemplate="%{y}<br>%{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed")
    return fig.update_layout(title=title, height=120 + 28 * len(names), **LAYOUT)


def severity_curves(accuracy: Mapping[str, Sequence[float]], severities: Sequence[int],
                    clean_accuracy: float | None = None, title: str = "Accuracy against severity") -> go.Figure:
    """Accuracy against severity, one line per corruption, starting from the clean accuracy at severity 0.

    Args:
        accuracy: {corruption: [accuracy in 0..1 per severity]}.
        severities: the severities, in the order of the lists.
        clean_accuracy: accuracy on the uncorrupted images (drawn at severity 0), or None.
        title: the figure's title.

    Returns:
        A line figure, accuracy in percent.
    """
    if not accuracy:
        return empty_figure("no corruption measured yet")
    fig = go.Figure()
    xs = ([0] if clean_accuracy is not None else []) + list(severities)
    for name, accs in accuracy.items():
        ys = ([clean_accuracy] if clean_accuracy is not None else []) + list(accs)
        fig.add_trace(go.Scatter(x=xs, y=[100.0 * y for y in ys], mode="lines+markers", name=name,
                                 hovertemplate=f"{name}<br>severity %{{x}}: %{{y:.1f}}%<extra></extra>"))
    if accuracy:
        mean = [100.0 * float(np.mean([accs[i] for accs in accuracy.values()])) for i in range(len(severities))]
        start = [100.0 * clean_accuracy] if clean_accuracy is not None else []
        fig.add_trace(go.Scatter(x=xs, y=start + mean, mode="lines", name="mean", line=dict(color="black", width=4),
                                 hovertemplate="mean<br>severity %{x}: %{y:.1f}%<extra></extra>"))
    fig.update_xaxes(title="severity (0 = clean)" if clean_accuracy is not None else "severity", dtick=1)
    fig.update_yaxes(title="accuracy", ticksuffix="%", range=[0, 101])
    return fig.update_layout(title=title, height=420, **LAYOUT)


def example_grid(grid: np.ndarray, names: Sequence[str], severities: Sequence[int], scale: int = 3) -> go.Figure:
    """One image under every corruption (rows) and severity (columns), the clean image first.

    Args:
        grid: the tiled grid (``nnkit.corruptions.figures.grid_uint8`` of ``corruption_examples``).
        names: the corruptions, top to bottom; severities: the columns after "clean".
        scale: enlargement (nearest neighbour).

    Shape:
        grid (R·(H+2)+2)×(K·(W+2)+2)×3 uint8, K = 1 + len(severities).

    Returns:
        An image figure with corruption names and severities as axis labels.
    """
    grid = np.asarray(grid)
    big = grid.repeat(scale, 0).repeat(scale, 1)
    rows, cols = len(names), 1 + len(severities)
    fig = go.Figure(go.Image(z=big, hoverinfo="skip"))
    fig.update_xaxes(tickmode="array", tickvals=[(j + 0.5) * big.shape[1] / cols for j in range(cols)],
                     ticktext=["clean", *[str(s) for s in severities]], side="top", showgrid=False, zeroline=False)
    fig.update_yaxes(tickmode="array", tickvals=[(i + 0.5) * big.shape[0] / rows for i in range(rows)],
                     ticktext=list(names), showgrid=False, zeroline=False)
    return fig.update_layout(height=big.shape[0] + 60, margin=dict(l=10, r=10, t=40, b=10), template="plotly_white",
                             dragmode=False)
