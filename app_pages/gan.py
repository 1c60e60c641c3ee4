"""GAN: train a DCGAN in the background, watch its samples evolve, then sample, interpolate and score it."""

import io

import streamlit as st
from PIL import Image

from app_pages import _shared as ui
from nnkit.gan import GanConfig
from nnkit.gan.config import PAGE_TIME_LIMIT
from nnkit.gan.train import can_continue, stop_note
from nnkit.jobs import get_manager
from nnkit.jobs.generative_tasks import (
    calibrate_gan,
    default_gan_dataset,
    epoch_grids,
    gan_expectation,
    gan_grid,
    gan_report,
    gan_task,
    grids_zip,
)
from nnkit.plots import generative as gplots
from nnkit.runs import RunStore

ui.page_header("GAN", "Teach a generator to imitate a dataset by fooling a discriminator, then see what it learned: "
                      "samples, latent walks and quality per epoch.")


@st.cache_data(max_entries=32, show_spinner=False)
def _grid(run_id: str, what: str, n: int, steps: int, seed: int, spherical: bool) -> bytes:
    # A run never changes once complete, so its id and the drawing's arguments name the picture.
    return gan_grid(RunStore().get(run_id), what, n=n, steps=steps, seed=seed, spherical=spherical)


def _show(png: bytes, caption: str, target: int = 560) -> None:
    # Grids of 28-32 px images are small: show them up to `target` pixels wide, by a whole factor of at most 4.
    width, height = Image.open(io.BytesIO(png)).size
    st.image(png, caption=caption, width=width * max(1, min(4, target // max(width, height))))


def _png_button(label: str, data: bytes, file_name: str, key: str) -> None:
    st.download_button(label, data=data, file_name=file_name, mime="image/png", key=key,
                       icon=":material/download:", on_click="ignore")


if "gan_data" not in st.session_state:
    ui.select_dataset_next("gan_data", default_gan_dataset())
data_name = ui.dataset_select("gan_data")
judges = [r for r in ui.classifier_runs() if r.meta.get("dataset", {}).get("name") == data_name]
judge_labels = {None: "new (trained now)", **{r.run_id: ui.run_label(r) for r in judges}}


@st.cache_data(ttl=600, max_entries=8, show_spinner="Timing a few GAN steps on this machine…")
def _calibration(data: str) -> dict:
    # A few default steps, timed now; kept 10 minutes, so the page does not repeat them on every rerun.
    return calibrate_gan(GanConfig(data=data))


defaults = GanConfig()
# What to expect, measured on this machine (GAN runs here, else a calibration now), and the epochs the defaults
# needed in the recorded measurement (no promise written in advance).
with ui.guard(stop=False):
    measured_here = any(r.meta.get("dataset", {}).get("name") == data_name for r in ui.store_runs("gan"))
    st.caption(ui.md(gan_expectation(data_name, calibration=None if measured_here else _calibration(data_name))))
with st.form("gan_form"):
    c = st.columns(4)
    epochs = c[0].number_input("Epochs", 1, 1000, defaults.epochs, key="gan_epochs")
    time_limit = c[1].number_input("Time limit (seconds, 0: none)", 0, 36_000, PAGE_TIME_LIMIT, step=30,
                                   key="gan_time_limit",
                                   help="Counted from the start, the judge's training included. A run stopped "
                                        "by it can be continued from where it stopped.")
    max_steps = c[2].number_input("Max steps (0: no limit)", 0, 10_000_000, 0, key="gan_max_steps")
    seed = c[3].number_input("Seed (empty: random, recorded)", 0, 2**31 - 1, value=None, key="gan_seed")
    c = st.columns(4)
    conditional = c[0].checkbox("Class-conditional", defaults.conditional, key="gan_conditional",
                                help="Feed the class label to both networks (Mirza & Osindero 2014): you choose the "
                                     "class of each sample (the scored samples ask for every class in turn).")
    batch_size = c[1].selectbox("Batch size", [16, 32, 64, 128], index=1, key="gan_batch_size")
    judge = c[2].selectbox("Judge classifier", list(judge_labels), format_func=judge_labels.get, key="gan_judge",
                           help="A classifier of this dataset whose features score the samples (Fréchet distance, "
                                "inception score, class coverage). New: trained now, and reused next time.")
    judge_epochs = c[3].number_input("Judge epochs (0: auto)", 0, 100, defaults.judge_epochs or 0,
                                     key="gan_judge_epochs",
                                     help="Epochs of a judge trained now; auto: about 30,000 training images "
                                          "(3 epochs of shapes, 30 of the 1,000-image MNIST subset).")
    run_name = st.text_input("Run name (optional)", key="gan_name")
    with st.expander("Dataset options"):
        data_opts = ui.dataset_options(data_name, "gan_data_opt")
    submitted = st.form_submit_button("Train GAN", type="primary", icon=":material/play_arrow:",
                                      disabled=ui.has_active_job("gan"))

if submitted:
    with ui.guard():
        config = GanConfig(data=data_name, data_opts=data_opts, conditional=bool(conditional), epochs=int(epochs),
                           time_limit=float(time_limit) or None, max_steps=int(max_steps) or None,
                           batch_size=int(batch_size), judge=judge, judge_epochs=int(judge_epochs) or None,
                           seed=None if seed is None else int(seed), name=run_name.strip() or None).validate()
        kind = "conditional GAN" if conditional else "GAN"
        ui.submit_job(gan_task, kind="gan", title=f"Train a {kind} on {ui.dataset_label(data_name)}", slot="gan",
                      config=config)
    st.rerun()



def _show_new_run(view) -> None:
    st.session_state["gan_run_next"] = view.result["run_id"]


job_id = ui.current_job("gan")
view = ui.job_panel(job_id, key="gan", figure=gplots.gan_curves, figure_when_done=False, on_done=_show_new_run)

if view is not None and view.active:
    @st.fragment(run_every=ui.POLL_SECONDS)
    def live_samples() -> None:
        """The newest sample grid and the scores so far, while the job runs (the job panel reruns the page at the end)."""
        with ui.guard(stop=False):
            metrics = get_manager().get(job_id, owner=ui.owner_id()).metrics
            grids = [m for m in metrics if "grid_png" in m]
            scored = [m for m in metrics if "frechet_distance" in m]
            left, right = st.columns([2, 3])
            if grids:
                with left:
                    _show(grids[-1]["grid_png"], f"fixed-noise samples after epoch {grids[-1]['epoch']}", 360)
            else:
                left.caption("The sample grid appears after the first epoch.")
            # Rebuilt only when a new epoch was scored: a figure costs CPU the training on the same cores wants.
            cached = st.session_state.get("gan_live_quality")
            if cached is None or cached[:2] != (job_id, len(scored)):
                cached = st.session_state["gan_live_quality"] = (job_id, len(scored), gplots.gan_quality(scored))
            with right:
                st.plotly_chart(cached[2], key="gan_live_quality_chart")

    live_samples()

runs = ui.store_runs("gan")
if not runs:
    st.info("No GAN trained yet: train one above (or set a time limit). "
            + ui.estimate_note("gan", "gan", what="GAN training"), icon=":material/info:")
    st.stop()

st.subheader("Result")
ids = [r.run_id for r in runs]
pending = st.session_state.pop("gan_run_next", None)
if pending in ids:
    st.session_state["gan_run"] = pending
elif st.session_state.get("gan_run") not in ids:
    st.session_state.pop("gan_run", None)


def _label(run_id: str) -> str:
    meta = next(r for r in runs if r.run_id == run_id).meta
    parts = [meta.get("name") or run_id, meta.get("dataset", {}).get("name", "?"),
             "conditional" if meta.get("conditional") else "unconditional", f"{meta.get('epochs_run', '?')} epochs"]
    return " · ".join(ui.safe_text(p) for p in parts)


run_id = st.selectbox("GAN run", ids, format_func=_label, key="gan_run")
run = next(r for r in runs if r.run_id == run_id)
meta = run.meta
quality, judge_meta = meta.get("quality", {}), meta.get("judge", {})
real = judge_meta.get("real_images", {})
num_classes = len(meta.get("dataset", {}).get("class_names", [])) or None
c = st.columns(4)
c[0].metric("Fréchet distance", f"{quality.get('frechet_distance', float('nan')):.2f}",
            help="Between generated and real test images in the judge's feature space (Heusel et al. 2017); lower "
                 "is better, comparable only between runs with the same judge.")
c[1].metric("Inception score", f"{quality.get('inception_score', float('nan')):.2f}",
            help=f"Salimans et al. 2016 with the judge as p(y|x); real test images: {real.get('inception_score', 0):.2f}.")
c[2].metric("Classes covered", f"{quality.get('classes_covered', '?')}/{num_classes or '?'}",
            help="Classes the judge confidently finds among the samples; few means mode collapse.")
c[3].metric("Steps", f"{meta.get('steps', 0):,}", help=f"stopped by {meta.get('stopped_by', '?')}")
parent = f" · continues `{meta['parent']}`" if meta.get("parent") else ""
st.caption(f"Run `{run.run_id}` · {ui.md(meta.get('device', '?'))} · dataset {ui.md(meta['dataset']['name'])} · "
           f"{meta.get('train_seconds', 0):.0f} s of training · seed {meta.get('seed')} · judge "
           f"`{judge_meta.get('run_id')}` (test accuracy {judge_meta.get('test_accuracy') or 0:.1%}){parent}")
note = stop_note(meta)
if note:  # stopped by its time or step limit: say so plainly, with what it reached and what to do
    st.warning(f"Stopped early: {ui.md(note)}.", icon=":material/timer_off:")
    if can_continue(run):
        with st.form("gan_continue_form"):
            c = st.columns(3)
            more_epochs = c[0].number_input("Epochs in all", max(1, meta.get("epochs_done", 0) + 1), 1000,
                                            max(meta.get("epochs_planned", 1), meta.get("epochs_done", 0) + 1),
                                            key="gan_continue_epochs")
            more_time = c[1].number_input("Time limit (seconds, 0: none)", 0, 36_000,
                                          int(meta.get("time_limit") or 0), step=30, key="gan_continue_time_limit")
            go_on = st.form_submit_button("Continue training", icon=":material/resume:",
                                          disabled=ui.has_active_job("gan"),
                                          help="A new run starts from this run's saved networks, optimiser states "
                                               "and data order, and records this run as its parent.")
        if go_on:
            with ui.guard():
                config = GanConfig(resume=run.run_id, epochs=int(more_epochs),
                                   time_limit=float(more_time) or None).validate()
                ui.submit_job(gan_task, kind="gan", title=f"Continue GAN {run.run_id}", slot="gan", config=config)
            st.rerun()

st.markdown("**Samples over training** (the same noise every epoch)")
grids = epoch_grids(run)
if grids:
    epochs_saved = list(grids)
    shown = st.select_slider("Epoch", epochs_saved, value=epochs_saved[-1], key=f"gan_epoch_{run.run_id}") \
        if len(epochs_saved) > 1 else epochs_saved[0]
    epoch_png = grids[shown].read_bytes()
    _show(epoch_png, f"epoch {shown}")
    d = st.columns(4)
    with d[0]:
        _png_button("This grid (PNG)", epoch_png, f"{run.run_id}-epoch-{shown:03d}.png", "gan_dl_epoch")
    d[1].download_button("All epoch grids (zip)", data=lambda: grids_zip(run), file_name=f"{run.run_id}-grids.zip",
                         mime="application/zip", key="gan_dl_grids", icon=":material/folder_zip:", on_click="ignore")
else:
    st.caption("This run has no per-epoch sample grids saved.")

history = run.metrics()
curves = gplots.gan_curves(history)
scores = gplots.gan_quality(history, reference=real)
st.markdown("**Quality per epoch** (dashed: the judge's scores of real test images)")
st.plotly_chart(scores, key="gan_result_quality")
st.markdown("**The adversarial game**")
st.plotly_chart(curves, key="gan_result_curves")
d = st.columns(4)
with d[0]:
    ui.download_json(gan_report(run), f"{run.run_id}-metrics.json", key="gan_dl_metrics", label="Metrics (JSON)")
with d[1]:
    ui.download_figure(scores, f"{run.run_id}-quality.html", key="gan_dl_quality", label="Quality (HTML)")
with d[2]:
    ui.download_figure(curves, f"{run.run_id}-curves.html", key="gan_dl_curves", label="Curves (HTML)")

st.subheader("Draw from the generator")
tab_names = ["Samples", "Latent interpolation"] + (["Per class"] if meta.get("conditional") else [])
tabs = st.tabs(tab_names)
with tabs[0]:
    with st.form("gan_sample_form"):
        c = st.columns(2)
        n = c[0].slider("Samples", 4, 144, 64, key="gan_sample_n")
        sample_seed = c[1].number_input("Noise seed", 0, 2**31 - 1, 0, key="gan_sample_seed")
        st.form_submit_button("Draw", icon=":material/casino:")
    with ui.guard(stop=False):
        png = _grid(run.run_id, "samples", int(n), 0, int(sample_seed), True)
        cycle = " (the classes cycle along each row)" if meta.get("conditional") else ""
        _show(png, f"{n} samples, seed {sample_seed}{cycle}")
        _png_button("Samples (PNG)", png, f"{run.run_id}-samples-seed{sample_seed}.png", "gan_dl_samples")
with tabs[1]:
    st.caption("Each row walks from one random noise vector to another (Radford et al. 2016): smooth changes mean "
               "the generator learned a continuous space rather than memorising images.")
    with st.form("gan_interp_form"):
        c = st.columns(4)
        rows = c[0].number_input("Rows", 1, 16, 6, key="gan_interp_rows")
        steps = c[1].number_input("Images per row", 2, 16, 8, key="gan_interp_steps")
        interp_seed = c[2].number_input("Noise seed", 0, 2**31 - 1, 0, key="gan_interp_seed")
        path = c[3].selectbox("Path", ["slerp", "linear"], key="gan_interp_path",
                              help="slerp follows the sphere where Gaussian noise lives (White 2016).")
        st.form_submit_button("Interpolate", icon=":material/linear_scale:")
    with ui.guard(stop=False):
        png = _grid(run.run_id, "interpolation", int(rows), int(steps), int(interp_seed), path == "slerp")
        _show(png, f"{rows} {path} paths of {steps} images, seed {interp_seed}")
        _png_button("Interpolation (PNG)", png, f"{run.run_id}-interpolation-seed{interp_seed}.png", "gan_dl_interp")
if meta.get("conditional"):
    with tabs[2]:
        st.caption("One row per class; each column shares its noise, so the label sets the class and the noise "
                   "the style.")
        with st.form("gan_class_form"):
            c = st.columns(2)
            per_class = c[0].number_input("Images per class", 1, 16, 8, key="gan_class_n")
            class_seed = c[1].number_input("Noise seed", 0, 2**31 - 1, 0, key="gan_class_seed")
            st.form_submit_button("Draw", icon=":material/table_rows:")
        with ui.guard(stop=False):
            png = _grid(run.run_id, "classes", int(per_class), 0, int(class_seed), True)
            names = meta.get("dataset", {}).get("class_names", [])
            _show(png, "rows: " + ", ".join(str(x) for x in names))
            _png_button("Per-class rows (PNG)", png, f"{run.run_id}-classes-seed{class_seed}.png", "gan_dl_classes")

ui.download_run(run, key="gan_dl_run")
