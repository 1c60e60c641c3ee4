"""Figures of the residual-network demo (``nnkit.classroom.residual``): first-layer gradient norm against depth
for a plain and a residual net (He et al. 2016).

Nothing here imports Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _finite


def depth_sweep_figure(sweep, height: int = 400) -> go.Figure:
    """‖∂L/∂W₁‖ against depth for the plain and the residual net (``DepthSweep``), log axis."""
    fig = go.Figure([
        go.Scatter(x=sweep.depths, y=_finite(sweep.plain), mode="lines+markers", name="plain: x ← F(x)",
                   line=dict(color=_PALETTE[1])),
        go.Scatter(x=sweep.depths, y=_finite(sweep.residual), mode="lines+markers", name="residual: x ← x + F(x)",
                   line=dict(color=_PALETTE[0])),
    ])
    fig.update_xaxes(title_text="depth (Linear layers)")
    fig.update_yaxes(type="log", title_text="first-layer gradient norm ‖∂L/∂W₁‖", exponentformat="power")
    return fig.update_layout(height=height, title=f"{sweep.activation} units, at initialisation",
                             legend=dict(orientation="h", y=-0.2), **_LAYOUT)
