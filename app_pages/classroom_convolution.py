"""Classroom 5: a kernel sliding over an image, padding and stride, max pooling, and a trained CNN's feature maps."""

import numpy as np
import pandas as pd
import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import convolution
from nnkit.jobs.classroom_tasks import feature_maps_task
from nnkit.plots.classroom import convolution as convolution_plots

ui.page_header("Convolution and pooling",
               "What a convolutional layer computes: one small kernel slid over the whole image, then pooling "
               "keeps the strongest responses.")


def _fmt(a) -> list:
    """A grid as nested lists, whole numbers without a trailing .0 (as a textbook writes them)."""
    return [[int(v) if float(v).is_integer() else round(float(v), 4) for v in row] for row in np.asarray(a)]


st.subheader("1. A kernel sliding over an image")
c = st.columns(5)
size = c[0].slider("Image side", 8, 28, 12, key="conv_size")
kernel_name = c[1].selectbox("Kernel", [*convolution.KERNELS, "custom"], index=1, key="conv_kernel")
stride = c[2].number_input("Stride s", 1, 4, 1, key="conv_stride")
padding = c[3].number_input("Zero padding p", 0, 3, 0, key="conv_padding")
if kernel_name == "custom":
    kernel_df = c[4].data_editor(pd.DataFrame(convolution.KERNELS["sobel_x"], columns=["0", "1", "2"]),
                                 hide_index=True, key="conv_custom")
    if kernel_df.isna().any().any():
        st.error("Every kernel entry needs a number.", icon=":material/error:")
        st.stop()
    kernel = kernel_df.to_numpy(float)
else:
    kernel = convolution.KERNELS[kernel_name]
    c[4].caption(f"`{kernel_name}`: " + ", ".join(str(r) for r in _fmt(kernel)))
with ui.guard():
    image = convolution.demo_image(int(size))
    result = convolution.convolve(image, kernel, int(stride), int(padding))
    windows = list(convolution.conv_windows(image, kernel, int(stride), int(padding)))
st.markdown(f"Output side $\\lfloor (n + 2p - k) / s \\rfloor + 1$ = **{result.formula}** (n = {size}, "
            f"k = {kernel.shape[0]}).")
rows_out, cols_out = result.output.shape
pos = st.slider("Kernel position (reading order)", 0, len(windows) - 1, (rows_out // 2) * cols_out + cols_out // 2,
                key="conv_pos")
win = windows[pos]
fig = convolution_plots.convolution_figure(result, win)
st.plotly_chart(fig, key="conv_fig", config={"displaylogo": False})
c = st.columns([2, 2, 1])
c[0].markdown("**Pixels under the kernel**")
c[0].dataframe(pd.DataFrame(win.patch).round(3) + 0.0, width="stretch")
c[1].markdown("**× kernel, element by element**")
c[1].dataframe(pd.DataFrame(win.products).round(3) + 0.0, width="stretch")
c[2].metric(f"output[{win.row}, {win.col}] = Σ", f"{win.value:.4g}")
d = st.columns(4)
with d[0]:
    ui.download_figure(fig, f"convolution-{kernel_name}.html", key="conv_dl_fig")
with d[1]:
    ui.download_json({"image": image.tolist(), "kernel": kernel.tolist(), "stride": int(stride),
                      "padding": int(padding), "output": result.output.tolist(), "formula": result.formula},
                     f"convolution-{kernel_name}.json", key="conv_dl_json", label="Numbers (JSON)")

st.divider()
st.subheader("2. Max pooling, 2×2, stride 2")
st.markdown("Each 2×2 window of the input gives its largest value: the output is half the size and keeps the "
            "strongest response of each region. Edit the grid.")
left, right = st.columns([2, 3])
with left:
    grid_df = st.data_editor(pd.DataFrame(convolution.POOL_EXAMPLE.astype(int), columns=["0", "1", "2", "3"]),
                             hide_index=True, num_rows="fixed", key="pool_grid")
if grid_df.isna().any().any():
    st.error("Every grid entry needs a number.", icon=":material/error:")
    st.stop()
grid = grid_df.to_numpy(float)
with ui.guard():
    pooled = convolution.max_pool(grid, 2, 2)
with left:
    st.markdown(f"Pooled: `{_fmt(pooled.output)}`")
with right:
    pool_fig = convolution_plots.pooling_figure(grid, pooled)
    st.plotly_chart(pool_fig, key="pool_fig", config={"displaylogo": False})
d = st.columns(4)
with d[0]:
    ui.download_json({"input": _fmt(grid), "size": 2, "stride": 2, "output": _fmt(pooled.output),
                      "argmax": pooled.argmax.tolist()}, "max-pool.json", key="pool_dl_json", label="Pooling (JSON)")
with d[1]:
    ui.download_figure(pool_fig, "max-pool.html", key="pool_dl_fig")

st.divider()
st.subheader("3. Feature maps of a trained CNN")
run = ui.active_run()
if run is None:
    st.info("No trained model yet: run **Quick start** on Home, then come back to see what its layers respond to.",
            icon=":material/info:")
    st.stop()
if run.meta.get("model", {}).get("name") != "cnn":
    st.info(f"The active model ({ui.md(ui.run_label(run))}) is not an nnkit cnn; choose a cnn run in the sidebar.",
            icon=":material/info:")
    st.stop()
st.markdown(f"Active model: **{ui.md(ui.run_label(run))}**. Every conv stage: convolution → (batch norm) → activation → "
            "pooling; each tile is one channel, scaled to its own range.")
slot = "classroom-feature-maps"
if st.button("Compute feature maps", icon=":material/layers:", key="fmaps_go", disabled=ui.has_active_job(slot)):
    with ui.guard():
        ui.submit_job(feature_maps_task, kind="classroom", title=f"Feature maps of {run.name or run.run_id}",
                      slot=slot, heavy=False, run_id=run.run_id)
    st.rerun()
view = ui.job_panel(ui.current_job(slot), key="fmaps")
if view is not None and view.status.value == "done" and view.result:
    res = view.result
    names = res["class_names"]
    i = st.select_slider("Test image", list(range(len(res["images"]))), key="fmaps_image",
                         format_func=lambda k: f"{k}: {names[res['labels'][k]]} (predicted "
                                               f"{names[res['predictions'][k]]})")
    fm_fig = convolution_plots.feature_maps_figure(res["images"][i], res["maps"][i])
    st.plotly_chart(fm_fig, key="fmaps_fig", config={"displayModeBar": False})
    ui.download_figure(fm_fig, f"feature-maps-{res['run_id']}-{i}.html", key="fmaps_dl_fig")
