"""The reference model of a confounding check: a run (e.g. trained on clean data) checked on the same images."""

from __future__ import annotations

import torch

from nnkit.data.base import Dataset
from nnkit.errors import NnkitError
from nnkit.models import Classifier
from nnkit.runs import RunInfo, RunStore, load_classifier


def load_reference(ref: str, dataset: Dataset, device: torch.device | str = "cpu") -> tuple[RunInfo, Classifier]:
    """Load the reference run ``ref`` and make sure it can classify ``dataset``'s images.

    Args:
        ref: run id, unique id prefix or run name.
        dataset: the data the confounding check uses, built with the checked run's data options (its
            size and channels for a folder), so a reference trained the same way fits it.
        device: where to put the model.

    Returns:
        ``(run info, classifier in eval mode)``; a one-line NnkitError when the run does not fit the data.
    """
    info = RunStore().get(ref)
    model = load_classifier(info, device)
    spec = model.spec
    if (spec["num_classes"], spec["in_channels"], spec["image_size"]) != (
            dataset.num_classes, dataset.in_channels, dataset.image_size):
        raise NnkitError(f"reference run {info.run_id} ({spec['num_classes']} classes, {spec['in_channels']}×"
                         f"{spec['image_size']}²) does not fit dataset {dataset.name!r} as the checked run reads it "
                         f"({dataset.num_classes} classes, {dataset.in_channels}×{dataset.image_size}²)")
    return info, model
