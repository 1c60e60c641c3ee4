"""Rebuild a trained classifier from its run: spec from meta.json, weights from safetensors."""

from __future__ import annotations

import torch

from nnkit import data as datasets
from nnkit.data.base import Dataset
from nnkit.errors import NnkitError
from nnkit.models import Classifier, create
from nnkit.runs.store import WEIGHTS, RunInfo, load_weights


def load_classifier(run: RunInfo, device: torch.device | str = "cpu") -> Classifier:
    """The run's model in eval mode on ``device``.

    Args:
        run: a complete classifier run (``RunStore().get(ref)``).
        device: where to put it.

    Returns:
        The Classifier with the run's weights.
    """
    if run.kind != "classifier":
        raise NnkitError(f"run {run.run_id} is a {run.kind} run, not a classifier")
    model = create(**run.meta["model"])
    try:
        model.load_state_dict(load_weights(run.path / WEIGHTS))
    except RuntimeError as exc:
        raise NnkitError(f"run {run.run_id}: weights do not fit its model ({str(exc)[:100]})") from None
    return model.to(device).eval()


def load_run_data(run: RunInfo, data: str | None = None, data_root: str | None = None) -> Dataset:
    """The dataset a run was trained on, or ``data`` checked to fit the run's model.

    Args:
        run: a complete classifier run.
        data: another dataset name (e.g. ``shapes-confounded`` for a model trained on ``shapes``);
            it must have the same classes count and image shape.
        data_root: root for downloaded datasets (default: the run's).

    Returns:
        The Dataset (built with the run's dataset options when it is the run's own dataset).
    """
    info = run.meta["dataset"]
    name = data or info["name"]
    opts = dict(info.get("opts") or {}) if name == info["name"] else {}
    root = data_root or info.get("root")
    if root and name in ("mnist", "fashion-mnist", "cifar10"):
        opts["root"] = root
    dataset = datasets.create(name, **opts)
    spec = run.meta["model"]
    if (dataset.num_classes, dataset.in_channels, dataset.image_size) != (
            spec["num_classes"], spec["in_channels"], spec["image_size"]):
        raise NnkitError(f"dataset {name!r} ({dataset.num_classes} classes, {dataset.in_channels}×"
                         f"{dataset.image_size}²) does not fit run {run.run_id} ({spec['num_classes']} classes, "
                         f"{spec['in_channels']}×{spec['image_size']}²)")
    return dataset
