"""Classroom 7: skip connections keep the first layer's gradient alive as the network gets deeper (He et al. 2016)."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import residual
from nnkit.plots.classroom import residual as residual_plots

ui.page_header("Residual networks",
               "A residual block computes x + F(x): the identity path carries the gradient back to the first "
               "layer however deep the network is.")

st.markdown("Two networks with exactly the same layers, one computing $x \\leftarrow F(x)$ per block (plain), the "
            "other $x \\leftarrow x + F(x)$ (residual), so $\\partial H/\\partial x = \\partial F/\\partial x + I$. "
            "The chart shows the gradient norm reaching the **first** layer, $\\lVert \\partial L/\\partial W_1 "
            "\\rVert$, at initialisation, against depth (log axis).")


@st.cache_data(max_entries=32, show_spinner=False)
def _sweep(depths: tuple, activation: str, width: int, seeds: int):
    # About half a second for seven depths up to 50 on one core; cached for moving back and forth.
    return residual.depth_sweep(depths, activation=activation, width=width, seeds=seeds)


c = st.columns(4)
max_depth = c[0].slider("Deepest network", 5, 80, 50, 5, key="res_depth")
activation = c[1].selectbox("Units", ["sigmoid", "tanh", "relu"], key="res_act",
                            help="With ReLU and He initialisation the plain net keeps its gradient at these depths "
                                 "and the residual one grows.")
width = c[2].select_slider("Width", [16, 32, 64, 128], 64, key="res_width")
seeds = c[3].number_input("Seeds", 1, 5, 2, key="res_seeds")
depths = tuple(sorted({3, 5, *range(10, int(max_depth) + 1, 10), int(max_depth)}))
with ui.guard():
    sweep = _sweep(depths, activation, int(width), int(seeds))
fig = residual_plots.depth_sweep_figure(sweep)
st.plotly_chart(fig, key="res_fig", config={"displaylogo": False})
rows = [{"depth": int(d), "plain ‖∂L/∂W₁‖": f"{p:.3g}", "residual ‖∂L/∂W₁‖": f"{r:.3g}", "residual / plain": f"{q:.3g}"}
        for d, p, r, q in zip(sweep.depths, sweep.plain, sweep.residual, sweep.ratio)]
st.dataframe(rows, hide_index=True, width="stretch")
d = st.columns(4)
with d[0]:
    ui.download_figure(fig, f"residual-{activation}.html", key="res_dl_fig")
with d[1]:
    ui.download_json({"activation": activation, "width": int(width), "depths": sweep.depths.tolist(),
                      "plain": sweep.plain.tolist(), "residual": sweep.residual.tolist()},
                     f"residual-{activation}.json", key="res_dl_json", label="Norms (JSON)")
