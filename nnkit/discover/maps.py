"""Attribution maps of a class, through the one attribution entry point (``nnkit.saliency.explain``),
reduced to relevance *for* the class, scaled to unit mass and downsampled for clustering.

SpRAy (Lapuschkin et al. 2019, Nat. Commun. 10, 1096) clusters downsampled, normalised heatmaps: the
downsampling makes maps of the same strategy close although their pixels differ a little; the unit mass
makes a map's *where* count, not its overall strength.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from nnkit.errors import NnkitError
from nnkit.saliency import explain, to_map

# Vanilla gradient: pixel-sharp, so a 3-pixel token stays a 3-pixel box (Grad-CAM's last-layer maps are
# 4-8 pixels per cell on 32-pixel images and blur it), and one backward pass per image (fast on a CPU).
DEFAULT_METHOD = "saliency"


def unit_mass(maps: torch.Tensor) -> torch.Tensor:
    """The positive part of each map scaled to sum 1 (a map without positive relevance becomes uniform).

    Shape:
        N×H×W → N×H×W float32, each map non-negative with sum 1.
    """
    if maps.ndim != 3:
        raise NnkitError(f"maps must be N×H×W, got shape {tuple(maps.shape)}")
    pos = maps.detach().float().clamp(min=0)
    total = pos.flatten(1).sum(1)
    uniform = torch.full_like(pos, 1.0 / max(1, pos[0].numel())) if len(pos) else pos
    scaled = pos / total.clamp(min=1e-30)[:, None, None]
    return torch.where((total > 0)[:, None, None], scaled, uniform)


def class_maps(model: torch.nn.Module, images: torch.Tensor, target, method: str = DEFAULT_METHOD, *,
               batch_size: int = 64, device: torch.device | str | None = None, seed: int | None = None,
               on_progress: Callable[[int, int], None] | None = None, stop_event: threading.Event | None = None,
               **opts) -> torch.Tensor:
    """Relevance maps for ``target`` through ``nnkit.saliency.explain``, positive part, unit mass.

    Args:
        model: the classifier.
        images: the images of one class (or any images).
        target: the class to explain (one for all, or one per image; None: the predicted class).
        method: an attribution method of ``nnkit.saliency`` (default ``saliency``, the vanilla gradient).
        batch_size, device, seed, on_progress, stop_event, **opts: passed to ``explain`` (batched,
            progress after each batch, ``Cancelled`` when the stop event is set).

    Shape:
        images N×C×H×W in [0, 1] → N×H×W float32 on the CPU, each map non-negative with sum 1.

    Returns:
        The maps.
    """
    attr = explain(model, images, target, method, batch_size=batch_size, device=device, seed=seed,
                   on_progress=on_progress, stop_event=stop_event, **opts)
    return unit_mass(to_map(attr, "positive")).cpu()


def features(maps: torch.Tensor, side: int = 16) -> np.ndarray:
    """The maps as clustering features: area-averaged to ``side``×``side``, scaled to unit mass, flattened.

    Args:
        maps: relevance maps (any non-negative scale).
        side: the downsampled side (at most the maps' own; average pooling over equal-area cells).

    Shape:
        N×H×W → N×(side²) float64 (numpy, for scikit-learn).
    """
    if side < 1:
        raise NnkitError(f"the downsampled side must be at least 1, got {side}")
    m = unit_mass(maps)
    side = min(side, *m.shape[-2:])
    small = F.adaptive_avg_pool2d(m[:, None], side)[:, 0]
    return unit_mass(small).flatten(1).double().numpy()
