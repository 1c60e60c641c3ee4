"""Train: a classifier from the model registry with a chosen recipe, live curves, results and comparisons."""

import streamlit as st

from app_pages import _shared as ui
from nnkit.cli.train import train_argv
from nnkit.distributed import torchrun_command
from nnkit.jobs import distributed_train_task, train_task
from nnkit.jobs.eta import last_rate
from nnkit.models import list_models
from nnkit.models.layers import ACTIVATIONS
from nnkit.plots import training as training_plots
from nnkit.runs import RunStore
from nnkit.training import AUGMENTATIONS, EARLY_STOPPING_ON, OPTIMIZERS, SCHEDULES, TrainConfig
from nnkit.training.adversarial import cost_note, describe_defence, job_kind

ui.page_header("Train", "Train a classifier with your choice of architecture and recipe, and watch it learn.")

models = {m.name: m for m in list_models()}
left, right = st.columns(2)
with left:
    data_name = ui.dataset_select("train_data")
with right:
    model_name = st.selectbox("Model", list(models), key="train_model",
                              format_func=lambda n: f"{n}: {models[n].description}")
entry = models[model_name]

with st.form("train_form"):
    st.markdown("**Model**")
    c = st.columns(3)
    model_opts = {}
    if "activation" in entry.options:
        acts = list(ACTIVATIONS)
        model_opts["activation"] = c[0].selectbox("Activation", acts, index=acts.index(entry.options["activation"]),
                                                  key="train_activation")
    if "dropout" in entry.options:
        model_opts["dropout"] = c[1].slider("Dropout", 0.0, 0.8, float(entry.options["dropout"]), 0.05,
                                            key="train_dropout")
    if "batch_norm" in entry.options:
        model_opts["batch_norm"] = c[2].checkbox("Batch norm", bool(entry.options["batch_norm"]), key="train_bn")
    st.markdown("**Training**")
    c = st.columns(4)
    defaults = TrainConfig()
    optimizer = c[0].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(defaults.optimizer), key="train_opt")
    lr = c[1].number_input("Learning rate", 1e-5, 1.0, defaults.lr, format="%.4f", key="train_lr")
    schedule = c[2].selectbox("LR schedule", SCHEDULES, index=SCHEDULES.index(defaults.schedule), key="train_sched")
    epochs = c[3].number_input("Epochs", 1, 100, defaults.epochs, key="train_epochs")
    c = st.columns(4)
    batch_size = c[0].selectbox("Batch size", [16, 32, 64, 128, 256], index=2, key="train_bs")
    augment = c[1].selectbox("Augmentation", AUGMENTATIONS, index=AUGMENTATIONS.index(defaults.augment),
                             key="train_aug")
    weight_decay = c[2].number_input("Weight decay", 0.0, 0.1, defaults.weight_decay, format="%.5f", key="train_wd")
    early = c[3].number_input("Early stopping (epochs, 0: off)", 0, 50, 0, key="train_early")
    c = st.columns(4)
    seed = c[0].number_input("Seed (empty: random, recorded)", 0, 2**31 - 1, value=None, key="train_seed")
    run_name = c[1].text_input("Run name (optional)", key="train_name")
    nproc = c[2].number_input("Processes", 1, 64, 1, key="train_nproc",
                              help="Data-parallel training on this many processes of this machine (torch.distributed: "
                                   "gloo on CPU, one GPU each on CUDA); the batch size stays the global batch.")
    early_on = c[3].selectbox("Early stopping watches", EARLY_STOPPING_ON,
                              index=EARLY_STOPPING_ON.index(defaults.early_stopping_on), key="train_early_on",
                              help="The validation number early stopping watches; the weights of its best epoch are "
                                   "kept. The loss shows overfitting while the accuracy can still creep up.")
    st.markdown("**Adversarial training**")
    c = st.columns([2, 1, 1])
    adv_choices = {"none": None, "FGSM (fast)": "fgsm", "PGD": "pgd"}
    adv_label = c[0].selectbox("Adversarial training", list(adv_choices), key="train_adv",
                               help="Train on attacks made against the model as it learns (a defence): FGSM with a "
                                    "random start (Wong et al. 2020) or PGD (Madry et al. 2018).")
    adversarial = adv_choices[adv_label]
    adv_eps255 = c[1].number_input("ε (n/255)", 1, 255, round(defaults.adv_eps * 255), key="train_adv_eps",
                                   help="The attack's L∞ budget: every pixel moves by at most n/255.")
    adv_steps = c[2].number_input("PGD steps", 1, 100, defaults.adv_steps, key="train_adv_steps",
                                  help="Attack steps per batch for PGD (FGSM takes one).")
    st.caption("After a clean first third of the epochs, each training batch is replaced by its worst case within ε "
               "found by the attack, so the model learns to resist that attack; clean accuracy usually drops a little. "
               + ui.md(cost_note(adversarial, int(adv_steps), last_rate("train"),
                                 last_rate(job_kind(adversarial)) if adversarial else None)))
    with st.expander("Dataset options"):
        data_opts = ui.dataset_options(data_name, "train_data_opt")
    submitted = st.form_submit_button("Train", type="primary", icon=":material/play_arrow:",
                                      disabled=ui.has_active_job("train"))

config = TrainConfig(data=data_name, model=model_name, model_opts=model_opts, data_opts=data_opts,
                     optimizer=optimizer, lr=float(lr), schedule=schedule, epochs=int(epochs),
                     batch_size=int(batch_size), augment=augment, weight_decay=float(weight_decay),
                     early_stopping=int(early), early_stopping_on=early_on, seed=None if seed is None else int(seed),
                     name=run_name.strip() or None,
                     **({"adversarial": adversarial, "adv_eps": int(adv_eps255) / 255,
                         **({"adv_steps": int(adv_steps)} if adversarial == "pgd" else {})} if adversarial else {}))
with st.expander("Run these settings on N processes with torchrun"):
    st.code(torchrun_command(train_argv(config), max(2, int(nproc))), language="bash")
    st.caption("The same training, data-parallel, from a terminal in the checkout (README: Scale out).")
if submitted:
    with ui.guard():
        config.validate()
        title = f"Train {model_name} on {ui.dataset_label(data_name)}"
        if adversarial:
            title += f", adversarially ({describe_defence(config.defence())})"
        # adversarial training runs under its own job kind, so its measured rate is kept apart from standard training's
        kind = job_kind(adversarial)
        if int(nproc) > 1:
            ui.submit_job(distributed_train_task, kind=kind, title=f"{title} ({int(nproc)} processes)",
                          slot="train", config=config, nproc=int(nproc))
        else:
            ui.submit_job(train_task, kind=kind, title=title, slot="train", config=config)
    st.rerun()  # show the live panel and the sidebar's job straight away

ui.job_panel(ui.current_job("train"), key="train", figure=training_plots.training_curves, figure_when_done=False,
             on_done=lambda v: ui.set_active_run(v.result["run_id"]))

runs = ui.classifier_runs()
if not runs:
    st.info("No trained model yet: train one above, or use Quick start on Home.", icon=":material/info:")
    st.stop()

st.subheader("Result")
labels = {r.run_id: ui.run_label(r) for r in runs}
active = ui.active_run()
ids = list(labels)
run_id = st.selectbox("Run", ids, index=ids.index(active.run_id) if active and active.run_id in ids else 0,
                      format_func=labels.get, key=f"train_result_run_{active.run_id if active else ''}")
with ui.guard():
    run = RunStore().get(run_id)
meta = run.meta
c = st.columns(4)
c[0].metric("Test accuracy", f"{meta.get('test_accuracy', 0):.1%}")
c[1].metric("Parameters", f"{meta.get('parameters', 0):,}")
c[2].metric("Training time", f"{meta.get('seconds', 0):.0f} s")
c[3].metric("Seed", meta.get("seed"))
dist = meta.get("distributed") or {}
procs = (f" · {dist['world_size']} processes ({ui.md(str(dist.get('backend')))}): "
         f"{ui.md(', '.join(map(str, dist.get('devices', []))))}" if dist.get("world_size", 1) > 1 else " · 1 process")
defence = (f" · adversarially trained ({ui.md(describe_defence(meta['defence']))})" if meta.get("defence")
           else " · standard training (no defence)")
st.caption(f"Run `{run.run_id}` · {ui.md(meta.get('device', '?'))}{procs} · dataset {ui.md(meta['dataset']['name'])} · "
           f"model {ui.md(meta['model']['name'])}{defence}")
left, right = st.columns(2)
with left:
    curves = training_plots.training_curves(run.metrics(), height=420)
    st.plotly_chart(curves, key="train_result_curves")
with right:
    class_names = meta.get("dataset", {}).get("class_names", [])
    test = run.optional_json("eval_test.json")  # None when missing or corrupt: the page does without it
    if test is not None and isinstance(test.get("confusion"), list):
        confusion = training_plots.confusion_matrix(test["confusion"], class_names, height=420)
        st.plotly_chart(confusion, key="train_result_confusion")
    else:
        confusion = None
        st.caption("This run has no readable test evaluation saved.")
ui.download_run(run, key="train_dl")
d = st.columns(4)
with d[0]:
    ui.download_figure(curves, f"{run.run_id}-curves.html", key="train_dl_curves", label="Curves (HTML)")
if confusion is not None:
    with d[1]:
        ui.download_figure(confusion, f"{run.run_id}-confusion.html", key="train_dl_conf", label="Confusion (HTML)")

st.subheader("Compare runs")


def _percent(value):
    return 100 * value if isinstance(value, int | float) else None


chosen = st.multiselect("Runs", ids, default=ids[: min(3, len(ids))], format_func=labels.get, key="train_compare")
metric = st.segmented_control("Metric", ["val_accuracy", "train_accuracy", "val_loss", "train_loss"],
                              default="val_accuracy", key="train_compare_metric") or "val_accuracy"
if chosen:
    store = RunStore()
    compared = [store.get(r) for r in chosen]
    st.plotly_chart(training_plots.compare_runs({labels[r.run_id]: r.metrics() for r in compared}, metric),
                    key="train_compare_chart")
    rows = []
    for r in compared:
        cfg = r.optional_json("config.json") or {}
        spec = r.meta.get("model", {})
        rows.append({"run": labels[r.run_id], "model": spec.get("name"), "activation": spec.get("activation"),
                     "batch norm": spec.get("batch_norm"), "optimizer": cfg.get("optimizer"), "lr": cfg.get("lr"),
                     "epochs": r.meta.get("epochs_run"), "test accuracy": _percent(r.meta.get("test_accuracy")),
                     "seconds": round(r.meta.get("seconds", 0), 1)})
    # 0-100 numbers shown as 97.0%: the same look as everywhere else, and the column still sorts as numbers
    st.dataframe(rows, hide_index=True, width="stretch", key="train_compare_table",
                 column_config={"test accuracy": st.column_config.NumberColumn(format="%.1f%%"),
                                "seconds": st.column_config.NumberColumn(format="%.1f s")})
st.page_link("app_pages/compare.py", label="Robustness side by side (attacks, corruptions, confounding): Compare",
             icon=":material/leaderboard:")
