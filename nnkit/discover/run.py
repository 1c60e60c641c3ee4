"""SpRAy over the classes of a dataset: pick each class's images, compute their maps, cluster, find the
regions, rank the candidates (Lapuschkin et al. 2019, Nat. Commun. 10, 1096). One library call for the
CLI (``nnkit discover``) and the dashboard's Discover tab.
"""

from __future__ import annotations

import math
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch

from nnkit.confounding.box import image_size
from nnkit.data.base import Dataset
from nnkit.data.select import describe_selection, stratified_indices
from nnkit.discover.candidates import Candidate, CandidateRules, rank_candidates, top_candidate
from nnkit.discover.maps import DEFAULT_METHOD, class_maps
from nnkit.discover.regions import ClusterRegion, cluster_regions
from nnkit.discover.spectral import SpectralRelevanceAnalysis
from nnkit.errors import Cancelled, NnkitError
from nnkit.saliency import resolve_method


@dataclass
class ClassDiscovery:
    """What discovery found in one class's maps."""

    class_index: int
    class_name: str
    method: str  # the attribution method
    positions: list[int]  # the images' positions in the split
    selection: str  # which images, in words
    eigenvalues: list[float]  # smallest Laplacian eigenvalues, ascending (the eigengap plot)
    n_clusters: int
    labels: list[int]  # cluster of each image
    embedding: list[list[float]]  # N×2 spectral embedding
    regions: list[ClusterRegion]
    candidates: list[Candidate]  # ranked, best first
    rules: CandidateRules
    seconds: float
    maps: torch.Tensor | None = field(default=None, repr=False)  # N×H×W unit-mass maps (for figures)
    images: torch.Tensor | None = field(default=None, repr=False)  # N×C×H×W

    @property
    def top(self) -> Candidate | None:
        """The best candidate that passes the rules, or None."""
        return top_candidate(self.candidates)

    def to_dict(self) -> dict:
        """JSON-ready (no tensors): clusters with size, box and concentration; candidates ranked."""
        top = self.top
        return {"class": self.class_index, "class_name": self.class_name, "method": self.method,
                "n": len(self.positions), "selection": self.selection, "positions": self.positions,
                "n_clusters": self.n_clusters, "eigenvalues": self.eigenvalues, "labels": self.labels,
                "embedding": self.embedding, "clusters": [r.to_dict() for r in self.regions],
                "candidates": [c.to_dict() for c in self.candidates],
                "top_candidate": top.to_dict() if top is not None else None, "seconds": self.seconds}


def parse_class(dataset: Dataset, text) -> int:
    """A class given by name or index → its index; a one-line NnkitError otherwise."""
    names = list(dataset.class_names)
    t = str(text).strip()
    if t in names:
        return names.index(t)
    if t.lstrip("-").isdigit() and 0 <= int(t) < len(names):
        return int(t)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    raise NnkitError(f"unknown class {text!r}: give a name ({shown}) or an index 0-{len(names) - 1}")


def class_positions(labels: torch.Tensor, cls: int, n: int, seed: int) -> list[int]:
    """Up to ``n`` positions of class ``cls`` in a split, seeded (``nnkit.data.select.stratified_indices``).

    Returns:
        Positions in the split, in index order; a one-line NnkitError when the class has no image.
    """
    where = (torch.as_tensor(labels) == cls).nonzero().flatten()
    if not len(where):
        raise NnkitError(f"class {cls} has no image in this split")
    picked = stratified_indices(labels[where], n, seed)
    return sorted(where[picked].tolist())


def plan_images(dataset: Dataset, classes: list[int] | None, split: str, n: int,
                seed: int) -> tuple[list[int], list[list[int]]]:
    """Which images of each class discovery takes, checked before any work (a class needs at least 2).

    Returns:
        ``(classes, positions per class)``; a one-line NnkitError for a bad split, seed or class size.
    """
    s = dataset.split(split)
    classes = list(range(dataset.num_classes)) if classes is None else list(classes)
    picks = [class_positions(s.labels, c, n, seed) for c in classes]
    for c, pos in zip(classes, picks):
        if len(pos) < 2:
            raise NnkitError(f"discovery needs at least 2 images of a class, got {len(pos)} of class "
                             f"{dataset.class_names[c]} (--n {n})")
    return classes, picks


def discover_class(model: torch.nn.Module, images: torch.Tensor, cls: int, *, class_name: str | None = None,
                   positions: list[int] | None = None, selection: str = "", method: str = DEFAULT_METHOD,
                   side: int = 16, n_neighbors: int = 10, max_clusters: int = 8, level: float = 0.5,
                   rules: CandidateRules | None = None, random_state: int = 0, batch_size: int = 64,
                   device: torch.device | str | None = None, seed: int | None = 0,
                   on_progress: Callable[[int, int], None] | None = None,
                   stop_event: threading.Event | None = None, method_opts: dict | None = None) -> ClassDiscovery:
    """SpRAy on one class: maps for class ``cls``, spectral clustering, regions and ranked candidates.

    Args:
        model: the classifier.
        images: images of the class (at least 2).
        cls: the class the maps explain.
        class_name, positions, selection: for the output (default: ``str(cls)``, 0..N-1, "").
        method: attribution method (``nnkit.saliency``); method_opts its options.
        side, n_neighbors, max_clusters, random_state: of ``SpectralRelevanceAnalysis``.
        level: of ``find_box``.
        rules: of ``rank_candidates``.
        batch_size, device, seed, on_progress, stop_event: of the attribution (``explain``).

    Shape:
        images N×C×H×W in [0, 1].

    Returns:
        ClassDiscovery (``maps`` and ``images`` kept for figures).
    """
    t0 = time.perf_counter()
    rules = rules or CandidateRules()
    if images.shape[0] < 2:
        raise NnkitError(f"discovery needs at least 2 images of a class, got {images.shape[0]}")
    maps = class_maps(model, images, cls, method, batch_size=batch_size, device=device, seed=seed,
                      on_progress=on_progress, stop_event=stop_event, **(method_opts or {}))
    if stop_event is not None and stop_event.is_set():
        raise Cancelled("discovery cancelled")
    spray = SpectralRelevanceAnalysis(n_neighbors=n_neighbors, max_clusters=max_clusters, side=side,
                                      random_state=random_state).fit(maps)
    regions = cluster_regions(maps, spray.labels_, images.cpu(), level)
    candidates = rank_candidates(maps, regions, rules)
    return ClassDiscovery(
        int(cls), class_name if class_name is not None else str(cls), resolve_method(method),
        list(positions) if positions is not None else list(range(images.shape[0])), selection,
        [float(v) for v in spray.eigenvalues_], spray.n_clusters_, spray.labels_.tolist(),
        np.round(spray.embedding_, 6).tolist(), regions, candidates, rules, time.perf_counter() - t0,
        maps, images.cpu())


def discover_dataset(model: torch.nn.Module, dataset: Dataset, *, classes: list[int] | None = None,
                     split: str = "test", n: int = 200, seed: int = 0,
                     on_progress: Callable[[int, int], None] | None = None,
                     stop_event: threading.Event | None = None, **kwargs) -> list[ClassDiscovery]:
    """``discover_class`` for each class of a dataset split, n images per class (seeded).

    Args:
        model: the classifier.
        dataset: the data.
        classes: class indices (default: all).
        split: where the images come from.
        n: images per class (all of the class when it has fewer); seed: of the draw and of random methods.
        on_progress: called with (images attributed, total) over all classes.
        stop_event: when set, stops before the next batch and raises ``Cancelled``.
        **kwargs: passed to ``discover_class`` (method, side, rules, batch_size, device, ...).

    Returns:
        One ClassDiscovery per class, in the order given.
    """
    s = dataset.split(split)
    classes, picks = plan_images(dataset, classes, split, n, seed)
    total = sum(len(p) for p in picks)
    done = 0
    out = []
    for c, pos in zip(classes, picks):
        def progress(k: int, _n: int, base: int = done) -> None:
            if on_progress is not None:
                on_progress(base + k, total)

        sel = describe_selection(s.labels, pos, seed) + f", class {dataset.class_names[c]}"
        out.append(discover_class(model, s.images[pos], c, class_name=dataset.class_names[c], positions=pos,
                                  selection=sel, seed=seed, on_progress=progress, stop_event=stop_event, **kwargs))
        done += len(pos)
    return out


def box_for_check(box, dataset: Dataset) -> str:
    """A box found on the model input, written as ``--mask-box`` takes it (the user's image coordinates).

    Pixels when the user's images have the model's size (built-in data), else percentages of width and
    height, which map back onto the same model pixels (``MaskBox.to_model`` rounds outwards).

    Args:
        box: ``(x0, y0, x1, y1)`` end-exclusive on the model input.
        dataset: the data the box was found on.

    Returns:
        ``"x0,y0,x1,y1"`` or ``"x0%,y0%,x1%,y1%"``.
    """
    side = dataset.image_size
    if image_size(dataset) == (side, side):
        return ",".join(str(int(v)) for v in box)
    # Four decimals, starts rounded up and ends down: MaskBox.to_model's floor/ceil then gives these pixels back.
    out = []
    for i, v in enumerate(box):
        scaled = Fraction(int(v) * 1_000_000, side)
        q = math.ceil(scaled) if i < 2 else math.floor(scaled)
        out.append(f"{q / 10_000:.4f}".rstrip("0").rstrip(".") + "%")
    return ",".join(out)


def class_view(dataset: Dataset, classes: list[int]) -> Dataset:
    """The dataset with every split cut down to the images of ``classes`` (class names and indices unchanged).

    A discovered region is one class's strategy (shapes-confounded puts each class's tag in its own corner),
    so it is checked on that class's images: over all classes the box would hold another class's background.

    Returns:
        A Dataset of the same name and classes; a one-line NnkitError when a split loses every image.
    """
    keep = torch.tensor(sorted(set(int(c) for c in classes)))
    splits = {}
    for name, s in dataset.splits.items():
        idx = torch.isin(s.labels, keep).nonzero().flatten()
        splits[name] = s.subset(idx)
    if not len(splits.get("test", next(iter(splits.values())))):
        raise NnkitError(f"no image of class {', '.join(dataset.class_names[c] for c in keep.tolist())} to check")
    return Dataset(dataset.name, list(dataset.class_names), splits, dict(dataset.info, classes=keep.tolist()))


def check_candidate(model: torch.nn.Module, dataset: Dataset, box: str, classes: list[int], **kwargs):
    """The confounding check (``nnkit.confounding.check_dataset``, the code of ``nnkit confounding --mask-box``)
    on a discovered box, over the images of the classes whose top candidate it is.

    Args:
        model: the classifier.
        dataset: the data discovery ran on.
        box: the box as ``--mask-box`` takes it (``box_for_check``).
        classes: class indices.
        **kwargs: passed to ``check_dataset`` (split, n, seed, methods, batch_size, device, on_progress,
            stop_event, ...).

    Returns:
        The ConfoundingReport; ``info`` adds ``classes`` (names) and ``box_source`` (discovered, not given).
    """
    from nnkit.confounding import check_dataset

    report = check_dataset(model, class_view(dataset, classes), mask_box=box, **kwargs)
    report.info.update(classes=[dataset.class_names[c] for c in classes],
                       box_source="discovered by nnkit discover, not given")
    return report


CHECK_N = 200  # images of the check on a discovered box (``nnkit confounding``'s default --n)


def check_command(run_id: str, box: str, class_names: list[str], *, seed: int = 0, methods="saliency,gradcam,ig",
                  n: int = CHECK_N, data: str | None = None, extra: list[str] | None = None) -> str:
    """The ``nnkit confounding`` command that repeats ``check_candidate`` exactly: the same box, the same
    classes' images (``--class``), draw, seed and methods.

    Args:
        run_id: the classifier run.
        box: the box as ``--mask-box`` takes it (``box_for_check``).
        class_names: the classes whose images are checked (names, as ``--class`` takes them).
        seed, methods, n: of the check (methods a list or a comma-separated string).
        data: ``--data`` when the images are not the run's own data; extra: more arguments (``--data-opt ...``).

    Returns:
        ``python -m nnkit confounding RUN --mask-box BOX --class C ... --json``, shell-quoted.
    """
    methods = methods if isinstance(methods, str) else ",".join(methods)
    args = ["confounding", run_id, *(["--data", data] if data else []), "--mask-box", box]
    for name in class_names:
        args += ["--class", name]
    args += ["--n", str(n), "--seed", str(seed), "--methods", methods, *(extra or []), "--json"]
    return shlex.join(["python", "-m", "nnkit", *args])
