"""Classroom 10: one pixel that changes a decision, a model whose decision follows a planted tag, and the
robustness trade-off of adversarial training."""

from pathlib import Path

import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from app_pages import _shared as ui
from nnkit.classroom import brittleness
from nnkit.jobs import JobStatus
from nnkit.jobs.classroom_tasks import mnist_on_disk, one_pixel_task, tag_moved_task, tradeoff_task
from nnkit.plots.classroom import brittleness as brittleness_plots

ROOT = Path(__file__).resolve().parents[1]  # the repository root (pages live in app_pages/)

ui.page_header("Brittleness and confounding",
               "High accuracy is not understanding: one changed pixel can flip a decision, and a model can score "
               "well by reading a watermark instead of the object.")

# -- one pixel ----------------------------------------------------------------------------------
st.subheader("1. One pixel flips the decision")
st.markdown("The single-pixel attack (Su, Vargas & Sakurai 2019) searches, by differential evolution, for one pixel "
            "and one colour that change the model's answer. It tries the images the model is least sure of first.")
PIXEL_SLOT = "classroom-one-pixel"
DIGITS = "digits"
run = ui.active_run()
sources = ([run.run_id] if run is not None else []) + ([DIGITS] if mnist_on_disk() else [])
go_pixel = False
if sources:
    with st.form("pixel_form"):
        source = st.radio("Model", sources, key="pixel_source", horizontal=True,
                          format_func=lambda s: "a small MLP trained on MNIST digits here (in the background)"
                          if s == DIGITS else f"the active model: {ui.md(ui.run_label(run))}")
        c = st.columns(3)
        max_images = c[0].number_input("Images searched", 1, 200, 30, key="pixel_images")
        popsize = c[1].number_input("Candidates per generation", 4, 400, 100, 10, key="pixel_popsize")
        generations = c[2].number_input("Generations", 0, 200, 20, key="pixel_generations")
        go_pixel = st.form_submit_button("Search for a one-pixel flip", type="primary", icon=":material/search:",
                                         disabled=ui.has_active_job(PIXEL_SLOT))
else:
    st.info("No model to attack yet: run **Quick start** on Home (or put MNIST under the data folder).",
            icon=":material/info:")
if go_pixel:
    with ui.guard():
        ui.submit_job(one_pixel_task, kind="classroom", title="One-pixel search", slot=PIXEL_SLOT,
                      run_id=None if source == DIGITS else source, n_images=max(200, int(max_images)),
                      max_images=int(max_images), popsize=int(popsize), generations=int(generations))
    st.rerun()
view = ui.job_panel(ui.current_job(PIXEL_SLOT), key="pixel")
if view is not None and view.status is JobStatus.DONE and view.result:
    res = view.result
    flip, names = res["flip"], res["class_names"]
    if flip is None:
        st.info(f"No single pixel flipped any of the {res['searched']} images searched ({res['model']}). A larger "
                "budget (more candidates or generations) may still find one.", icon=":material/shield:")
    else:
        before, after = names[flip.prediction_before], names[flip.prediction_after]
        old = ", ".join(f"{v:.2f}" for v in flip.old_value)
        new = ", ".join(f"{v:.2f}" for v in flip.new_value)
        st.success(f"Pixel ({flip.row}, {flip.col}) changed from ({old}) to ({new}) turns **{before}** "
                   f"({flip.probabilities_before[flip.prediction_before]:.0%}) into **{after}** "
                   f"({flip.probabilities_after[flip.prediction_after]:.0%}) after {flip.queries} model queries.",
                   icon=":material/bolt:")
        pixel_fig = brittleness_plots.one_pixel_figure(flip, names)
        st.plotly_chart(pixel_fig, key="pixel_fig", config={"displayModeBar": False})
        d = st.columns(4)
        with d[0]:
            ui.download_json({"model": res["model"], "row": flip.row, "col": flip.col,
                              "old_value": flip.old_value.tolist(), "new_value": flip.new_value.tolist(),
                              "label": names[flip.label], "before": before, "after": after,
                              "probabilities_before": flip.probabilities_before.tolist(),
                              "probabilities_after": flip.probabilities_after.tolist(), "queries": flip.queries},
                             "one-pixel-flip.json", key="pixel_dl_json", label="Flip (JSON)")
        with d[1]:
            ui.download_figure(pixel_fig, "one-pixel-flip.html", key="pixel_dl_fig")

st.divider()

# -- confounding --------------------------------------------------------------------------------
st.subheader("2. A model that reads the tag, not the shape")
st.markdown("In `shapes-confounded` almost every training image carries a small coloured tag whose corner and colour "
            "give the class away. A model can get high accuracy by reading the tag (a shortcut). **Move the tag** to "
            "another class's corner and colour: a model that follows the tag changes its answer, and its saliency map "
            "(Simonyan et al. 2014) puts its weight on the tag.")
TAG_SLOT = "classroom-tag-moved"
NEW = "new"


def _fits(r) -> bool:
    spec = r.meta.get("model", {})
    return (spec.get("num_classes"), spec.get("in_channels"), spec.get("image_size")) == (10, 3, 32) and str(
        r.meta.get("dataset", {}).get("name", "")).startswith("shapes")


candidates = [r for r in ui.classifier_runs() if _fits(r)]
confounded = [r for r in candidates if r.meta["dataset"]["name"] == "shapes-confounded"]
labels = {r.run_id: f"{ui.run_label(r)}" for r in candidates}
options = [r.run_id for r in confounded] + [r.run_id for r in candidates if r not in confounded] + [NEW]
with st.form("tag_form"):
    choice = st.selectbox("Model", options, key="tag_model",
                          format_func=lambda k: "train a small cnn on shapes-confounded now" if k == NEW else labels[k])
    c = st.columns(3)
    n_train = c[0].number_input("Training images (new model)", 100, 10_000, 1000, 100, key="tag_n_train")
    epochs = c[1].number_input("Epochs (new model)", 1, 20, 3, key="tag_epochs")
    n_test = c[2].number_input("Test images per variant", 20, 2000, 200, 20, key="tag_n")
    go_tag = st.form_submit_button("Move the tags", type="primary", icon=":material/swap_horiz:",
                                   disabled=ui.has_active_job(TAG_SLOT))
if go_tag:
    with ui.guard():
        ui.submit_job(tag_moved_task, kind="classroom", title="Tag-moved test", slot=TAG_SLOT,
                      run_id=None if choice == NEW else choice, n=int(n_test), n_train=int(n_train),
                      epochs=int(epochs))
    st.rerun()
view = ui.job_panel(ui.current_job(TAG_SLOT), key="tag")
if view is not None and view.status is JobStatus.DONE and view.result:
    report = view.result["report"]
    acc = report.accuracy
    st.markdown(f"Model: **{view.result['model']}** · {report.n} test images per variant")
    m = st.columns(4)
    m[0].metric("Accuracy, tag agrees", f"{acc['tag-agrees']:.0%}")
    m[1].metric("Accuracy, no tag", f"{acc['no-tag']:.0%}")
    m[2].metric("Accuracy, tag moved", f"{acc['tag-shuffled']:.0%}")
    m[3].metric("Answers naming the tag's class", f"{report.follows_tag:.0%}", help=f"chance: {report.chance:.0%}")
    left, right = st.columns([1, 2])
    with left:
        acc_fig = brittleness_plots.tag_accuracy_figure(report)
        st.plotly_chart(acc_fig, key="tag_acc_fig", config={"displayModeBar": False})
    with right:
        if report.examples:
            ex_fig = brittleness_plots.tag_examples_figure(report)
            st.plotly_chart(ex_fig, key="tag_examples_fig", config={"displayModeBar": False})
        else:
            st.caption("The model got none of the tagged test images right, so there is no example to show.")
    ui.download_json({"model": view.result["model"], "run_id": view.result["run_id"], "accuracy": acc,
                      "follows_tag": report.follows_tag, "chance": report.chance, "n": report.n,
                      "examples": [{"label": report.class_names[e.label], "tag_class": report.class_names[e.tag_class],
                                    "prediction_tagged": report.class_names[e.prediction_tagged],
                                    "prediction_moved": report.class_names[e.prediction_moved],
                                    "saliency_on_tag_tagged": e.tag_share_tagged,
                                    "saliency_on_tag_moved": e.tag_share_moved, "tag_area": e.tag_area}
                                   for e in report.examples]},
                     "tag-moved-test.json", key="tag_dl_json", label="Report (JSON)")

# -- the trade-off -------------------------------------------------------------------------------
st.divider()
st.subheader("3. The trade-off: a model trained to resist")
st.markdown("Train the same small cnn twice on `shapes`: once as usual, and once on adversarial examples of its own "
            "training images (FGSM with a random start, Wong, Rice & Kolter 2020). Then attack both with PGD (Madry "
            "et al. 2018) at growing budgets ε, each pixel moved by at most ε. Compare what the defence costs on clean "
            "images (ε = 0) with what it keeps under attack.")
TRADE_SLOT = "classroom-tradeoff"
st.caption(f"What is trained: {brittleness.tradeoff_recipe_text()}")
stored = {key: brittleness.find_trained(cfg) for key, cfg in brittleness.tradeoff_configs().items()}
if all(stored.values()):
    st.caption("Both models are stored from an earlier job and are reused: training took "
               + " and ".join(f"{r.meta.get('seconds', 0):.0f} s ({key})" for key, r in stored.items())
               + " on this machine.")
else:
    st.caption("Not trained on this machine yet: the job trains them first and stores them for next time; the bar "
               "shows the measured steps per second and the time left.")
with st.form("trade_form"):
    c = st.columns(2)
    trade_n = c[0].number_input("Test images attacked", 20, 1000, 200, 20, key="trade_n")
    trade_steps = c[1].number_input("PGD steps per ε", 1, 50, brittleness.TRADEOFF_PGD_STEPS, key="trade_steps")
    go_trade = st.form_submit_button("Train (or reuse) both models and attack them", type="primary",
                                     icon=":material/shield:", disabled=ui.has_active_job(TRADE_SLOT))
if go_trade:
    with ui.guard():
        ui.submit_job(tradeoff_task, kind="classroom-tradeoff", title="Robustness trade-off", slot=TRADE_SLOT,
                      n=int(trade_n), steps=int(trade_steps))
    st.rerun()
view = ui.job_panel(ui.current_job(TRADE_SLOT), key="trade")
if view is not None and view.status is JobStatus.DONE and view.result:
    trade = view.result["report"]
    eps_labels = {brittleness_plots.eps_label(e): e for e in trade.eps}
    chosen = st.select_slider("Attack budget ε", list(eps_labels), value=brittleness_plots.eps_label(8 / 255),
                              key="trade_eps")
    eps = eps_labels[chosen]
    k = trade.at(eps)
    m = st.columns(len(trade.models) * 2)
    for j, model in enumerate(trade.models):
        m[2 * j].metric(f"{model.key.capitalize()}: clean accuracy", f"{model.robust_accuracy[0]:.1%}")
        m[2 * j + 1].metric(f"{model.key.capitalize()}: robust accuracy at ε = {chosen}",
                            f"{model.robust_accuracy[k]:.1%}")
    st.caption(f"PGD with {trade.steps} steps and a random start on {trade.n} test images; an image counts as robust "
               "at ε only if no attack at this or a smaller ε fooled the model. "
               + " · ".join(f"{model.key}: {ui.md(model.label)}, trained in {model.train_seconds:.0f} s"
                            + ("" if model.trained_now else " (stored run, reused)") for model in trade.models))
    curve_fig = brittleness_plots.tradeoff_curve(trade, eps)
    st.plotly_chart(curve_fig, key="trade_curve", config={"displayModeBar": False})
    ex_fig = brittleness_plots.tradeoff_examples(trade, eps)
    st.plotly_chart(ex_fig, key="trade_examples", config={"displayModeBar": False})
    d = st.columns(4)
    with d[0]:
        ui.download_json({"eps": trade.eps, "n": trade.n, "pgd_steps": trade.steps,
                          "models": [{"key": model.key, "run_id": model.run_id, "training": model.label,
                                      "train_seconds": model.train_seconds,
                                      "robust_accuracy": model.robust_accuracy} for model in trade.models]},
                         "robustness-tradeoff.json", key="trade_dl_json", label="Curves (JSON)")
    with d[1]:
        ui.download_figure(curve_fig, "robustness-tradeoff.html", key="trade_dl_curve", label="Curve (HTML)")
    with d[2]:
        ui.download_figure(ex_fig, f"robustness-tradeoff-examples-{k}.html", key="trade_dl_examples",
                           label="Examples (HTML)")

# -- further in the lab -------------------------------------------------------------------------
# The Lab pages are being written alongside this one: link to them only once their files are there.
links = [("app_pages/attack.py", "Attack any model with one-pixel and patch attacks", ":material/bolt:"),
         ("app_pages/explain.py", "Explain a model and check it for confounders", ":material/visibility:")]
present = [link for link in links if (ROOT / link[0]).exists()]
if present:
    st.divider()
    st.markdown("**Go further in the lab**")
    for path, label, icon in present:
        try:
            st.page_link(path, label=label, icon=icon)
        except StreamlitPageNotFoundError:
            pass  # the file exists but is not in the menu yet
