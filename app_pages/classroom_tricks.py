"""Classroom 6: training tricks side by side, each a short real training that changes one thing of a baseline."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.classroom import tricks
from nnkit.jobs import JobStatus
from nnkit.jobs.classroom_tasks import mnist_on_disk, tricks_task
from nnkit.plots.classroom import tricks as tricks_plots

ui.page_header("Training tricks",
               "Dropout, batch norm, augmentation, the learning rate, momentum, early stopping: what each one "
               "changes, seen on the same small training set.")

st.markdown("The baseline trains on a deliberately small training set: an MLP (256-256) with plain SGD on MNIST, a "
            "quarter of its images held out for validation; a small CNN (16-32-64, no dropout or batch norm) with "
            f"Adam at a constant learning rate on shapes, where an MLP learns nothing and {tricks.SHAPES_N_VAL:,} more "
            "images are generated for validation. It **overfits**: training loss near zero, validation loss no longer "
            "falling on MNIST and rising again on shapes. Every trick changes one thing; all runs start from the same "
            "weights.")
st.markdown("On shapes, *beating the baseline* means a lower validation loss at the end (early stopping: at the "
            "epoch it keeps). Measured there for seeds 0, 1 and 2: batch norm and augmentation also win on validation "
            "accuracy every time; spatial dropout on two seeds of three (its accuracy wobbles from epoch to epoch); "
            "early stopping, which watches the validation loss, keeps an epoch of a lower loss at up to 3 points "
            "less accuracy (the baseline's accuracy still creeps up while its loss rises). The two learning-rate "
            "runs show bad settings: they are meant to lose.")
# A list, not a table: a table cell cuts the longer descriptions off.
st.markdown("\n".join(f"- **{t.name}**: {t.description}" for t in tricks.TRICKS.values()))

SLOT = "classroom-tricks"
with st.form("tricks_form"):
    names = st.multiselect("Trainings", list(tricks.TRICKS), key="tricks_names",
                           default=["baseline", "dropout", "batch norm", "learning rate too large", "early stopping"])
    c = st.columns(4)
    mnist = mnist_on_disk()
    data = c[0].selectbox("Data", ["mnist", "fashion-mnist", "shapes"], index=0 if mnist else 2,
                          key="tricks_data",
                          help="MNIST and Fashion-MNIST must be on disk (or downloadable); shapes is generated "
                               f"(use about {tricks.SHAPES_N_TRAIN:,} images: with fewer, every trick stays poor).")
    n_train = c[1].number_input("Training images", 20, 5000, 600 if mnist else tricks.SHAPES_N_TRAIN, 100,
                                key="tricks_n",
                                help="MNIST and Fashion-MNIST: a quarter of these is held out for validation. Shapes: "
                                     f"all are trained on; {tricks.SHAPES_N_VAL:,} validation and "
                                     f"{tricks.SHAPES_N_TEST:,} test images are generated besides.")
    epochs = c[2].number_input("Epochs", 1, 100, 30, key="tricks_epochs")
    seed = c[3].number_input("Seed", 0, 2**31 - 1, 0, key="tricks_seed")
    go = st.form_submit_button("Train side by side", type="primary", icon=":material/play_arrow:",
                               disabled=ui.has_active_job(SLOT))
if go:
    if not names:
        st.error("Pick at least one training.", icon=":material/error:")
        st.stop()
    with ui.guard():
        ui.submit_job(tricks_task, kind="classroom", title=f"Training tricks: {len(names)} runs on {data}", slot=SLOT,
                      names=list(names), data=data, n_train=int(n_train), epochs=int(epochs), seed=int(seed))
    st.rerun()

view = ui.job_panel(ui.current_job(SLOT), key="tricks", figure=tricks_plots.tricks_curves, figure_when_done=False)
if view is None or view.status is not JobStatus.DONE or not view.result:
    if view is None:
        st.caption("About 2 CPU seconds per training on 600 MNIST digits; on 750 shapes images (validated on 1,000 "
                   "more) 31-43 CPU seconds per training of 30 epochs (one thread of a busy 2-core VM; longer in "
                   "wall time when the machine is shared). The curves appear epoch by epoch.")
    st.stop()

res = view.result
st.subheader(f"Result: {len(res['curves'])} trainings on {res['n_train']} {res['data']} images")
fig = tricks_plots.tricks_curves(view.metrics)
st.plotly_chart(fig, key="tricks_result_fig", config={"displaylogo": False})
rows = [{"trick": c["name"], "epochs": len(c["epochs"]),
         "train accuracy": c["train_accuracy"][-1] if c["epochs"] else None,
         "validation accuracy": c.get("kept_val_accuracy"), "validation loss": c.get("kept_val_loss"),
         "gap (overfitting)": c["gap"], "test accuracy": c["test_accuracy"],
         "stopped early": c["stopped_early"], "diverged": c["diverged"]} for c in res["curves"]]
pct = st.column_config.NumberColumn(format="percent")
formats = {k: pct for k in ("train accuracy", "validation accuracy", "gap (overfitting)", "test accuracy")}
formats["validation loss"] = st.column_config.NumberColumn(format="%.3f")
st.dataframe(rows, hide_index=True, width="stretch", column_config=formats)
st.caption("A large gap between training and validation accuracy is overfitting; a diverged run's loss became NaN "
           "(its curve ends there). Validation accuracy and loss are those of the weights the run kept: early "
           "stopping keeps its best epoch, not the last one drawn.")
d = st.columns(4)
with d[0]:
    ui.download_json(res, f"training-tricks-{res['data']}.json", key="tricks_dl_json", label="Curves (JSON)")
with d[1]:
    ui.download_figure(fig, f"training-tricks-{res['data']}.html", key="tricks_dl_fig")
