"""Figures of the activations demo (``nnkit.classroom.activations``): f and f' of each activation, and the
per-layer gradient norms that show vanishing gradients (Glorot & Bengio 2010).

Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _finite


def activation_curves(curves: Sequence, height: int = 380) -> go.Figure:
    """f(z) (left) and f'(z) (right) for each ``nnkit.classroom.activations.Curve``."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("f(z)", "f'(z)"), horizontal_spacing=0.08)
    for i, c in enumerate(curves):
        colour = _PALETTE[i % len(_PALETTE)]
        fig.add_trace(go.Scatter(x=c.z, y=c.value, mode="lines", name=c.name, legendgroup=c.name,
                                 line=dict(color=colour), hovertemplate=f"{c.formula}<br>z=%{{x:.2f}}, "
                                                                        "f=%{y:.3f}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=c.z, y=c.derivative, mode="lines", name=c.name, legendgroup=c.name,
                                 showlegend=False, line=dict(color=colour),
                                 hovertemplate=f"{c.derivative_formula}<br>z=%{{x:.2f}}, f'=%{{y:.3f}}"
                                               "<extra></extra>"), row=1, col=2)
    fig.update_xaxes(title_text="z")
    return fig.update_layout(height=height, legend=dict(orientation="h", y=-0.2), **_LAYOUT)


def gradient_norms(norms: Sequence, height: int = 380) -> go.Figure:
    """‖∂L/∂W‖ per layer (input side first) on a log axis, one line per ``LayerNorms`` setup."""
    fig = go.Figure()
    for i, n in enumerate(norms):
        fig.add_trace(go.Scatter(x=n.layers, y=_finite(n.norms), mode="lines+markers", name=n.label,
                                 line=dict(color=_PALETTE[i % len(_PALETTE)])))
    fig.update_xaxes(title_text="layer (1 = next to the input)", dtick=max(1, len(norms[0].layers) // 10)
                     if norms else 1)
    fig.update_yaxes(type="log", title_text="gradient norm ‖∂L/∂W‖", exponentformat="power")
    return fig.update_layout(height=height, legend=dict(orientation="h", y=-0.2), **_LAYOUT)
