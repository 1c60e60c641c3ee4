"""Style transfer: repaint a content image in the texture of a style image (Gatys et al. 2016), live."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.jobs import get_manager
from nnkit.jobs.generative_tasks import (
    STYLE_CONTENT,
    STYLE_OUTPUT,
    STYLE_STYLE,
    default_style_size,
    image_label,
    read_image_source,
    style_expectation,
    style_task,
)
from nnkit.plots import generative as gplots
from nnkit.style import CONTENTS, DEFAULT_CONTENT, DEFAULT_STYLE, INITS, OPTIMIZERS, STYLES, WEIGHT_CHOICES, StyleConfig
from nnkit.style.transfer import MAX_SIZE, MIN_SIZE, loss_change

ui.page_header("Style transfer", "Optimise an image until a CNN sees the content of one picture and the texture of "
                                 "another: what a network calls \"style\" is its feature correlations.")

IMAGE_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]
WEIGHT_LABELS = {"auto": "auto: ImageNet or random", "imagenet": "ImageNet VGG-19 only",
                 "random": "random VGG-19 (offline)"}

defaults = StyleConfig()
# What to expect, from what was measured (style runs here, and the recorded default run with its machine).
with ui.guard(stop=False):
    st.caption(ui.md(style_expectation(int(st.session_state.get("style_size") or default_style_size()),
                                       int(st.session_state.get("style_steps") or defaults.steps))))
with st.form("style_form"):
    left, right = st.columns(2)
    content_name = left.selectbox("Content image", CONTENTS, index=CONTENTS.index(DEFAULT_CONTENT), key="style_content")
    content_file = left.file_uploader("…or upload your own content image", type=IMAGE_TYPES, key="style_content_upload")
    style_name = right.selectbox("Style image", STYLES, index=STYLES.index(DEFAULT_STYLE), key="style_style")
    style_file = right.file_uploader("…or upload your own style image", type=IMAGE_TYPES, key="style_style_upload")
    c = st.columns(4)
    content_weight = c[0].number_input("Content weight", 0.0, 1e6, defaults.content_weight, key="style_content_weight")
    style_weight = c[1].number_input("Style weight", 0.0, 1e8, defaults.style_weight, key="style_style_weight")
    tv_weight = c[2].number_input("Smoothness (TV) weight", 0.0, 1e6, defaults.tv_weight, key="style_tv_weight")
    steps = c[3].number_input("Steps", 1, 5000, defaults.steps, key="style_steps",
                              help="Loss evaluations (one forward and backward pass each).")
    c = st.columns(4)
    size = c[0].number_input("Size (longer side, pixels)", MIN_SIZE, MAX_SIZE, default_style_size(), step=16,
                                key="style_size")
    optimizer = c[1].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(defaults.optimizer),
                               key="style_optimizer", help="L-BFGS as in the paper, or Adam.")
    init = c[2].selectbox("Start from", INITS, index=INITS.index(defaults.init), key="style_init")
    weights = c[3].selectbox("Feature network", WEIGHT_CHOICES, index=WEIGHT_CHOICES.index(defaults.weights),
                             format_func=WEIGHT_LABELS.get, key="style_weights",
                             help="auto: the ImageNet VGG-19 if it is cached or can be downloaded, else a random "
                                  "VGG-19 (style only, no ImageNet features).")
    c = st.columns(4)
    seed = c[0].number_input("Seed (empty: random, recorded)", 0, 2**31 - 1, value=None, key="style_seed")
    run_name = c[1].text_input("Run name (optional)", key="style_name")
    submitted = st.form_submit_button("Stylise", type="primary", icon=":material/brush:",
                                      disabled=ui.has_active_job("style"))

if submitted:
    content = (content_file.name, content_file.getvalue()) if content_file is not None else content_name
    style = (style_file.name, style_file.getvalue()) if style_file is not None else style_name
    with ui.guard():
        config = StyleConfig(steps=int(steps), size=int(size), content_weight=float(content_weight),
                             style_weight=float(style_weight), tv_weight=float(tv_weight), optimizer=optimizer,
                             init=init, weights=weights, seed=None if seed is None else int(seed)).validate()
        for source in (content, style):
            read_image_source(source, 16)  # a non-image upload is a one-line error here, not a failed job
        ui.submit_job(style_task, kind="style", slot="style", title=f"Style transfer: {image_label(content)} in the "
                      f"style of {image_label(style)}", content=content, style=style, config=config,
                      name=run_name.strip() or None)
    st.rerun()


def _show_new_run(view) -> None:
    st.session_state["style_run_next"] = view.result["run_id"]


job_id = ui.current_job("style")
view = ui.job_panel(job_id, key="style", figure=gplots.style_curves, figure_when_done=False, on_done=_show_new_run)

if view is not None and view.active:
    @st.fragment(run_every=ui.POLL_SECONDS)
    def live_preview() -> None:
        """The newest preview image while the job runs (the job panel reruns the page at the end)."""
        with ui.guard(stop=False):
            previews = [m for m in get_manager().get(job_id, owner=ui.owner_id()).metrics if "preview_png" in m]
            if previews:
                st.image(previews[-1]["preview_png"], caption=f"after step {previews[-1]['step']}", width=320)
            else:
                st.caption("A preview appears after the first few steps.")

    live_preview()

runs = ui.store_runs("style")
if not runs:
    st.info("No style transfer yet: run one above. " + ui.estimate_note("style", "style", what="style transfer"),
            icon=":material/info:")
    st.stop()

st.subheader("Result")
ids = [r.run_id for r in runs]
pending = st.session_state.pop("style_run_next", None)
if pending in ids:
    st.session_state["style_run"] = pending
elif st.session_state.get("style_run") not in ids:
    st.session_state.pop("style_run", None)
labels = {r.run_id: " · ".join(ui.safe_text(p) for p in (r.name or r.run_id, r.meta.get("content"), r.meta.get("style"),
                                                 f"{r.meta.get('steps', '?')} steps")) for r in runs}
run_id = st.selectbox("Style run", ids, format_func=labels.get, key="style_run")
run = next(r for r in runs if r.run_id == run_id)
meta = run.meta

if meta.get("feature_network") == "vgg19-imagenet":
    st.info(f"Feature network: {meta.get('feature_network_description')}", icon=":material/hub:")
else:
    st.warning(f"Feature network: {meta.get('feature_network_description')}. A random network still measures "
               "texture, but the result is cruder than with ImageNet weights.", icon=":material/hub:")
cols = st.columns(3)
for col, filename, caption in ((cols[0], STYLE_CONTENT, f"content: {ui.md(meta.get('content'))}"),
                               (cols[1], STYLE_STYLE, f"style: {ui.md(meta.get('style'))}"),
                               (cols[2], STYLE_OUTPUT, "output")):
    if (run.path / filename).is_file():
        col.image((run.path / filename).read_bytes(), caption=caption, width="stretch")
c = st.columns(4)
c[0].metric("Style loss", f"{meta.get('style_loss_end', 0):.4f}",
            help="Mean normalised Gram-matrix distance to the style image over five VGG layers: it "
                 + loss_change(meta.get("style_loss_start", 0), meta.get("style_loss_end", 0)) + ".")
c[1].metric("Content loss", f"{meta.get('content_loss_end', 0):.4f}",
            help="Normalised distance of the relu4_2 features to the content image's.")
c[2].metric("Steps", meta.get("steps", 0))
c[3].metric("Time", f"{meta.get('seconds', 0):.1f} s")
st.markdown(f"The style loss {loss_change(meta.get('style_loss_start', 0), meta.get('style_loss_end', 0))}.")
st.caption(f"Run `{run.run_id}` · {ui.md(meta.get('device', '?'))} · seed {meta.get('seed')} · Gram distance to the style: "
           f"output {meta.get('gram_distance_output_style', 0):.4f}, content image "
           f"{meta.get('gram_distance_content_style', 0):.4f}")
curves = gplots.style_curves(run.metrics())
st.plotly_chart(curves, key="style_result_curves")
d = st.columns(4)
output = run.path / STYLE_OUTPUT
if output.is_file():
    d[0].download_button("Output (PNG)", data=output.read_bytes(), file_name=f"{run.run_id}-output.png",
                         mime="image/png", key="style_dl_output", icon=":material/download:", on_click="ignore")
with d[1]:
    ui.download_json(meta, f"{run.run_id}-result.json", key="style_dl_json", label="Result (JSON)")
with d[2]:
    ui.download_figure(curves, f"{run.run_id}-losses.html", key="style_dl_curves", label="Losses (HTML)")
ui.download_run(run, key="style_dl_run")
