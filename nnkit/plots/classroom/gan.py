"""Figures of the GAN minimax demo (``nnkit.classroom.gan``): data against generator samples with the
discriminator's output, GAN-Lab-style, and both losses (Goodfellow et al. 2014).

Nothing here imports Streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _finite, _play_controls
from nnkit.plots.theme import empty_figure


def _density(samples: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(samples, bins=edges, density=True)
    return counts


def gan_figure(records: Sequence[Mapping], animate: bool = True, height: int = 480) -> go.Figure:
    """The GAN game, GAN-Lab-style: data vs generator samples with the discriminator's output, and the losses.

    Args:
        records: one dict per snapshot, in step order, with ``step``, ``d_loss``, ``g_loss``, ``value``,
            ``real`` (M×dim), ``fake`` (M×dim), ``grid`` (axes) and ``d_grid`` (D's output on the grid), as
            ``nnkit.jobs.classroom_tasks.gan_task`` logs them.
        animate: one frame per snapshot with a step slider and play button; False draws only the last.

    Returns:
        1-D: densities of real and fake samples and D(x) (right axis, 0..1); 2-D: D(x) as a heatmap with
        the real and fake points. Right panel: D's and G's losses over the steps, the shown step marked.
    """
    if not records:
        return empty_figure("waiting for the first steps…", height)
    shown = list(records) if animate else [records[-1]]
    dim = np.asarray(records[0]["real"]).shape[1]
    spec = [[{"secondary_y": dim == 1}, {}]]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], specs=spec, horizontal_spacing=0.1,
                        subplot_titles=("samples and D(x)", "losses"))
    axis = np.asarray(records[0]["grid"][0])
    lo, hi = float(axis[0]), float(axis[-1])
    if dim == 1:
        edges = np.linspace(lo, hi, 61)
        mids = (edges[:-1] + edges[1:]) / 2

        def game(r) -> list:
            return [go.Scatter(x=mids, y=_density(np.asarray(r["fake"])[:, 0], edges), mode="lines",
                               line_shape="hvh", fill="tozeroy", name="generator G(z)",
                               line=dict(color=_PALETTE[3])),
                    go.Scatter(x=axis, y=np.asarray(r["d_grid"]), mode="lines", name="discriminator D(x)",
                               line=dict(color="black", dash="dash"))]

        real = np.asarray(records[0]["real"])[:, 0]
        fig.add_trace(go.Scatter(x=mids, y=_density(real, edges), mode="lines", line_shape="hvh", fill="tozeroy",
                                 name="data", line=dict(color=_PALETTE[2])), row=1, col=1)
        first = game(shown[0])
        fig.add_trace(first[0], row=1, col=1)
        fig.add_trace(first[1], row=1, col=1, secondary_y=True)
        fig.update_yaxes(title_text="density", row=1, col=1, secondary_y=False)
        fig.update_yaxes(title_text="D(x)", range=[0, 1], row=1, col=1, secondary_y=True)
        fig.update_xaxes(range=[lo, hi], title_text="x", row=1, col=1)
        animated = [1, 2]
    else:

        def game(r) -> list:
            fake = np.asarray(r["fake"])
            return [go.Heatmap(x=axis, y=np.asarray(r["grid"][1]), z=np.asarray(r["d_grid"]), zmin=0, zmax=1,
                               colorscale="RdBu", reversescale=True, opacity=0.75, zsmooth="best", name="D(x)",
                               colorbar=dict(title="D(x)", x=0.55, len=0.8)),
                    go.Scatter(x=fake[:, 0], y=fake[:, 1], mode="markers", name="generator G(z)",
                               marker=dict(size=4, color=_PALETTE[3]))]

        first = game(shown[0])
        fig.add_trace(first[0], row=1, col=1)
        real = np.asarray(records[0]["real"])
        fig.add_trace(go.Scatter(x=real[:, 0], y=real[:, 1], mode="markers", name="data",
                                 marker=dict(size=4, color=_PALETTE[2])), row=1, col=1)
        fig.add_trace(first[1], row=1, col=1)
        fig.update_xaxes(range=[lo, hi], title_text="x₁", row=1, col=1)
        fig.update_yaxes(range=[lo, hi], title_text="x₂", row=1, col=1)
        animated = [0, 2]
    steps = [r["step"] for r in records]
    for key, colour, name in (("d_loss", _PALETTE[1], "D loss"), ("g_loss", _PALETTE[0], "G loss")):
        fig.add_trace(go.Scatter(x=steps, y=_finite(r[key] for r in records), mode="lines", name=name,
                                 line=dict(color=colour)), row=1, col=2)

    def marker(r) -> go.Scatter:
        return go.Scatter(x=[r["step"], r["step"]], y=_finite([r["d_loss"], r["g_loss"]]), mode="markers",
                          marker=dict(size=10, color="black"), showlegend=False, name="now")

    fig.add_trace(marker(shown[0]), row=1, col=2)
    fig.update_xaxes(title_text="step", row=1, col=2)

    def title(r) -> str:
        return f"step {r['step']}: V(D, G) = {r['value']:.3f} (equilibrium: -2 ln 2 = {-2 * math.log(2):.3f})"

    fig.update_layout(title=title(shown[0]), height=height, legend=dict(orientation="h", y=1.14, x=0), **_LAYOUT)
    fig.update_layout(margin=dict(l=10, r=10, t=100, b=110 if animate else 10))
    if animate:
        fig.frames = [go.Frame(data=[*game(r), marker(r)], traces=[*animated, len(fig.data) - 1], name=str(r["step"]),
                               layout=dict(title=dict(text=title(r)))) for r in shown]
        fig.update_layout(**_play_controls(steps, "step", duration=120))
    return fig
