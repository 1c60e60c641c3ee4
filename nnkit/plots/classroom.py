"""Plotly figure builders for the Classroom pages: arrays (or the classroom's dataclasses) in, figure out.

Each builder draws one demo of ``nnkit.classroom``; the animated ones (perceptron line, XOR surface, GAN
game) carry every stored snapshot as a plotly frame with a step slider and a play button, so stepping
through a training happens in the browser without re-running anything. Nothing here imports Streamlit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.data import image_grid

_LAYOUT = dict(margin=dict(l=10, r=10, t=50, b=10), template="plotly_white")
_CLASS_COLOURS = ("#EF553B", "#636EFA")  # label 0, label 1 (plotly's default red and blue)
_PALETTE = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880")


def _finite(values) -> list[float | None]:
    """Floats with NaN/inf as None, so plotly leaves a gap instead of failing or squashing the axis."""
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def _rgb(image: np.ndarray) -> np.ndarray:
    """H×W or H×W×C floats in [0, 1] → H×W×3 uint8 (what ``go.Image`` shows pixel for pixel)."""
    a = np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return (a * 255).round().astype(np.uint8)


def _play_controls(steps: Sequence, label: str, duration: int = 150, y: float = -0.12) -> dict:
    """Layout entries for a play/pause button and a step slider over frames named ``str(step)``."""
    slider = dict(active=0, currentvalue=dict(prefix=f"{label} "), pad=dict(t=40), x=0.12, len=0.88, y=y,
                  steps=[dict(label=str(s), method="animate",
                              args=[[str(s)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                   transition=dict(duration=0))]) for s in steps])
    play = dict(type="buttons", showactive=False, x=0.0, y=y, xanchor="left", yanchor="top", pad=dict(t=58, r=10),
                direction="left",
                buttons=[dict(label="▶", method="animate",
                              args=[None, dict(frame=dict(duration=duration, redraw=True), fromcurrent=True,
                                               transition=dict(duration=0))]),
                         dict(label="❚❚", method="animate",
                              args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                 transition=dict(duration=0))])])
    return dict(sliders=[slider], updatemenus=[play])


# -- 1. McCulloch-Pitts neuron ------------------------------------------------------------------
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


# -- 2. perceptron and the XOR network ----------------------------------------------------------
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


# -- 3. backpropagation -------------------------------------------------------------------------
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


# -- 4. activations and vanishing gradients -----------------------------------------------------
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


# -- 5. convolution and pooling -----------------------------------------------------------------
def _labels(a: np.ndarray) -> list[list[str]]:
    """Cell labels as a textbook writes numbers: 5, -2, 0.111 (no trailing zeros)."""
    return [[f"{float(v):.3g}" for v in row] for row in np.asarray(a)]


def _box(fig: go.Figure, top: int, left: int, size: int, row: int, col: int, colour: str = "#EF553B") -> None:
    fig.add_shape(type="rect", x0=left - 0.5, x1=left + size - 0.5, y0=top - 0.5, y1=top + size - 0.5,
                  line=dict(color=colour, width=3), row=row, col=col)


def convolution_figure(result, window, height: int = 420) -> go.Figure:
    """The padded input with the kernel's window, the kernel, and the output with the window's pixel.

    Args:
        result: ``nnkit.classroom.convolution.ConvResult``.
        window: the ``Window`` to highlight (from ``conv_windows``), or None.

    Returns:
        Three heatmaps side by side (rows top-down, like the image).
    """
    k = result.kernel.shape[0]
    fig = make_subplots(rows=1, cols=3, column_widths=[0.42, 0.16, 0.42], horizontal_spacing=0.05,
                        subplot_titles=(f"input, zero padding {result.padding}", "kernel",
                                        f"output {result.output.shape[0]}×{result.output.shape[1]}"))
    fig.add_trace(go.Heatmap(z=result.padded, colorscale="Greys", reversescale=True, showscale=False,
                             hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=result.kernel, colorscale="RdBu", zmid=0, showscale=False, text=_labels(result.kernel),
                             texttemplate="%{text}", hovertemplate="%{z:.3g}<extra></extra>"), row=1, col=2)
    fig.add_trace(go.Heatmap(z=result.output, colorscale="RdBu", zmid=0, colorbar=dict(len=0.8),
                             hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>"), row=1, col=3)
    if result.padding:
        n = result.padded.shape[0]
        _box(fig, result.padding, result.padding, n - 2 * result.padding, 1, 1, colour="#636EFA")
    if window is not None:
        _box(fig, window.top, window.left, k, 1, 1)
        _box(fig, window.row, window.col, 1, 1, 3)
    for c in (1, 2, 3):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if c == 1 else c}", constrain="domain",
                         showgrid=False, row=1, col=c)
        fig.update_xaxes(showgrid=False, constrain="domain", row=1, col=c)
    return fig.update_layout(height=height, **_LAYOUT)


def pooling_figure(grid: np.ndarray, result, height: int = 340) -> go.Figure:
    """Max pooling: the input with each window outlined and its maximum ringed, and the pooled output.

    Args:
        grid: the H×W input; result: ``nnkit.classroom.convolution.PoolResult``.
    """
    grid = np.asarray(grid, dtype=np.float64)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.6, 0.4], horizontal_spacing=0.08,
                        subplot_titles=(f"input {grid.shape[0]}×{grid.shape[1]}",
                                        f"{result.size}×{result.size} max pool, stride {result.stride}"))
    fig.add_trace(go.Heatmap(z=grid, text=_labels(grid), texttemplate="%{text}", colorscale="Blues", showscale=False,
                             hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Heatmap(z=result.output, text=_labels(result.output), texttemplate="%{text}", colorscale="Blues",
                             showscale=False, hoverinfo="skip"), row=1, col=2)
    n, m = result.output.shape
    for r in range(n):
        for c in range(m):
            colour = _PALETTE[(r * m + c) % len(_PALETTE)]
            _box(fig, r * result.stride, c * result.stride, result.size, 1, 1, colour=colour)
            ar, ac = result.argmax[r, c]
            fig.add_shape(type="circle", x0=ac - 0.35, x1=ac + 0.35, y0=ar - 0.35, y1=ar + 0.35,
                          line=dict(color=colour, width=3), row=1, col=1)
            _box(fig, r, c, 1, 1, 2, colour=colour)
    for c in (1, 2):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if c == 1 else c}", constrain="domain",
                         showgrid=False, showticklabels=False, row=1, col=c)
        fig.update_xaxes(showgrid=False, showticklabels=False, constrain="domain", row=1, col=c)
    return fig.update_layout(height=height, **_LAYOUT)


def _tile(maps: np.ndarray, cell: int, pad: int) -> np.ndarray:
    """C×h×w maps, each scaled to [0, 1] on its own, enlarged by pixel repetition to ``cell`` and put side by side."""
    tiles = []
    for m in maps:
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        rep = max(1, cell // max(m.shape))
        m = np.kron(m, np.ones((rep, rep)))[:cell, :cell]
        tile = np.ones((cell + pad, cell + pad))
        tile[:m.shape[0], :m.shape[1]] = m
        tiles.append(tile)
    return np.concatenate(tiles, axis=1)


def feature_maps_figure(image: np.ndarray, maps: Sequence, cell: int = 32) -> go.Figure:
    """Feature maps of a CNN layer by layer: the input on top, then one row per layer, a tile per channel.

    Args:
        image: the input, H×W or H×W×C in [0, 1].
        maps: ``nnkit.classroom.convolution.FeatureMap`` list (``feature_maps``).
        cell: pixels per tile (small maps are enlarged without smoothing); each tile is scaled to its own
            range, so a dim channel is still visible.

    Returns:
        A grey image with a label per row (stage · layer · channels shown/total).
    """
    pad = 2
    cell = max(cell, *(max(fm.maps.shape[1:]) for fm in maps), *np.shape(image)[:2])
    rows = [_tile(fm.maps, cell, pad) for fm in maps]
    width = max(r.shape[1] for r in rows)
    img = _rgb(image)
    rep = max(1, cell // max(img.shape[:2]))
    top = np.full((cell + pad, width, 3), 255, np.uint8)
    big = np.kron(img, np.ones((rep, rep, 1), np.uint8))[:cell, :cell]
    top[:big.shape[0], :big.shape[1]] = big
    body = [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=1.0) for r in rows]
    grey = (np.concatenate(body, axis=0) * 255).astype(np.uint8)
    grid = np.concatenate([top, np.repeat(grey[..., None], 3, axis=2)], axis=0)
    labels = ["input"] + [f"stage {fm.stage} · {fm.layer} · {fm.maps.shape[0]}/{fm.channels} ch" for fm in maps]
    centres = [(i + 0.5) * (cell + pad) for i in range(len(labels))]
    scale = max(1, min(900 // max(grid.shape[1], 1), 1100 // max(grid.shape[0], 1)))
    grid = np.kron(grid, np.ones((scale, scale, 1), np.uint8))
    return image_grid(grid, labels, [c * scale for c in centres])


# -- 6. training tricks -------------------------------------------------------------------------
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
        fig = go.Figure()
        fig.add_annotation(text="waiting for the first epoch…", showarrow=False, x=0.5, y=0.5, xref="paper",
                           yref="paper", font=dict(size=14, color="grey"))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return fig.update_layout(height=300, **_LAYOUT)
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


# -- 7. residual networks -----------------------------------------------------------------------
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


# -- 8. autoencoders ----------------------------------------------------------------------------
def metric_curves(records: Sequence[Mapping], keys: Sequence[str], x: str = "step", log: bool = False,
                  height: int = 300) -> go.Figure:
    """One line per key over ``x`` from a list of records (a job's live metrics); missing keys are skipped."""
    fig = go.Figure()
    for i, key in enumerate(keys):
        pts = [(r[x], r[key]) for r in records if key in r and x in r]
        if pts:
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=_finite(p[1] for p in pts), mode="lines+markers",
                                     name=key.replace("_", " "), line=dict(color=_PALETTE[i % len(_PALETTE)])))
    if not fig.data:
        fig.add_annotation(text="waiting for the first steps…", showarrow=False, x=0.5, y=0.5, xref="paper",
                           yref="paper", font=dict(size=14, color="grey"))
    fig.update_xaxes(title_text=x)
    if log:
        fig.update_yaxes(type="log", exponentformat="power")
    return fig.update_layout(height=height, legend=dict(orientation="h", y=-0.25), **_LAYOUT)


def image_rows(rows: Mapping[str, np.ndarray], scale: int | None = None, pad: int = 2) -> go.Figure:
    """Rows of images with a label each (e.g. clean / noisy / reconstructed), pixels not smoothed.

    Args:
        rows: ``{label: N×H×W or N×H×W×C array in [0, 1]}``, the same N, H, W in every row.
        scale: pixel repetition (default: about 64 pixels per image).
    """
    arrays = [np.asarray(a) for a in rows.values()]
    h, w = arrays[0].shape[1:3]
    scale = scale or max(1, 64 // max(h, w))
    cells = []
    for a in arrays:
        row = []
        for img in a:
            tile = np.full((h + pad, w + pad, 3), 255, np.uint8)
            tile[:h, :w] = _rgb(img)
            row.append(tile)
        cells.append(np.concatenate(row, axis=1))
    grid = np.kron(np.concatenate(cells, axis=0), np.ones((scale, scale, 1), np.uint8))
    centres = [(i + 0.5) * (h + pad) * scale for i in range(len(arrays))]
    return image_grid(grid, list(rows), centres)


def codes_scatter(codes: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
                  height: int = 420) -> go.Figure:
    """A 2-number bottleneck: each test image's code as a point, coloured by its class."""
    codes, labels = np.asarray(codes), np.asarray(labels)
    fig = go.Figure()
    for k, name in enumerate(class_names):
        pts = codes[labels == k]
        if len(pts):
            fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="markers", name=str(name),
                                     marker=dict(size=6, color=_PALETTE[k % len(_PALETTE)] if k < 8 else None)))
    fig.update_xaxes(title_text="code 1")
    fig.update_yaxes(title_text="code 2")
    return fig.update_layout(height=height, **_LAYOUT)


# -- 9. GAN minimax -----------------------------------------------------------------------------
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
        return metric_curves([], ["d_loss"])
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


# -- 10. brittleness and confounding ------------------------------------------------------------
def one_pixel_figure(flip, class_names: Sequence[str], height: int = 360) -> go.Figure:
    """The image before and after the one-pixel change (the pixel ringed) and both class probability bars.

    Args:
        flip: ``nnkit.classroom.brittleness.PixelFlip``.
        class_names: the model's classes.
    """
    names = [str(c) for c in class_names]
    before, after = names[flip.prediction_before], names[flip.prediction_after]
    fig = make_subplots(rows=1, cols=3, column_widths=[0.28, 0.28, 0.44], horizontal_spacing=0.06,
                        subplot_titles=(f"original: {before}", f"one pixel changed: {after}", "class probabilities"))
    fig.add_trace(go.Image(z=_rgb(flip.image), hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Image(z=_rgb(flip.flipped), hoverinfo="skip"), row=1, col=2)
    fig.add_shape(type="circle", x0=flip.col - 2, x1=flip.col + 2, y0=flip.row - 2, y1=flip.row + 2,
                  line=dict(color="#EF553B", width=3), row=1, col=2)
    fig.add_trace(go.Bar(x=names, y=flip.probabilities_before, name="before", marker_color=_PALETTE[0]), row=1, col=3)
    fig.add_trace(go.Bar(x=names, y=flip.probabilities_after, name="after", marker_color=_PALETTE[1]), row=1, col=3)
    for c in (1, 2):
        fig.update_xaxes(visible=False, row=1, col=c)
        fig.update_yaxes(visible=False, row=1, col=c)
    fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=3)
    fig.update_xaxes(tickangle=-45, row=1, col=3)
    return fig.update_layout(height=height, barmode="group", legend=dict(orientation="h", y=-0.3), **_LAYOUT)


def tag_accuracy_figure(report, height: int = 320) -> go.Figure:
    """Accuracy with the tag agreeing, absent and moved (``TagMovedReport``), chance marked."""
    keys = list(report.accuracy)
    fig = go.Figure(go.Bar(x=keys, y=[report.accuracy[k] for k in keys], marker_color=_PALETTE[0],
                           text=[f"{report.accuracy[k]:.0%}" for k in keys], textposition="outside"))
    fig.add_hline(y=report.chance, line_dash="dash", annotation_text=f"chance {report.chance:.0%}")
    fig.update_yaxes(range=[0, 1.1], tickformat=".0%", title_text="accuracy")
    return fig.update_layout(height=height, **_LAYOUT)


def tag_examples_figure(report, height_per_row: int = 190) -> go.Figure:
    """Each example with its own tag and with a moved tag, each beside its saliency map.

    Args:
        report: ``nnkit.classroom.brittleness.TagMovedReport`` with examples.

    Returns:
        One row per example: image (own tag), saliency, image (moved tag), saliency; titles give the
        predictions and the share of saliency inside the tag's box.
    """
    names = report.class_names
    exs = report.examples
    titles = []
    for e in exs:
        titles += [f"{names[e.label]} with its tag → {names[e.prediction_tagged]}",
                   f"saliency: {e.tag_share_tagged:.0%} on the tag",
                   f"tag of {names[e.tag_class]} → {names[e.prediction_moved]}",
                   f"saliency: {e.tag_share_moved:.0%} on the tag"]
    fig = make_subplots(rows=len(exs), cols=4, subplot_titles=titles, horizontal_spacing=0.03,
                        vertical_spacing=0.25 / max(len(exs), 1))
    for r, e in enumerate(exs, start=1):
        fig.add_trace(go.Image(z=_rgb(e.image_tagged), hoverinfo="skip"), row=r, col=1)
        fig.add_trace(go.Heatmap(z=e.saliency_tagged, colorscale="Hot", showscale=False, hoverinfo="skip"),
                      row=r, col=2)
        fig.add_trace(go.Image(z=_rgb(e.image_moved), hoverinfo="skip"), row=r, col=3)
        fig.add_trace(go.Heatmap(z=e.saliency_moved, colorscale="Hot", showscale=False, hoverinfo="skip"),
                      row=r, col=4)
        for c in (2, 4):
            fig.update_yaxes(autorange="reversed", row=r, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    return fig.update_layout(height=60 + height_per_row * len(exs), **_LAYOUT)
