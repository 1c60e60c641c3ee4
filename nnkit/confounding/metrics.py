"""Where does the relevance fall? Relevance mass and the pointing game inside a suspected-confounder mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from nnkit.errors import NnkitError


def _check(maps: torch.Tensor, masks: torch.Tensor) -> None:
    if maps.ndim != 3 or tuple(maps.shape) != tuple(masks.shape):
        raise NnkitError(f"maps {tuple(maps.shape)} and masks {tuple(masks.shape)} must both be N×H×W")


def area_share(masks: torch.Tensor) -> torch.Tensor:
    """Share of each image's pixels inside its mask: the relevance mass of a map that ignores the region
    (a uniform map puts exactly this share inside).

    Shape:
        masks N×H×W bool → N float32.
    """
    return masks.flatten(1).float().mean(1)


def relevance_mass(maps: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Relevance mass accuracy (Arras, Osman & Samek 2022, "CLEVR-XAI"): share of the positive
    relevance that falls inside the mask.

    Only positive relevance counts (evidence for the explained class); gradient-magnitude maps are
    all positive anyway.

    Args:
        maps: relevance per pixel (``nnkit.saliency.to_map``).
        masks: the suspected-confounder region of each image.

    Shape:
        maps N×H×W, masks N×H×W bool → N float32 in [0, 1]; NaN where a map has no positive relevance.

    Returns:
        Per-image relevance mass inside the mask.
    """
    _check(maps, masks)
    pos = maps.detach().float().clamp(min=0).flatten(1)
    total = pos.sum(1)
    inside = (pos * masks.flatten(1).to(pos.device, pos.dtype)).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.full_like(total, float("nan"))).cpu()


def dilate(masks: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grow each mask by ``pixels`` in every direction (square structuring element).

    Shape:
        N×H×W bool → N×H×W bool.
    """
    if pixels <= 0:
        return masks.bool()
    k = 2 * pixels + 1
    return F.max_pool2d(masks[:, None].float(), k, stride=1, padding=pixels)[:, 0] > 0


def pointing_game(maps: torch.Tensor, masks: torch.Tensor, tolerance: int = 1) -> torch.Tensor:
    """Pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop"):
    is each map's maximum inside the mask?

    Args:
        maps: relevance per pixel.
        masks: the region.
        tolerance: pixels of slack around the mask (Zhang et al. allow 15 px on 224-px images; 1 px
            suits 32-px images and Grad-CAM's coarse, upsampled maps).

    Shape:
        maps N×H×W, masks N×H×W bool → N bool.

    Returns:
        Per-image hit.
    """
    _check(maps, masks)
    region = dilate(masks.bool(), tolerance).flatten(1).cpu()
    peak = maps.detach().float().flatten(1).argmax(1).cpu()
    return region.gather(1, peak[:, None])[:, 0]


def box_masks(box: tuple[int, int, int, int], n: int, height: int, width: int) -> torch.Tensor:
    """The same rectangular mask on ``n`` images: pixels x0 <= x < x1, y0 <= y < y1.

    Shape:
        → n×height×width bool.
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise NnkitError(f"mask box {x0},{y0},{x1},{y1} must satisfy 0 <= x0 < x1 <= {width} and "
                         f"0 <= y0 < y1 <= {height} (end-exclusive pixel coordinates)")
    mask = torch.zeros(n, height, width, dtype=torch.bool)
    mask[:, y0:y1, x0:x1] = True
    return mask

