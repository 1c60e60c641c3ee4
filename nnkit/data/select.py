"""The one way nnkit picks n images of a split: seeded and stratified over the classes.

Splits of ``folder:`` datasets are stored class by class, so "the first n images" of a split can all
be of class 0. Every command, page and report section that works on n images of a split goes through
``stratified_indices`` and says which images it took with ``describe_selection``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nnkit.errors import NnkitError
from nnkit.seeding import check_seed


def stratified_indices(labels: torch.Tensor | Sequence[int], n: int, seed: int) -> list[int]:
    """Up to ``n`` positions of a split, as even over the classes as the split allows.

    The rule: each class's positions are put in a seeded random order, the classes themselves in a
    seeded random order, and positions are then taken round-robin (one of each class in turn) until
    ``n`` are taken; a class that runs out is skipped. The same labels, ``n`` and seed always give the
    same list, and the first k of a selection of n are the selection of k.

    Args:
        labels: the split's labels (int class indices, one per image).
        n: how many positions (all of them when the split is smaller); at least 1.
        seed: seed of the orders, a whole number in [0, 2**63 - 1].

    Shape:
        labels: N.

    Returns:
        Positions in the split (ints in 0..N-1, no repeats), in round-robin order.
    """
    if isinstance(n, bool) or int(n) < 1:
        raise NnkitError(f"the number of images must be at least 1, got {n}")
    g = torch.Generator().manual_seed(check_seed(seed))
    labels = torch.as_tensor(labels).flatten().cpu()
    classes = labels.unique(sorted=True)
    classes = classes[torch.randperm(len(classes), generator=g)]
    queues = []
    for c in classes:
        idx = (labels == c).nonzero().flatten()
        queues.append(idx[torch.randperm(len(idx), generator=g)].tolist())
    want = min(int(n), len(labels))
    out: list[int] = []
    depth = 0
    while len(out) < want:
        out.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return out[:want]


def describe_selection(labels: torch.Tensor | Sequence[int], indices: Sequence[int], seed: int | None) -> str:
    """Which images were taken, in words, e.g. ``seeded stratified: 50 images, 5 per class (seed 3)``.

    Args:
        labels: the split's labels (N).
        indices: the positions taken.
        seed: the selection's seed; None for images the user listed.

    Returns:
        One line for the CLI's output, JSON (``"selection"``) and the report.
    """
    labels = torch.as_tensor(labels).flatten().cpu()
    idx = torch.as_tensor(list(indices), dtype=torch.long)
    if seed is None:
        return f"chosen: {len(idx)} image{'s' * (len(idx) != 1)} listed by index"
    present = labels.unique()
    counts = torch.bincount(labels[idx], minlength=int(labels.max()) + 1 if len(labels) else 0)[present]
    covered = int((counts > 0).sum())
    lo, hi = int(counts[counts > 0].min()) if covered else 0, int(counts.max()) if len(counts) else 0
    per = f"{lo} per class" if lo == hi else f"{lo}-{hi} per class"
    classes = "" if covered == len(present) else f" of {covered} of the {len(present)} classes"
    return f"seeded stratified: {len(idx)} image{'s' * (len(idx) != 1)}, {per}{classes} (seed {seed})"
