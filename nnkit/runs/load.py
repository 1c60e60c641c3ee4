"""Rebuild a trained classifier from its run: spec from meta.json, weights from safetensors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch

from nnkit import data as datasets
from nnkit.data.base import Dataset
from nnkit.errors import NnkitError
from nnkit.models import Classifier, create
from nnkit.runs.store import WEIGHTS, RunInfo, load_weights

# Where data warnings go while a background job runs: the dashboard's jobs run in worker threads, whose
# ``warnings.warn`` only reaches the server log, so the job collects them to show beside its result.
_COLLECTED: ContextVar[list[str] | None] = ContextVar("nnkit_data_warnings", default=None)


@contextmanager
def collect_data_warnings() -> Iterator[list[str]]:
    """Collect the data warnings (a changed ``folder:`` dataset) raised in this context instead of warning.

    Returns:
        A context manager yielding the list the warnings' one-line texts are appended to.
    """
    notes: list[str] = []
    token = _COLLECTED.set(notes)
    try:
        yield notes
    finally:
        _COLLECTED.reset(token)


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
    try:
        model = create(**run.meta["model"])
    except (TypeError, ValueError) as exc:  # meta.json's spec was edited into something no model takes
        raise NnkitError(f"run {run.run_id}: its model spec in meta.json is broken ({str(exc)[:100]})") from None
    try:
        model.load_state_dict(load_weights(run.path / WEIGHTS))
    except RuntimeError as exc:
        raise NnkitError(f"run {run.run_id}: weights do not fit its model ({str(exc)[:100]})") from None
    return model.to(device).eval()


def load_run_data(run: RunInfo, data: str | None = None, data_root: str | None = None,
                  data_opts: dict | None = None) -> Dataset:
    """The dataset a run was trained on, or ``data`` checked to fit the run's model.

    Args:
        run: a complete classifier run.
        data: another dataset name (e.g. ``shapes-confounded`` for a model trained on ``shapes``, or
            another ``folder:PATH``); it must have the same classes count and image shape.
        data_root: root for downloaded datasets (default: the run's).
        data_opts: options that replace the run's own (``--data-opt``); see
            ``nnkit.data.registry.run_data_options`` for what is reused by default.

    Returns:
        The Dataset. A ``folder:`` dataset whose files changed since training gives a warning (a
        ``DataChangedWarning``, or a line in ``collect_data_warnings``'s list inside a background job).
    """
    import warnings

    from nnkit.data.folder import DataChangedWarning, folder_changed
    from nnkit.data.registry import run_data_options

    info = run.meta["dataset"]
    spec = run.meta["model"]
    name = data or info["name"]
    opts = run_data_options(info, spec, name, data_opts)
    root = data_root or info.get("root")
    if root and name in ("mnist", "fashion-mnist", "cifar10"):
        opts["root"] = root
    dataset = datasets.create(name, **opts)
    changed = folder_changed(info, dataset)
    if changed:
        notes = _COLLECTED.get()
        if notes is None:
            warnings.warn(f"run {run.run_id}: {changed}", DataChangedWarning, stacklevel=2)
        elif f"run {run.run_id}: {changed}" not in notes:  # a job may load the same data twice
            notes.append(f"run {run.run_id}: {changed}")
    if (dataset.num_classes, dataset.in_channels, dataset.image_size) != (
            spec["num_classes"], spec["in_channels"], spec["image_size"]):
        raise NnkitError(f"dataset {name!r} ({dataset.num_classes} classes, {dataset.in_channels}×"
                         f"{dataset.image_size}²) does not fit run {run.run_id} ({spec['num_classes']} classes, "
                         f"{spec['in_channels']}×{spec['image_size']}²)")
    return dataset
