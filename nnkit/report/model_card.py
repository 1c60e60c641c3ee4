"""The model card section (Mitchell et al. 2019, "Model Cards for Model Reporting"): what the model is,
what it was trained on and how, and how well it classifies the held-out test split.

The clean figures are ``nnkit.training.evaluate`` on the run's test split, as ``nnkit eval RUN`` prints them.
"""

from __future__ import annotations

import torch

from nnkit.data.base import Dataset
from nnkit.device import describe_device
from nnkit.plots import training as training_plots
from nnkit.plots.report import per_class_bars
from nnkit.report.assets import Assets
from nnkit.report.commands import eval_cmd
from nnkit.runs import RunInfo
from nnkit.training import Evaluation
from nnkit.training.adversarial import defence_sentence
from nnkit.versions import library_versions

SECTION = "model_card"


def _dataset_description(name: str) -> str:
    from nnkit.data import FOLDER_PREFIX, list_datasets

    if name.startswith(FOLDER_PREFIX):
        return "an image folder uploaded by the user (one sub-folder per class)"
    return {d.name: d.description for d in list_datasets()}.get(name, "")


def most_confused(confusion: list[list[int]], class_names: list[str], top: int = 3) -> list[dict]:
    """The ``top`` most frequent mistakes: ``[{"true", "predicted", "count"}]``, largest first.

    Args:
        confusion: K×K counts, ``confusion[true][predicted]``.
        class_names: the K names.
        top: how many.

    Returns:
        Mistakes with a non-zero count, sorted by count (ties: true class, then predicted class).
    """
    pairs = [(-c, t, p) for t, row in enumerate(confusion) for p, c in enumerate(row) if t != p and c > 0]
    return [{"true": class_names[t], "predicted": class_names[p], "count": -c} for c, t, p in sorted(pairs)[:top]]


def model_card(info: RunInfo, dataset: Dataset, ev: Evaluation, device: torch.device, assets: Assets,
               cli_device: str | None = None) -> dict:
    """The model card of a run: details, training data and recipe, training curves and the clean evaluation.

    Args:
        info: the run.
        dataset: its dataset (``load_run_data(info)``).
        ev: ``nnkit.training.evaluate`` of the run's model on the test split (what ``nnkit eval`` prints).
        device: where the evaluation ran.
        assets: receives the figures (training curves, confusion matrix, per-class accuracy).
        cli_device: the ``--device`` the reproducing commands carry (None: none).

    Returns:
        The section as a JSON-ready dict.
    """
    meta = info.meta
    names = list(dataset.class_names)
    test = dataset.split("test")
    counts = torch.bincount(test.labels, minlength=dataset.num_classes).tolist()
    per_class = [{"class": n, "accuracy": a, "n": c} for n, a, c in zip(names, ev.per_class, counts)]
    config = info.optional_json("config.json") or {}  # missing or corrupt: the card goes without it
    history = [m for m in info.metrics() if "train_loss" in m]
    cmd = eval_cmd(info.run_id, cli_device)
    curves = assets.figure("training_curves", training_plots.training_curves(history, height=340), title="Training curves",
                           section=SECTION, caption="Loss and accuracy per epoch on the training data and on the "
                           "held-out validation share, as recorded in the run's metrics.jsonl.")
    confusion = assets.figure("confusion_matrix", training_plots.confusion_matrix(ev.confusion, names), title="Confusion matrix",
                              section=SECTION, caption=f"Test split ({ev.n} images): rows are the true classes, "
                              "columns the predictions; colour is the share of the true class.", cli=cmd)
    bars = assets.figure("per_class_accuracy", per_class_bars(names, ev.per_class, ev.accuracy),
                         title="Accuracy per class", section=SECTION,
                         caption="Test accuracy of each true class; the dashed line is the overall accuracy.", cli=cmd)
    spec = meta.get("model", {})
    ds_meta = meta.get("dataset", {})
    return {
        "model_details": {
            "run_id": info.run_id, "name": info.name, "created": meta.get("created"),
            "architecture": spec.get("name"), "spec": spec, "parameters": meta.get("parameters"),
            "framework": "PyTorch", "training_device": meta.get("device"), "versions": meta.get("versions", {}),
        },
        "intended_use": ("Studying robustness and explanations in the nnkit lab: the figures describe this run on "
                         f"the {dataset.name} data only and say nothing about other data."),
        "training_data": {
            "dataset": dataset.name, "description": _dataset_description(dataset.name),
            "options": ds_meta.get("opts") or {}, "class_names": names, "num_classes": dataset.num_classes,
            "image_shape": [dataset.in_channels, dataset.image_size, dataset.image_size],
            "splits": {"train": ds_meta.get("n_train", len(dataset.split("train"))), "validation": ds_meta.get("n_val", 0),
                       "test": len(test)},
        },
        "training": {
            "config": config, "seed": meta.get("seed"), "seconds": meta.get("seconds"),
            "epochs_run": meta.get("epochs_run"), "stopped_early": meta.get("stopped_early"), "history": history,
            "figures": [curves],
            # e.g. "adversarial training (FGSM with random start, ε = 8/255; Wong et al. 2020)" or "none"
            "defence": defence_sentence(meta.get("defence")), "defence_settings": meta.get("defence"),
        },
        "evaluation": {
            "split": "test", "n": ev.n, "clean_acc": ev.accuracy, "loss": ev.loss, "per_class": per_class,
            "confusion": ev.confusion, "most_confused": most_confused(ev.confusion, names), "cli": cmd,
            "figures": [confusion, bars],
        },
        "environment": {"versions": library_versions(), "device": describe_device(str(device))},
    }
