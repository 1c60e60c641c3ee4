"""Classroom 8: undercomplete and denoising autoencoders; the bottleneck decides what survives."""

import functools

import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import autoencoder
from nnkit.jobs import JobStatus
from nnkit.jobs.classroom_tasks import autoencoder_task, mnist_on_disk
from nnkit.plots.classroom import autoencoder as autoencoder_plots

ui.page_header("Autoencoders",
               "Squeeze every image through a few numbers and rebuild it: what fits through the bottleneck is what "
               "the network learnt; trained on noisy inputs, it learns to remove the noise.")

st.markdown("An **undercomplete** autoencoder (Hinton & Salakhutdinov 2006) maps each image to $k$ numbers and back; "
            "the smaller $k$, the blurrier the reconstruction. A **denoising** autoencoder (Vincent et al. 2008) "
            "sees the image with Gaussian noise of standard deviation σ and is trained to output the clean one.")
st.markdown("The default network is **convolutional** (Masci et al. 2011): two strided convolutions shrink a 32×32 "
            "image to an 8×8 grid, transposed convolutions grow it back. With $k$ = 256 the code is 4 numbers per "
            "grid cell, so it keeps *where* the shape is. Smaller $k$ (and any $k$ that does not fill at least 3 "
            "numbers per cell) goes through a linear layer, which must also encode the position: the shapes blur "
            "into blobs. The **MLP** option treats the image as a list of pixels; on `shapes` it learns little more "
            "than each image's background colour in the same number of steps.")

SLOT = "classroom-autoencoder"
DATA_OPTS = {"mnist": {"limit": 5000}, "fashion-mnist": {"limit": 5000}, "shapes": {"n_train": 2000, "n_test": 200}}
ARCH_LABELS = {"conv": "convolutional", "mlp": "MLP"}
with st.form("ae_form"):
    c = st.columns(4)
    data = c[0].selectbox("Data", list(DATA_OPTS), index=0 if mnist_on_disk() else 2, key="ae_data",
                          help="MNIST and Fashion-MNIST must be on disk (or downloadable); shapes is generated here.")
    arch = c[1].radio("Network", list(ARCH_LABELS), format_func=ARCH_LABELS.get, horizontal=True, key="ae_arch")
    mode = c[2].radio("Kind", ["undercomplete", "denoising"], horizontal=True, key="ae_mode")
    noise = c[3].slider("Training noise σ (denoising)", 0.05, 0.8, 0.4, 0.05, key="ae_noise")
    c = st.columns(3)
    bottleneck = c[0].select_slider("Bottleneck k", [2, 4, 8, 16, 32, 64, 128, 256, 512],
                                    autoencoder.DEFAULT_BOTTLENECK, key="ae_bottleneck")
    steps = c[1].number_input("Training steps", 20, 5000, autoencoder.DEFAULT_STEPS, 100, key="ae_steps")
    seed = c[2].number_input("Seed", 0, 2**31 - 1, 0, key="ae_seed")
    go = st.form_submit_button("Train", type="primary", icon=":material/play_arrow:", disabled=ui.has_active_job(SLOT))
if go:
    sigma = float(noise) if mode == "denoising" else 0.0
    with ui.guard():
        ui.submit_job(autoencoder_task, kind="classroom", slot=SLOT,
                      title=f"{mode.capitalize()} {ARCH_LABELS[arch]} autoencoder, k = {bottleneck}, on {data}",
                      data=data, data_opts=DATA_OPTS[data], bottleneck=int(bottleneck), noise=sigma, steps=int(steps),
                      arch=arch, seed=int(seed))
    st.rerun()

loss_curve = functools.partial(autoencoder_plots.metric_curves, keys=["loss"], log=True)
view = ui.job_panel(ui.current_job(SLOT), key="ae", figure=loss_curve, figure_when_done=False)
if view is None or view.status is not JobStatus.DONE or not view.result:
    if view is None:
        st.caption("Training runs in the background; the bar shows the measured steps per second and the time left, "
                   "and the loss appears as it learns.")
    st.stop()

res = view.result
kind = "denoising" if res["noise"] > 0 else "undercomplete"
st.subheader(f"Result: {kind} {ARCH_LABELS[res.get('arch', 'mlp')]} autoencoder, bottleneck k = {res['bottleneck']}, "
             f"{res['steps']} steps on {res['data']}")
if "seconds" in res:
    st.caption(f"Trained in {res['seconds']:.0f} s on this machine.")
levels = sorted(res["reconstructions"])
test_noise = st.select_slider("Noise σ added to the test images", levels, value=round(res["noise"], 2),
                              key=f"ae_test_noise_{view.id}")
rec = res["reconstructions"][test_noise]
m = st.columns(3)
m[0].metric("MSE of the noisy input", f"{rec.mse_noisy:.4f}")
m[1].metric("MSE of the reconstruction", f"{rec.mse_reconstructed:.4f}",
            f"{rec.mse_reconstructed - rec.mse_noisy:+.4f}", delta_color="inverse")
m[2].metric("Numbers per image", f"{res['bottleneck']} (of {rec.clean[0].size})")
rows = {"clean": rec.clean, f"input (σ = {test_noise})": rec.noisy, "reconstruction": rec.reconstructed}
fig = autoencoder_plots.image_rows(rows if test_noise > 0 else {"input": rec.clean, "reconstruction": rec.reconstructed})
st.plotly_chart(fig, key="ae_recon", config={"displayModeBar": False})
left, right = st.columns(2)
with left:
    curve = autoencoder_plots.metric_curves([{"step": s, "loss": v} for s, v in res["losses"]], ["loss"], log=True)
    st.plotly_chart(curve, key="ae_loss")
with right:
    if res["codes"] is not None:
        st.plotly_chart(autoencoder_plots.codes_scatter(res["codes"], res["code_labels"], res["class_names"]),
                        key="ae_codes")
        st.caption("With k = 2 every test image is a point: images of one class land near each other.")
    else:
        st.caption("Choose a bottleneck of 2 to see every test image as a point of its 2-number code.")
d = st.columns(4)
with d[0]:
    ui.download_json({"data": res["data"], "arch": res.get("arch", "mlp"), "bottleneck": res["bottleneck"], "noise": res["noise"],
                      "losses": res["losses"],
                      "test_mse": {str(s): {"noisy": r.mse_noisy, "reconstructed": r.mse_reconstructed}
                                   for s, r in res["reconstructions"].items()}},
                     f"autoencoder-k{res['bottleneck']}.json", key="ae_dl_json", label="Losses (JSON)")
with d[1]:
    ui.download_figure(fig, f"autoencoder-k{res['bottleneck']}-reconstructions.html", key="ae_dl_fig",
                       label="Reconstructions (HTML)")
