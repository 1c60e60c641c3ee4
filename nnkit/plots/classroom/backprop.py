"""Figures of the backpropagation demo (``nnkit.classroom.backprop``): one step written out in LaTeX with its
numbers, the network diagram and the error over the steps (Rumelhart, Hinton & Williams 1986).

Nothing here imports Streamlit.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from nnkit.plots.classroom._common import _LAYOUT, _PALETTE, _finite


def _tex_unit(name: str) -> str:
    """x1 → x_{1}, h1_2 → h_{1,2}: unit names as LaTeX symbols."""
    m = re.fullmatch(r"([a-z]+)(.*)", name)
    return f"{m.group(1)}_{{{m.group(2).replace('_', ',')}}}" if m and m.group(2) else name


def _n(v: float) -> str:
    return f"{float(v):.6g}"


def _signed(v: float) -> str:
    return f"({_n(v)})" if v < 0 else _n(v)


def backprop_latex(step) -> dict[str, list[str]]:
    """One backpropagation step written out with its numbers, for ``st.latex`` (first pattern).

    Args:
        step: ``nnkit.classroom.backprop.BackpropStep``.

    Returns:
        ``{"delta": [...], "gradient": [...], "update": [...]}``: one LaTeX line per output delta
        δ = -(y - o)·o(1 - o), per hidden delta δ = h(1 - h)·Σ w·δ, per weight gradient δ·a and per
        update w - α·∂E/∂w (Rumelhart, Hinton & Williams 1986).
    """
    names, p = step.names, 0
    acts = step.activations
    last = len(step.deltas) - 1
    out: dict[str, list[str]] = {"delta": [], "gradient": [], "update": []}
    for layer in range(last, -1, -1):
        for j, unit in enumerate(names[layer + 1]):
            u, a, d = _tex_unit(unit), float(acts[layer + 1][p, j]), float(step.deltas[layer][p, j])
            if layer == last:
                t = float(step.y[p, j])
                out["delta"].append(
                    rf"\delta_{{{unit}}} = -(y_{{{unit}}} - {u})\,{u}(1 - {u}) = -({_n(t)} - {_n(a)})"
                    rf"\cdot {_n(a)}\cdot(1 - {_n(a)}) = {_n(d)}")
            else:
                nxt = names[layer + 2]
                sym = " + ".join(rf"w_{{{unit}\to {k}}}\delta_{{{k}}}" for k in nxt)
                num = " + ".join(f"{_signed(step.before.weights[layer + 1][k, j])}\\cdot"
                                 f"{_signed(step.deltas[layer + 1][p, k])}" for k in range(len(nxt)))
                out["delta"].append(rf"\begin{{aligned}}\delta_{{{unit}}} &= {u}(1 - {u})\,({sym}) \\ "
                                    rf"&= {_n(a)}\cdot(1 - {_n(a)})\cdot({num}) = {_n(d)}\end{{aligned}}")
    for layer in range(last, -1, -1):
        for j, unit in enumerate(names[layer + 1]):
            d = float(step.deltas[layer][p, j])
            for i, src in enumerate(names[layer]):
                g = float(step.grad_weights[layer][j, i])
                w0, w1 = float(step.before.weights[layer][j, i]), float(step.after.weights[layer][j, i])
                a = float(acts[layer][p, i])
                out["gradient"].append(rf"\frac{{\partial E}}{{\partial w_{{{src}\to {unit}}}}} = "
                                       rf"\delta_{{{unit}}}\,{_tex_unit(src)} = {_n(d)}\cdot{_signed(a)} = {_n(g)}")
                out["update"].append(rf"w_{{{src}\to {unit}}} \leftarrow {_n(w0)} - {step.lr:g}\cdot{_signed(g)}"
                                     rf" = {_n(w1)}")
            gb, b0, b1 = float(step.grad_biases[layer][j]), float(step.before.biases[layer][j]), float(
                step.after.biases[layer][j])
            out["gradient"].append(rf"\frac{{\partial E}}{{\partial b_{{{unit}}}}} = \delta_{{{unit}}} = {_n(gb)}")
            out["update"].append(rf"b_{{{unit}}} \leftarrow {_n(b0)} - {step.lr:g}\cdot{_signed(gb)} = {_n(b1)}"
                                 if b0 != b1 or gb == 0 else rf"b_{{{unit}}} = {_n(b0)}\ \text{{(kept fixed)}}")
    return out


def network_diagram(step, height: int = 380) -> go.Figure:
    """The network of a backpropagation step: units with their activations and deltas, edges with weights.

    Args:
        step: ``nnkit.classroom.backprop.BackpropStep`` (first pattern's values are shown).

    Returns:
        Layers left to right; edge colour is the weight's sign, width its size; hovering an edge shows
        the weight before and after the step.
    """
    names = step.names
    pos = {}
    for layer, units in enumerate(names):
        for j, unit in enumerate(units):
            pos[unit] = (layer, (len(units) - 1) / 2 - j)
    fig = go.Figure()
    biggest = max(float(np.abs(w).max()) for w in step.before.weights) or 1.0
    for layer, w in enumerate(step.before.weights):
        for j, dst in enumerate(names[layer + 1]):
            for i, src in enumerate(names[layer]):
                (x0, y0), (x1, y1) = pos[src], pos[dst]
                v = float(w[j, i])
                fig.add_trace(go.Scatter(
                    x=[x0, x1], y=[y0, y1], mode="lines", showlegend=False,
                    line=dict(color=_PALETTE[0] if v >= 0 else _PALETTE[1], width=1 + 5 * abs(v) / biggest),
                    hovertext=f"w({src}→{dst}) = {v:.6g} → {float(step.after.weights[layer][j, i]):.6g}",
                    hoverinfo="text"))
                # The weight's label sits a third of the way along its edge so labels of one unit do not collide.
                fig.add_annotation(x=x0 + (x1 - x0) / 3, y=y0 + (y1 - y0) / 3, text=f"{v:.3g}", showarrow=False,
                                   font=dict(size=11), bgcolor="rgba(255,255,255,0.8)")
    xs, ys, text = [], [], []
    for layer, units in enumerate(names):
        for j, unit in enumerate(units):
            xs.append(pos[unit][0])
            ys.append(pos[unit][1])
            value = f"{float(step.activations[layer][0, j]):.4g}"
            delta = f"<br>δ = {float(step.deltas[layer - 1][0, j]):.3g}" if layer else ""
            text.append(f"<b>{unit}</b><br>{value}{delta}")
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers+text", text=text, textposition="middle center",
                             marker=dict(size=70, color="white", line=dict(width=2, color="#444")),
                             hoverinfo="skip", showlegend=False, textfont=dict(size=11)))
    fig.update_xaxes(visible=False, range=[-0.4, len(names) - 0.6])
    top = max(len(u) for u in names) / 2
    fig.update_yaxes(visible=False, range=[-top, top])
    return fig.update_layout(height=height, **_LAYOUT)


def error_over_steps(errors: Sequence[float], height: int = 260) -> go.Figure:
    """E before each of the successive backpropagation steps."""
    fig = go.Figure(go.Scatter(x=list(range(1, len(errors) + 1)), y=_finite(errors), mode="lines+markers",
                               line=dict(color=_PALETTE[0])))
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(title_text="E (before the step)", rangemode="tozero")
    return fig.update_layout(height=height, **_LAYOUT)
