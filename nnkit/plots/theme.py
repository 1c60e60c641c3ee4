"""The one look of every nnkit figure: curve colours, the shared layout, and the empty-figure placeholder.

Every figure builder in ``nnkit.plots`` takes plain numbers or arrays and returns a plotly figure; it never
shows it. The dashboard shows these figures and a report can save the same ones (captum's habit:
plotting helpers return figures). Nothing here imports Streamlit.
"""

from __future__ import annotations

import plotly.graph_objects as go

# One colour per curve kind, the same in every figure (plotly's default qualitative palette).
TRAIN_COLOUR = "#636EFA"
VAL_COLOUR = "#EF553B"
BATCH_COLOUR = "rgba(99, 110, 250, 0.35)"
BATCH_ACC_COLOUR = "rgba(99, 110, 250, 0.45)"
LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2), template="plotly_white")


def empty_figure(message: str, height: int = 300) -> go.Figure:
    """A blank figure that says why it is blank (no data yet, nothing to show)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color="grey"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig.update_layout(height=height, **LAYOUT)
