"""Reduce attributions (N×C×H×W) to one relevance map per image (N×H×W), and scale maps for display."""

from __future__ import annotations

import torch

from nnkit.errors import NnkitError

REDUCTIONS = ("sum", "abs", "positive")


def to_map(attributions: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """One relevance value per pixel: the attributions reduced over the colour channels.

    Args:
        attributions: output of ``explain``.
        reduce: ``"sum"`` signed channel sum (keeps the sign of IG, DeepLift, occlusion),
            ``"abs"`` sum of absolute values (captum's "absolute_value" display), ``"positive"``
            positive part of the channel sum (evidence *for* the target class).

    Shape:
        N×C×H×W → N×H×W (a single C×H×W image gives H×W).

    Returns:
        The maps, float32, on the attributions' device.
    """
    if reduce not in REDUCTIONS:
        raise NnkitError(f"unknown reduction {reduce!r}: choose one of {', '.join(REDUCTIONS)}")
    a = attributions.detach().float()
    if a.ndim == 3:
        return to_map(a[None], reduce)[0]
    if a.ndim != 4:
        raise NnkitError(f"attributions must be N×C×H×W, got shape {tuple(a.shape)}")
    if reduce == "abs":
        return a.abs().sum(1)
    total = a.sum(1)
    return total.clamp(min=0) if reduce == "positive" else total


def normalize_maps(maps: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """Scale each map to [0, 1] for display: absolute value over its ``percentile``-th percentile, clipped.

    Clipping at a high percentile (as captum's visualisation does, outlier_perc=1) keeps a single
    extreme pixel from turning the rest of the map black.

    Shape:
        N×H×W (or H×W) → the same shape, float32 in [0, 1].
    """
    m = maps.detach().float().abs()
    if m.ndim == 2:
        return normalize_maps(m[None], percentile)[0]
    flat = m.flatten(1)
    top = torch.quantile(flat, percentile / 100.0, dim=1).clamp(min=1e-12)
    return (flat / top[:, None]).clamp(0, 1).view_as(m)
