"""Classroom 4: activation functions and their derivatives; why deep sigmoid nets stop learning at the bottom."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import activations
from nnkit.plots.classroom import activations as activations_plots

ui.page_header("Activation functions",
               "The derivative decides how much gradient a layer passes back: σ' ≤ 1/4 makes deep sigmoid "
               "nets forget their first layers.")


@st.cache_data(max_entries=32, show_spinner=False)
def _norms(setups: tuple, depth: int, width: int, seeds: int) -> list:
    # 0.1-0.4 s on one core; cached so the figure follows the depth slider back and forth instantly.
    return activations.vanishing_gradients(setups, depth=depth, width=width, seeds=seeds)


st.subheader("Functions and derivatives")
c = st.columns([3, 1])
names = c[0].multiselect("Activations", list(activations.ACTIVATIONS), default=list(activations.ACTIVATIONS),
                         key="act_names")
zmax = c[1].slider("z range ±", 1.0, 10.0, 5.0, 0.5, key="act_range")
if not names:
    st.info("Pick at least one activation.", icon=":material/info:")
    st.stop()
with ui.guard():
    curves = activations.activation_curves(names, z=[zmax * (i / 200 - 1) for i in range(401)])
fig = activations_plots.activation_curves(curves)
st.plotly_chart(fig, key="act_curves", config={"displaylogo": False})
st.dataframe([{"activation": cv.name, "f(z)": cv.formula, "f'(z)": cv.derivative_formula,
               "largest f' on the range": round(float(cv.derivative.max()), 4)} for cv in curves],
             hide_index=True, width="stretch")
d = st.columns(4)
with d[0]:
    ui.download_figure(fig, "activations.html", key="act_dl_fig")
with d[1]:
    ui.download_json({cv.name: {"z": cv.z.tolist(), "f": cv.value.tolist(), "df": cv.derivative.tolist()}
                      for cv in curves}, "activations.json", key="act_dl_json", label="Curves (JSON)")

st.divider()
st.subheader("Vanishing gradients")
st.markdown("The gradient norm $\\lVert \\partial L / \\partial W_l \\rVert$ of every layer of a freshly initialised "
            "deep fully connected net, for one batch (log axis). Backpropagation multiplies by $f'$ once per "
            "layer: with sigmoid units the first layers get orders of magnitude less than the last; ReLU (with He "
            "initialisation) and batch normalisation keep the layers level.")
c = st.columns([2, 2, 1, 1])
setups = c[0].multiselect("Networks", list(activations.VANISHING_SETUPS),
                          default=["sigmoid", "relu", "sigmoid + batch norm"], key="vanish_setups")
depth = c[1].slider("Depth (layers)", 3, 50, 20, key="vanish_depth")
width = c[2].select_slider("Width", [16, 32, 64, 128], 64, key="vanish_width")
seeds = c[3].number_input("Seeds", 1, 5, 3, key="vanish_seeds")
if not setups:
    st.info("Pick at least one network.", icon=":material/info:")
    st.stop()
with ui.guard():
    norms = _norms(tuple(setups), int(depth), int(width), int(seeds))
gfig = activations_plots.gradient_norms(norms)
st.plotly_chart(gfig, key="vanish_fig", config={"displaylogo": False})
cols = st.columns(len(norms))
for col, n in zip(cols, norms):
    col.metric(n.label, f"{n.norms[-1] / n.norms[0]:.2g}×", help="last layer's gradient norm / first layer's")
st.caption("Each number: how many times larger the last layer's gradient is than the first layer's.")
d = st.columns(4)
with d[0]:
    ui.download_figure(gfig, f"vanishing-gradients-depth{depth}.html", key="vanish_dl_fig")
with d[1]:
    ui.download_json({n.label: {"layer": n.layers.tolist(), "gradient_norm": n.norms.tolist()} for n in norms},
                     f"vanishing-gradients-depth{depth}.json", key="vanish_dl_json", label="Norms (JSON)")
