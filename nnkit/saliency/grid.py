"""Saliency over chosen images: which images (first, seeded draw or listed), their predictions, and one
map per method, ready for ``grid_figure`` / ``render_grid_png``.

The CLI's ``nnkit explain`` and the dashboard's Explain page both go through here, so a grid looks the
same wherever it is made:

    images, idx = choose_images(dataset.split("test"), n=8, seed=0)
    grid = explain_grid(model, images.images, images.labels, dataset.class_names, "gradcam,saliency")
    grid_figure(grid.images, grid.maps, row_titles=grid.rows)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nnkit.data.base import Split
from nnkit.data.select import stratified_indices
from nnkit.errors import NnkitError
from nnkit.saliency.maps import to_map
from nnkit.saliency.methods import METHODS, explain, parse_methods

TARGETS = ("predicted", "label")


def choose_images(split: Split, n: int = 16, seed: int | None = 0,
                  indices: list[int] | None = None) -> tuple[Split, list[int]]:
    """The images to explain: listed ones, a seeded stratified pick, or the first ``n``.

    Args:
        split: where the images come from.
        n: how many (all of them when the split is smaller).
        seed: seed of the pick, stratified over the classes (``nnkit.data.select.stratified_indices``, kept
            in index order; ``describe_selection`` says it in words); None takes the first ``n`` (which
            on a class-ordered folder split are all of the first class).
        indices: explicit image positions in the split (overrides ``n`` and ``seed``).

    Returns:
        ``(the images as a Split, their positions in ``split``)``.
    """
    size = len(split)
    if indices is not None:
        bad = [i for i in indices if not 0 <= int(i) < size]
        if bad:
            raise NnkitError(f"image index {bad[0]} is out of range: the split has {size} images (0..{size - 1})")
        if not indices:
            raise NnkitError("no image index given")
        idx = torch.tensor([int(i) for i in indices], dtype=torch.long)
    elif n < 1:
        raise NnkitError(f"the number of images must be at least 1, got {n}")
    elif seed is None:
        idx = torch.arange(min(n, size))
    else:
        idx = torch.tensor(sorted(stratified_indices(split.labels, n, seed)), dtype=torch.long)
    return split.subset(idx), idx.tolist()


def parse_indices(text: str, limit: int | None = None) -> list[int]:
    """``"0, 4, 10-12"`` → ``[0, 4, 10, 11, 12]`` (ranges inclusive, order kept, repeats dropped).

    Args:
        text: indices and ranges separated by commas or semicolons.
        limit: the most indices allowed; a range is counted before it is expanded, so ``0-1000000`` is
            refused at once instead of building a million-element list (issue 16).

    Returns:
        The indices; a one-line NnkitError for bad syntax, an empty or reversed range, or more than ``limit``.
    """
    out: dict[int, None] = {}  # an ordered set: membership checks stay O(1)
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            values = range(int(lo), int(hi) + 1) if sep else range(int(part), int(part) + 1)
        except ValueError:
            raise NnkitError(f"image indices must be whole numbers or ranges like 3-7, got {part!r}") from None
        if sep and not values:
            raise NnkitError(f"range {part!r} is empty: write the smaller number first")
        count = values.stop - values.start  # computed, not counted (len() overflows past 2**63)
        if limit is not None and count > limit:
            raise NnkitError(f"range {part!r} holds {count:,} images; at most {limit} are allowed")
        out.update(dict.fromkeys(values))
        if limit is not None and len(out) > limit:
            raise NnkitError(f"{len(out):,} or more image indices given; at most {limit} are allowed")
    if not out:
        raise NnkitError("no image index given: write e.g. 0, 4, 10-12")
    return list(out)


@dataclass
class SaliencyGrid:
    """Maps of several methods over the same images, with what the model predicted for each."""

    images: torch.Tensor  # N×C×H×W in [0, 1]
    labels: torch.Tensor  # N true classes
    predicted: torch.Tensor  # N predicted classes
    target: str  # "predicted" or "label": the class each map explains
    methods: list[str]  # canonical method names, in order
    maps: dict[str, torch.Tensor]  # method label -> N×H×W relevance magnitude
    rows: list[str]  # "true→predicted" class names per image

    @property
    def accuracy(self) -> float:
        """Share of the images the model classifies correctly."""
        return float((self.predicted == self.labels).float().mean())


def explain_grid(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, class_names: list[str],
                 methods, target: str = "predicted", *, batch_size: int = 64,
                 device: torch.device | str | None = None, seed: int | None = None,
                 on_progress: Callable[[int, int], None] | None = None,
                 stop_event: threading.Event | None = None) -> SaliencyGrid:
    """Attribute each image with each method and reduce to display maps (captum; see ``explain``).

    Every method explains the same class per image (the prediction, or the true label), so the columns
    of a grid compare methods, not decisions. Maps are magnitudes (captum's "absolute_value" view);
    Grad-CAM's are non-negative anyway.

    Args:
        model: the classifier.
        images, labels: the images and their true classes.
        class_names: names for the row titles.
        methods: method names or a comma-separated string.
        target: ``predicted`` or ``label``.
        batch_size, device, seed, stop_event: passed to ``explain``.
        on_progress: called with (methods done, methods) after each method.

    Shape:
        images N×C×H×W in [0, 1], labels N → maps N×H×W per method.

    Returns:
        SaliencyGrid.
    """
    if target not in TARGETS:
        raise NnkitError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    names = parse_methods(methods)
    if images.ndim != 4 or images.shape[0] == 0:
        raise NnkitError(f"no images to explain (got shape {tuple(images.shape)})")
    try:
        dev = torch.device(device) if device is not None else next(model.parameters()).device
    except StopIteration:
        dev = torch.device("cpu")
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + batch_size].to(dev)).argmax(1).cpu()
                          for i in range(0, images.shape[0], batch_size)])
    goal = labels if target == "label" else pred
    maps = {}
    for k, m in enumerate(names):
        attr = explain(model, images, goal, m, batch_size=batch_size, device=dev, seed=seed, stop_event=stop_event)
        maps[METHODS[m].label] = to_map(attr, "abs")
        if on_progress is not None:
            on_progress(k + 1, len(names))
    rows = [f"{class_names[int(y)]}→{class_names[int(p)]}" for y, p in zip(labels, pred)]
    return SaliencyGrid(images, labels, pred, target, names, maps, rows)
