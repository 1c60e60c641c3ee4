"""Figures of the perceptron demo (``nnkit.classroom.perceptron``): the perceptron's line epoch by epoch (Rosenblatt 1958)
and the hidden-layer network learning XOR (Rumelhart, Hinton & Williams 1986), animated in the browser.

Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.classroom._common import _CLASS_COLOURS, _LAYOUT, _PALETTE, _play_controls


def _limits(x: np.ndarray, margin: float = 0.5) -> tuple[float, float]:
    return float(np.min(x) - margin), float(np.max(x) + margin)


def perceptron_animation(x: np.ndarray, y: np.ndarray, result, height: int = 440) -> go.Figure:
    """The perceptron's line after every epoch (Rosenblatt 1958), one frame per epoch, over the points.

    Args:
        x: N×2 points; y: N labels in {0, 1}.
        result: ``nnkit.classroom.perceptron.PerceptronResult``.

    Returns:
        Points coloured by label and the line w·x + b = 0, with a play button and an epoch slider.
    """
    from nnkit.classroom.perceptron import decision_line

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y).astype(int)
    xlim, ylim = _limits(x[:, 0]), _limits(x[:, 1])
    ends = {s.epoch: s for s in result.steps}  # the last step of each epoch holds its final weights

    def line(epoch: int) -> go.Scatter:
        s = ends[epoch]
        pts = decision_line(s.w, s.b, xlim)
        xs, ys = ([], []) if pts is None else (pts[0].tolist(), pts[1].tolist())
        return go.Scatter(x=xs, y=ys, mode="lines", name="w·x + b = 0", line=dict(color="black", width=3))

    def title(epoch: int) -> str:
        s = ends[epoch]
        return (f"epoch {epoch}: {result.mistakes_per_epoch[epoch - 1]} mistakes · w = "
                f"({s.w[0]:.2f}, {s.w[1]:.2f}), b = {s.b:.2f}")

    epochs = sorted(ends)
    fig = go.Figure([line(epochs[0])])
    for label in (0, 1):
        pts = x[y == label]
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=f"label {label}",
                                 marker=dict(size=10, color=_CLASS_COLOURS[label], line=dict(width=1, color="white"))))
    fig.frames = [go.Frame(data=[line(e)], traces=[0], name=str(e), layout=dict(title=dict(text=title(e))))
                  for e in epochs]
    fig.update_xaxes(range=xlim, title_text="x₁")
    fig.update_yaxes(range=ylim, title_text="x₂", scaleanchor="x")
    fig.update_layout(title=title(epochs[0]), height=height, legend=dict(orientation="h", y=1.08), **_LAYOUT)
    fig.update_layout(margin=dict(l=10, r=10, t=70, b=110), **_play_controls(epochs, "epoch", duration=300))
    return fig


def mistakes_per_epoch(mistakes: Sequence[int], height: int = 260) -> go.Figure:
    """Bars: how many points the perceptron got wrong in each epoch (zero means it converged)."""
    fig = go.Figure(go.Bar(x=list(range(1, len(mistakes) + 1)), y=list(mistakes), marker_color=_PALETTE[0]))
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="mistakes", rangemode="tozero")
    return fig.update_layout(height=height, **_LAYOUT)


def xor_animation(frames: Sequence, x: np.ndarray, y: np.ndarray, height: int = 460) -> go.Figure:
    """The hidden-layer network's output surface as it learns, TensorFlow-Playground-style.

    Args:
        frames: ``nnkit.classroom.perceptron.NetworkFrame`` snapshots (``xor_network``).
        x: N×2 training points; y: N labels.

    Returns:
        Left: the output o(x₁, x₂) as a heatmap with the 0.5 contour (the decision boundary) and the
        points; right: the error E over the steps with the current step marked. One frame per snapshot.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y).astype(int)
    first = frames[0]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.1,
                        subplot_titles=("network output o(x₁, x₂)", "error E = Σ ½(y - o)²"))

    def surface(f) -> list:
        return [go.Heatmap(x=f.grid_x, y=f.grid_y, z=f.grid_output, zmin=0, zmax=1, colorscale="RdBu",
                           zsmooth="best", colorbar=dict(title="o", x=0.55, len=0.8), name="output"),
                go.Contour(x=f.grid_x, y=f.grid_y, z=f.grid_output, showscale=False, name="o = 0.5",
                           contours=dict(start=0.5, end=0.5, size=1, coloring="lines"),
                           colorscale=[[0, "black"], [1, "black"]], line=dict(width=2))]

    def marker(f) -> go.Scatter:
        return go.Scatter(x=[f.step], y=[f.error], mode="markers", marker=dict(size=12, color="black"),
                          name="now", showlegend=False)

    for trace in surface(first):
        fig.add_trace(trace, row=1, col=1)
    for label in (0, 1):
        pts = x[y == label]
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=f"label {label}",
                                 marker=dict(size=11, color=_CLASS_COLOURS[label], line=dict(width=1.5,
                                                                                             color="white"))),
                      row=1, col=1)
    fig.add_trace(go.Scatter(x=[f.step for f in frames], y=[f.error for f in frames], mode="lines",
                             line=dict(color=_PALETTE[0]), name="E", showlegend=False), row=1, col=2)
    fig.add_trace(marker(first), row=1, col=2)

    def title(f) -> str:
        return f"step {f.step}: E = {f.error:.4f}, accuracy {f.accuracy:.0%}"

    fig.frames = [go.Frame(data=[*surface(f), marker(f)], traces=[0, 1, 5], name=str(f.step),
                           layout=dict(title=dict(text=title(f)))) for f in frames]
    fig.update_xaxes(title_text="x₁", row=1, col=1)
    fig.update_yaxes(title_text="x₂", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=2)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(title=title(first), height=height, legend=dict(orientation="h", y=1.2, x=1, xanchor="right"),
                      **_LAYOUT)
    fig.update_layout(margin=dict(l=10, r=10, t=100, b=110), **_play_controls([f.step for f in frames], "step"))
    return fig
