"""The Discover tab's work: shortcut discovery (SpRAy) on a stored run, as a plain function and a job.

The orchestration (run → data → each class's images → ``nnkit.discover.discover_dataset``) is the CLI's
(``nnkit discover``), so the dashboard and the CLI find the same clusters and boxes for the same seed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from nnkit.confounding import DEFAULT_METHODS
from nnkit.device import get_device
from nnkit.discover import box_for_check, discover_dataset, embed, features, knn_affinity, parse_class
from nnkit.discover.maps import DEFAULT_METHOD
from nnkit.discover.run import check_candidate
from nnkit.jobs.manager import JobContext
from nnkit.runs import RunStore, load_classifier, load_run_data

Progress = Callable[[float, str], None]  # (fraction done 0..1, one-line message)


def discover(run_id: str, *, data: str | None = None, split: str = "test", classes=None, n: int = 200,
             seed: int = 0, method: str = DEFAULT_METHOD, max_clusters: int = 8, batch_size: int = 64,
             device: str | None = None, on_progress: Progress | None = None,
             stop_event: threading.Event | None = None) -> dict:
    """Discover candidate shortcut regions in each class of a run's data (``nnkit discover --json``).

    Args:
        run_id: the classifier run.
        data: another dataset fitting the run (default: the run's own).
        split: where the images come from.
        classes: class names or indices (default: every class).
        n: images per class; seed: of the draw (and of random attribution methods).
        method: attribution method; max_clusters: the eigengap's largest k.
        batch_size, device, stop_event: passed on.
        on_progress: called with (fraction, message).

    Returns:
        ``{"run_id", "data", "split", "method", "n", "seed", "rules", "image_size", "classes": [...]}``: each
        class is ``ClassDiscovery.to_dict()`` plus ``"check_box"`` (the top candidate's box as ``--mask-box``
        takes it, or None) and, for the figures, ``"maps"`` (N×H×W), ``"images"`` (N×C×H×W) and per cluster
        ``"prototypes"`` / ``"mean_images"`` (tensors, not JSON). ``"joint"``: one embedding of all classes'
        maps with each point's class, cluster and hover text (None for one class).
    """
    info = RunStore().get(run_id)
    dataset = load_run_data(info, data)
    dev = get_device(device)
    model = load_classifier(info, dev)
    dataset.split(split)  # an unknown split fails before any attribution
    picked = [parse_class(dataset, c) for c in classes] if classes else None

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done / max(1, total), f"{done}/{total} maps")

    found = discover_dataset(model, dataset, classes=picked, split=split, n=n, seed=seed, method=method,
                             max_clusters=max_clusters, batch_size=batch_size, device=dev, on_progress=progress,
                             stop_event=stop_event)
    out = []
    for d in found:
        row = d.to_dict()
        row["check_box"] = box_for_check(d.top.box, dataset) if d.top is not None else None
        row.update(maps=d.maps, images=d.images, prototypes=[r.prototype for r in d.regions],
                   mean_images=[r.mean_image for r in d.regions])
        out.append(row)
    return {"run_id": info.run_id, "data": dataset.name, "split": split, "method": found[0].method, "n": n,
            "seed": seed, "rules": found[0].rules.to_dict(), "rules_text": found[0].rules.describe(),
            "image_size": dataset.image_size, "classes": out, "joint": _joint(found, split, seed)}


def _joint(found, split: str, seed: int) -> dict | None:
    """One spectral embedding of every class's maps together, so the view can colour points by class as well
    as by cluster (each class's own embedding holds one class only). None for a single class."""
    if len(found) < 2:
        return None
    feats = np.concatenate([features(d.maps) for d in found])
    emb = embed(knn_affinity(feats), seed)
    return {"embedding": np.round(emb, 6).tolist(),
            "class": [d.class_name for d in found for _ in d.positions],
            "cluster": [f"{d.class_name} · cluster {c}" for d in found for c in d.labels],
            "hover": [f"{d.class_name}: image {p} of {split}" for d in found for p in d.positions]}


def discover_task(ctx: JobContext, **kwargs) -> dict:
    """``discover`` as a job (progress per batch of maps, cancel between batches)."""
    ctx.update(0.0, "loading the model and the images")
    out = discover(**kwargs, device=ctx.device, on_progress=ctx.update, stop_event=ctx.stop_event)
    found = [c["class_name"] for c in out["classes"] if c["top_candidate"] is not None]
    ctx.set_summary(f"candidates in {len(found)} of {len(out['classes'])} classes" +
                    (f": {', '.join(found)}" if found else ""))
    return out


def check_region(run_id: str, *, box: str, classes, data: str | None = None, split: str | None = None,
                 n: int = 200, seed: int = 0, methods=DEFAULT_METHODS, batch_size: int = 64,
                 device: str | None = None, on_progress: Progress | None = None,
                 stop_event: threading.Event | None = None) -> dict:
    """The confounding check on a discovered box over its classes' images (``nnkit discover --check``).

    Args:
        run_id: the classifier run.
        box: the box as ``--mask-box`` takes it (``"check_box"`` of ``discover``).
        classes: the classes (names or indices) whose top candidate the box is.
        data, split, n, seed, methods, batch_size, device, stop_event: as for the confounding check.
        on_progress: called with (fraction, message).

    Returns:
        The same dict as ``nnkit.jobs.explain_tasks.confounding`` (so the Confounding check tab shows it), its
        ``info`` naming the classes and that the box was discovered, not given.
    """
    info = RunStore().get(run_id)
    dataset = load_run_data(info, data)
    picked = [parse_class(dataset, c) for c in classes]
    model = load_classifier(info, get_device(device))

    def progress(done: int, total: int) -> None:
        if on_progress is not None:
            on_progress(done / total, f"{done}/{total} attribution passes")

    report = check_candidate(model, dataset, box, picked, split=split, n=n, seed=seed, methods=methods,
                             batch_size=batch_size, device=get_device(device), on_progress=progress,
                             stop_event=stop_event)
    return {"run_id": info.run_id, "reference_run_id": None, **report.to_dict()}


def check_region_task(ctx: JobContext, **kwargs) -> dict:
    """``check_region`` as a job."""
    ctx.update(0.0, "loading the model and the images")
    out = check_region(**kwargs, device=ctx.device, on_progress=ctx.update, stop_event=ctx.stop_event)
    words = "relies on the discovered region" if out["verdict"] == "relies_on_confounder" else "no evidence of reliance"
    ctx.set_summary(f"verdict: {words} ({out['n']} images of {', '.join(out['info']['classes'])})")
    return out
