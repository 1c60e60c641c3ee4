"""Figures of the training-tricks demo (``nnkit.classroom.tricks``): train and validation curves of each trick
side by side (dropout, Srivastava et al. 2014; batch norm, Ioffe & Szegedy 2015).

Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _finite
from nnkit.plots.theme import empty_figure


def tricks_curves(records: Sequence[Mapping], height: int = 480) -> go.Figure:
    """Side-by-side curves of the trick trainings: loss (log axis) on top, accuracy below, one column each.

    Args:
        records: epoch records ``{"trick", "epoch", "train_loss", "val_loss", "train_accuracy",
            "val_accuracy"}`` in time order (a job's live metrics, or built from finished TrickCurves).

    Returns:
        2 × (number of tricks) panels; train solid, validation dashed. A gap between them is overfitting; a
        loss that leaves the chart (NaN) diverged.
    """
    names = list(dict.fromkeys(r["trick"] for r in records if "trick" in r))
    if not names:
        return empty_figure("waiting for the first epoch…")
    fig = make_subplots(rows=2, cols=len(names), subplot_titles=names, shared_yaxes=True, vertical_spacing=0.1,
                        horizontal_spacing=0.02)
    for c, name in enumerate(names, start=1):
        rs = [r for r in records if r.get("trick") == name]
        ep = [r["epoch"] for r in rs]
        for key, colour, dash, label in (("train", _PALETTE[0], None, "train"),
                                         ("val", _PALETTE[1], "dash", "validation")):
            fig.add_trace(go.Scatter(x=ep, y=_finite(r.get(f"{key}_loss") for r in rs), mode="lines",
                                     line=dict(color=colour, dash=dash), name=label, legendgroup=label,
                                     showlegend=c == 1), row=1, col=c)
            fig.add_trace(go.Scatter(x=ep, y=_finite(r.get(f"{key}_accuracy") for r in rs), mode="lines",
                                     line=dict(color=colour, dash=dash), name=label, legendgroup=label,
                                     showlegend=False), row=2, col=c)
    fig.update_yaxes(type="log", exponentformat="power", row=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=2)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="accuracy", row=2, col=1)
    fig.update_xaxes(title_text="epoch", row=2)
    fig.update_annotations(font_size=12)
    return fig.update_layout(height=height, legend=dict(orientation="h", y=-0.15), **_LAYOUT)
