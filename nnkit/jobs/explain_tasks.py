"""The Explain page's work: saliency grid, confounding check and sanity check of a stored run.

Each check is a plain function (run id in, JSON-ready dict out; testable without a job manager) and a
job function ``*_task(ctx, **kwargs)`` that runs it in a JobManager worker with live progress and
cancel. The orchestration (run → data → images → library call → dict) is the CLI's (``nnkit explain``,
``nnkit confounding``, ``nnkit sanity``), so the dashboard and the CLI give the same figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch

from nnkit.confounding import (
    DEFAULT_METHODS,
    SANITY_METHODS,
    MaskBox,
    cascading_randomization,
    check_dataset,
    place_box,
)
from nnkit.confounding import faithfulness as faithfulness_check
from nnkit.confounding.box import image_size
from nnkit.confounding.reference import load_reference
from nnkit.data.base import Dataset
from nnkit.data.select import describe_selection
from nnkit.device import get_device
from nnkit.errors import NnkitError
from nnkit.jobs.manager import JobContext
from nnkit.runs import RunInfo, RunStore, load_classifier, load_run_data
from nnkit.saliency.grid import choose_images, explain_grid

GRID_METHODS = ("gradcam", "saliency")
MAX_GRID_IMAGES = 16  # rows of a grid that stay readable on a page

Progress = Callable[[float, str], None]  # (fraction done 0..1, one-line message)


def _load(run_id: str, data: str | None, device) -> tuple[RunInfo, Dataset, torch.nn.Module, torch.device]:
    info = RunStore().get(run_id)
    dataset = load_run_data(info, data)
    dev = get_device(device)
    return info, dataset, load_classifier(info, dev), dev


def parse_mask_box(text: str | None, image_size=None) -> str | None:
    """A typed suspected-confounder box, checked as far as it can be before the data is loaded.

    Args:
        text: ``"x0,y0,x1,y1"`` (end-exclusive pixels of the user's images) or ``"x0%,y0%,x1%,y1%"``;
            empty or None for no box.
        image_size: side (or ``(width, height)``) of the user's images, to check a pixel box against; None
            when unknown or when the images differ in size (then only percentages are accepted).

    Returns:
        The box in its one spelling (``nnkit confounding --mask-box`` takes it), or None when ``text`` is
        empty; a one-line NnkitError when it is malformed or outside the images.
    """
    if text is None or not str(text).strip():
        return None
    box = MaskBox.parse(text)
    if image_size is not None:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        box.to_model(size, size)  # raises a one-line error when the box leaves the images
    return str(box)


def box_on_model_input(run_id: str, box: str, data: str | None = None) -> dict:
    """Where a user's box lands on the model input of a run's data (``nnkit.confounding.place_box``).

    Returns:
        ``{"given", "unit", "image_size", "model_box", "model_size", "text"}``; a one-line NnkitError for a bad box.
    """
    return place_box(box, load_run_data(RunStore().get(run_id), data))


def user_image_size(run_id: str, data: str | None = None) -> tuple[int, int] | None:
    """``(width, height)`` of the user's images behind a run's data (before resizing), None when they differ."""
    return image_size(load_run_data(RunStore().get(run_id), data))


def preview_image(run_id: str, data: str | None = None, split: str | None = None) -> torch.Tensor:
    """One image to draw a suspected-confounder box on: the first one of ``split`` that carries a
    dataset mask (a tagged image), else the first one.

    Args:
        run_id: the run whose data (or ``data``) is used.
        data: another dataset fitting the run.
        split: default ``tag-agrees`` where the dataset has it, else ``test`` (as the check chooses).

    Shape:
        → C×H×W in [0, 1].
    """
    info = RunStore().get(run_id)
    dataset = load_run_data(info, data)
    s = dataset.split(split or ("tag-agrees" if "tag-agrees" in dataset.splits else "test"))
    if s.masks is not None and s.masks.any():
        return s.images[int(s.masks.flatten(1).any(1).nonzero()[0, 0])]
    return s.images[0]


# -- saliency grid ------------------------------------------------------------------------------
def saliency_grid(run_id: str, *, data: str | None = None, split: str = "test", n: int = 8, seed: int | None = None,
                  indices: list[int] | None = None, methods=GRID_METHODS, target: str = "predicted",
                  batch_size: int = 64, device: str | None = None, on_progress: Progress | None = None,
                  stop_event: threading.Event | None = None) -> dict:
    """Saliency maps of several methods over chosen images of a run's data (``nnkit explain``).

    Args:
        run_id: the classifier run.
        data: another dataset fitting the run (default: the run's own).
        split: where the images come from.
        n, seed, indices: which images (see ``nnkit.saliency.grid.choose_images``: seeded and stratified over
            the classes; seed None: the first n).
        methods: attribution methods (``nnkit.saliency.list_methods``).
        target: ``predicted`` or ``label``: the class each map explains.
        batch_size, device, stop_event: passed to the attribution.
        on_progress: called with (fraction, message).

    Returns:
        ``{"run_id", "data", "split", "indices", "selection", "methods", "target", "rows", "accuracy", "images",
        "maps"}`` (``selection``: which images, in words): ``images`` (N×C×H×W) and ``maps`` (``{method label: N×H×W}``) are tensors for
        ``grid_figure`` / ``render_grid_png``; the rest is JSON-ready.
    """
    info, dataset, model, dev = _load(run_id, data, device)
    images, idx = choose_images(dataset.split(split), n, seed, indices)
    if len(idx) > MAX_GRID_IMAGES:
        raise NnkitError(f"a grid holds at most {MAX_GRID_IMAGES} images, got {len(idx)}")

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done / total, f"{done}/{total} methods")

    grid = explain_grid(model, images.images, images.labels, dataset.class_names, methods, target,
                        batch_size=batch_size, device=dev, seed=0 if seed is None else seed, on_progress=progress,
                        stop_event=stop_event)
    selection = (describe_selection(dataset.split(split).labels, idx, None if indices is not None else seed)
                 if indices is not None or seed is not None else f"the first {len(idx)} images of the split")
    return {"run_id": info.run_id, "data": dataset.name, "split": split, "indices": idx, "selection": selection,
            "methods": grid.methods, "target": target, "rows": grid.rows, "accuracy": grid.accuracy, "images": grid.images, "maps": grid.maps}


def explain_task(ctx: JobContext, **kwargs) -> dict:
    """``saliency_grid`` as a job (progress per method, cancel between batches)."""
    ctx.update(0.0, "loading the model and the images")
    out = saliency_grid(**kwargs, device=ctx.device, on_progress=ctx.update, stop_event=ctx.stop_event)
    ctx.set_summary(f"{len(out['indices'])} images × {len(out['methods'])} methods "
                    f"(model right on {out['accuracy']:.0%})")
    return out


# -- confounding check --------------------------------------------------------------------------
def confounding(run_id: str, *, data: str | None = None, split: str | None = None, n: int = 200, seed: int = 0,
                methods=DEFAULT_METHODS, mask_box: str | tuple[int, int, int, int] | None = None,
                reference: str | None = None, batch_size: int = 64, device: str | None = None,
                on_progress: Progress | None = None, stop_event: threading.Event | None = None) -> dict:
    """Does the run rely on a suspected confounder? (``nnkit confounding --json``; see
    ``nnkit.confounding.check_dataset`` for the tests, thresholds and verdict.)

    Args:
        run_id: the classifier run.
        data: the images' dataset (default: the run's own; ``shapes-confounded`` has tags and masks).
        split: default ``tag-agrees`` where the dataset has it, else ``test``.
        n, seed: images drawn from those with a non-empty mask.
        methods: attribution methods.
        mask_box: the box on every image, for data without masks (overrides them): ``"x0,y0,x1,y1"`` in
            pixels of the user's images or ``"x0%,y0%,x1%,y1%"`` (see ``nnkit.confounding.box``).
        reference: a run (e.g. trained on clean data) checked on the same images.
        batch_size, device, stop_event: passed on.
        on_progress: called with (fraction, message).

    Returns:
        ``{"run_id", "reference_run_id", **ConfoundingReport.to_dict()}`` (JSON-ready).
    """
    info, dataset, model, dev = _load(run_id, data, device)
    ref_info = ref_model = None
    if reference:
        ref_info, ref_model = load_reference(reference, dataset, dev)

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done / total, f"{done}/{total} attribution passes")

    t0 = time.perf_counter()
    report = check_dataset(model, dataset, split=split, mask_box=mask_box, n=n, seed=seed, methods=methods,
                           reference=ref_model, batch_size=batch_size, device=dev, on_progress=progress,
                           stop_event=stop_event)
    out = {"run_id": info.run_id, "reference_run_id": ref_info.run_id if ref_info is not None else None,
           **report.to_dict()}
    # Stored like the CLI's check, with the command that repeats it, so Compare and the report can show the verdict.
    from nnkit.compare import record_confounding

    box = ",".join(str(v) for v in mask_box) if isinstance(mask_box, (tuple, list)) else mask_box
    record_confounding(info, out, n=n, seed=seed, data=data, split=split, mask_box=box, methods=methods,
                       reference=ref_info.run_id if ref_info is not None else None,
                       seconds=time.perf_counter() - t0)
    return out


def confounding_task(ctx: JobContext, **kwargs) -> dict:
    """``confounding`` as a job."""
    ctx.update(0.0, "loading the model and the images")
    out = confounding(**kwargs, device=ctx.device, on_progress=ctx.update, stop_event=ctx.stop_event)
    words = "relies on the confounder" if out["verdict"] == "relies_on_confounder" else "no evidence of reliance"
    ctx.set_summary(f"verdict: {words} ({out['n']} images)")
    return out


# -- sanity check -------------------------------------------------------------------------------
RANDOMISATION_SHARE = 0.7  # of the progress bar: the cascade costs more than the deletion/insertion curves


def sanity(run_id: str, *, data: str | None = None, split: str = "test", n: int = 32, seed: int = 0,
           methods=SANITY_METHODS, threshold: float = 0.5, absolute: bool = False, steps: int = 16,
           batch_size: int = 64, device: str | None = None, on_progress: Progress | None = None,
           stop_event: threading.Event | None = None) -> dict:
    """Cascading randomisation (Adebayo et al. 2018) and deletion/insertion AUC (Petsiuk et al. 2018) of
    the attribution methods on a run (``nnkit sanity --json``).

    Args:
        run_id: the classifier run.
        data, split: where the images come from (default: the run's own data, ``test``).
        n, seed: a seeded draw of ``n`` images; the seed also drives the re-initialisation.
        methods: attribution methods.
        threshold: mean rank correlation at which a method is flagged (its maps barely change).
        absolute: compare absolute-value maps instead of signed ones.
        steps: deletion/insertion curve points.
        batch_size, device, stop_event: passed on.
        on_progress: called with (fraction, message).

    Returns:
        ``{"run_id", "data", "split", "randomisation": SanityReport.to_dict(),
        "faithfulness": FaithfulnessReport.to_dict()}`` (JSON-ready).
    """
    from nnkit.saliency import parse_methods

    names = parse_methods(methods)
    info, dataset, model, dev = _load(run_id, data, device)
    images, _ = choose_images(dataset.split(split), n, seed)

    def phase(start: float, share: float, what: str):
        def progress(done: int, total: int) -> None:
            if on_progress is not None:
                on_progress(start + share * done / total, f"{what}: {done}/{total}")
        return progress

    rand = cascading_randomization(model, images.images, names, threshold=threshold, absolute=absolute,
                                   batch_size=batch_size, device=dev, seed=seed, stop_event=stop_event,
                                   on_progress=phase(0.0, RANDOMISATION_SHARE, "randomisation steps"))
    faith = faithfulness_check(model, images.images, names, steps=steps, batch_size=batch_size, device=dev, seed=seed,
                               stop_event=stop_event,
                               on_progress=phase(RANDOMISATION_SHARE, 1 - RANDOMISATION_SHARE, "deletion/insertion"))
    return {"run_id": info.run_id, "data": dataset.name, "split": split, "randomisation": rand.to_dict(),
            "faithfulness": faith.to_dict()}


def sanity_task(ctx: JobContext, **kwargs) -> dict:
    """``sanity`` as a job."""
    ctx.update(0.0, "loading the model and the images")
    out = sanity(**kwargs, device=ctx.device, on_progress=ctx.update, stop_event=ctx.stop_event)
    rand = out["randomisation"]
    flagged = [rand["methods"][m]["label"] for m in rand["flagged"]]
    ctx.set_summary("flagged: " + ", ".join(flagged) if flagged else "no method flagged")
    return out
