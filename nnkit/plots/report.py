"""Plotly figure builders of the robustness report: per-class bars of clean accuracy and attack success.

Plain numbers in, a figure out; nothing is shown here and nothing imports Streamlit. The report's other
figures come from ``nnkit.plots.training``, ``nnkit.plots.attack`` and ``nnkit.plots.explain``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from nnkit.plots.theme import LAYOUT, TRAIN_COLOUR

PALETTE = ("#EF553B", "#FFA15A", "#AB63FA", "#00CC96", "#19D3F3", "#636EFA")


def per_class_bars(class_names: Sequence[str], accuracy: Sequence[float], overall: float | None = None,
                   height: int = 320) -> go.Figure:
    """Accuracy of each true class as bars, the overall accuracy as a dashed line.

    Args:
        class_names: the K class names.
        accuracy: K accuracies in [0, 1].
        overall: the accuracy over all images (None: no line).

    Returns:
        The bar chart.
    """
    fig = go.Figure(go.Bar(x=[str(c) for c in class_names], y=list(accuracy), marker_color=TRAIN_COLOUR,
                           name="accuracy", hovertemplate="%{x}: %{y:.1%}<extra></extra>"))
    if overall is not None:
        fig.add_hline(y=overall, line=dict(color="grey", dash="dash", width=1),
                      annotation_text=f"overall {overall:.1%}", annotation_position="bottom right")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="accuracy")
    fig.update_xaxes(tickangle=-45)
    return fig.update_layout(height=height, showlegend=False, **LAYOUT)


def per_class_success(series: Mapping[str, Sequence[Mapping]], height: int = 340) -> go.Figure:
    """Attack success rate per true class, one group of bars per class and one bar per attack setting.

    Args:
        series: ``{setting label (e.g. "k = 1"): AttackReport.to_dict()["per_class"]}``; each record holds
            ``class``, ``success_rate`` (None when no image of the class was attacked) and ``n_attacked``.

    Returns:
        Grouped bars (a class with no attacked image has no bar).
    """
    fig = go.Figure()
    for k, (label, records) in enumerate(series.items()):
        fig.add_trace(go.Bar(x=[r["class"] for r in records],
                             y=[r["success_rate"] for r in records], name=label,
                             marker_color=PALETTE[k % len(PALETTE)],
                             customdata=[r["n_attacked"] for r in records],
                             hovertemplate="%{x}: %{y:.0%} of %{customdata} attacked images<extra>" + label +
                             "</extra>"))
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="success rate")
    fig.update_xaxes(tickangle=-45)
    return fig.update_layout(barmode="group", height=height, **LAYOUT)
