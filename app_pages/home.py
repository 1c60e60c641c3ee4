"""Home: what the lab does, and a one-click quick start that trains a first model in the background."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.jobs import JobStatus, quick_start_config, train_task
from nnkit.plots import training as training_plots

ui.page_header("nnkit lab", "A robustness lab for image classifiers: train one, break it, find out what it looks at.")

st.markdown(
    "- **Train** small image classifiers on built-in data (generated shapes, MNIST, CIFAR-10) or your own folders.\n"
    "- **Attack** them with single-pixel and patch attacks, and **explain** their decisions with saliency maps "
    "that also expose shortcuts (a watermark the model reads instead of the object).\n"
    "- **Teach** with it: everything runs in the browser in the background, and every result is a saved, "
    "downloadable run."
)

st.subheader("Quick start")
st.write("Train a small CNN on the `shapes` dataset, so you have a model to attack and explain right away. "
         "Other pages stay usable while it trains.")
# No fixed promise: the time depends on this machine and on how busy it is, so say what was measured here.
st.caption(ui.estimate_note("train", "quick-start", what="quick start"))

busy = ui.has_active_job("quick-start")
if st.button("Quick start", type="primary", icon=":material/rocket_launch:", disabled=busy, key="quick_start"):
    with ui.guard():
        ui.submit_job(train_task, kind="train", title="Quick start: small cnn on shapes", slot="quick-start",
                      config=quick_start_config())
    st.rerun()  # draw the live panel (and the sidebar's job list) straight away

job = ui.current_job("quick-start")
view = ui.job_panel(job, key="quick-start", figure=training_plots.training_curves,
                    on_done=lambda v: ui.set_active_run(v.result["run_id"]))
if view is not None and view.status is JobStatus.DONE:
    st.page_link("app_pages/train.py", label="See its confusion matrix and downloads on Train",
                 icon=":material/arrow_forward:")

runs = ui.classifier_runs()
st.caption(f"{len(runs)} trained model{'s' * (len(runs) != 1)} in the run store. "
           "Pick the one to work on under **Active model** in the sidebar.")
