"""Plotly figure of the Compare page: clean against robust accuracy, one point per run (RobustBench's view).

Plain numbers in, a figure out; nothing is shown here and nothing imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from nnkit.plots.theme import LAYOUT, TRAIN_COLOUR, VAL_COLOUR, empty_figure


def clean_vs_robust(labels: Sequence[str], clean: Sequence[float | None], robust: Sequence[float | None],
                    eps_text: str = "8/255", height: int = 380) -> go.Figure:
    """Clean accuracy (x) against robust accuracy at ε (y), one marker per run, as in RobustBench's
    leaderboard plots (Croce et al. 2021): the trade-off of adversarial training (Madry et al. 2018) shows
    as points up and to the left.

    Args:
        labels: the run labels.
        clean: clean accuracy per run, in [0, 1] (None: not known).
        robust: robust accuracy per run at ``eps_text`` (None: not measured; the run is listed below the plot).

    Returns:
        The scatter (an empty figure that says why when no run has both numbers).
    """
    pts = [(lab, c, r) for lab, c, r in zip(labels, clean, robust) if c is not None and r is not None]
    if not pts:
        return empty_figure(f"No run has both a clean and a robust accuracy at ε = {eps_text} yet: compute the "
                            "missing cells.", height=height)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color="lightgrey", dash="dot", width=1),
                             name="robust = clean", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[p[1] for p in pts], y=[p[2] for p in pts], mode="markers+text",
                             text=[p[0] for p in pts], textposition="top center", name="runs",
                             marker=dict(size=12, color=TRAIN_COLOUR, line=dict(color=VAL_COLOUR, width=1)),
                             hovertemplate="%{text}<br>clean %{x:.1%}<br>robust %{y:.1%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1.02], tickformat=".0%", title_text="clean accuracy")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text=f"robust accuracy (ε = {eps_text})")
    return fig.update_layout(height=height, showlegend=False, **LAYOUT)
