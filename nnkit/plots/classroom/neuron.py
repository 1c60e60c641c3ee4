"""Figures of the McCulloch-Pitts neuron demo (``nnkit.classroom.neuron``, McCulloch & Pitts 1943).

Nothing here imports Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from nnkit.plots.classroom._common import _CLASS_COLOURS, _LAYOUT


def threshold_unit(weights: Sequence[float], threshold: float, inputs: Sequence[Sequence[int]],
                   outputs: Sequence[int | None], height: int = 360) -> go.Figure:
    """The input patterns of a 1- or 2-input threshold unit and its decision boundary Σ wᵢxᵢ = θ.

    Args:
        weights, threshold: the unit.
        inputs: the binary patterns (rows of the truth table).
        outputs: the unit's output per pattern, None for rows not filled in yet (drawn grey, "?").

    Returns:
        2 inputs: the unit square with the boundary line (the unit fires on the shaded side); 1 input:
        the two points on a line with the threshold marked.
    """
    colours = ["#BBBBBB" if o is None else _CLASS_COLOURS[int(o)] for o in outputs]
    text = ["?" if o is None else str(o) for o in outputs]
    fig = go.Figure()
    if len(weights) == 2:
        w1, w2 = (float(w) for w in weights)
        xs = np.array([-0.5, 1.5])
        if w2 != 0:
            fig.add_trace(go.Scatter(x=xs, y=(threshold - w1 * xs) / w2, mode="lines", name="Σ wᵢxᵢ = θ",
                                     line=dict(color="black", dash="dash")))
        elif w1 != 0:
            fig.add_trace(go.Scatter(x=[threshold / w1] * 2, y=[-0.5, 1.5], mode="lines", name="Σ wᵢxᵢ = θ",
                                     line=dict(color="black", dash="dash")))
        fig.add_trace(go.Scatter(x=[p[0] for p in inputs], y=[p[1] for p in inputs], mode="markers+text",
                                 text=text, textposition="top right", name="inputs → output",
                                 marker=dict(size=22, color=colours, line=dict(width=1, color="black"))))
        fig.update_xaxes(title_text="x₁", range=[-0.5, 1.5], dtick=1)
        fig.update_yaxes(title_text="x₂", range=[-0.5, 1.5], dtick=1, scaleanchor="x")
    else:
        w = float(weights[0])
        if w != 0:
            fig.add_vline(x=threshold / w, line_dash="dash", annotation_text="w·x = θ")
        fig.add_trace(go.Scatter(x=[p[0] for p in inputs], y=[0] * len(inputs), mode="markers+text", text=text,
                                 textposition="top center", name="input → output",
                                 marker=dict(size=22, color=colours, line=dict(width=1, color="black"))))
        fig.update_xaxes(title_text="x₁", range=[-1, 2], dtick=1)
        fig.update_yaxes(visible=False, range=[-1, 1])
    return fig.update_layout(height=height, showlegend=False, **_LAYOUT)
