"""Helpers the corruptions share: per-image random streams, symmetric padding, a 1-D Gaussian kernel."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nnkit.seeding import item_seed


def generators(seed: int, keys: Sequence[int]) -> list[torch.Generator]:
    """One CPU generator per image, seeded from (seed, the image's key) with ``nnkit.seeding.item_seed``.

    The draws are made on the CPU and moved to the images' device, so an image gets the same corruption
    whatever its batch, and on the CPU and a GPU alike.
    """
    return [torch.Generator().manual_seed(item_seed(seed, int(k))) for k in keys]


def draw(rngs: Sequence[torch.Generator], fn, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """Stack one draw per image: ``fn(shape, generator=g)`` (``torch.rand``, ``torch.randn``) for each generator.

    Shape:
        returns len(rngs)×shape, on ``like``'s device and dtype.
    """
    out = torch.stack([fn(tuple(shape), generator=g) for g in rngs])
    return out.to(device=like.device, dtype=like.dtype)


def uniform(rngs: Sequence[torch.Generator], low: float, high: float, shape: Sequence[int],
            like: torch.Tensor) -> torch.Tensor:
    """Uniform draws in [low, high), one set per image (see :func:`draw`)."""
    return low + (high - low) * draw(rngs, torch.rand, shape, like)


def symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """Pad the last two dimensions by ``r`` mirroring about the edge (d c b a | a b c d).

    scipy's and skimage's ``mode="reflect"``; ``F.pad(mode="reflect")`` is the other mirror (d c b | a b c d).
    Works for any ``r`` (the pattern repeats with period 2·size).
    """
    def index(n: int) -> torch.Tensor:
        i = torch.arange(-r, n + r, device=x.device) % (2 * n)
        return torch.where(i < n, i, 2 * n - 1 - i)

    return x[..., index(x.shape[-2])[:, None], index(x.shape[-1])[None, :]]


def gaussian_kernel1d(sigma: float, truncate: float, like: torch.Tensor) -> torch.Tensor:
    """scipy's Gaussian: taps at -r..r with r = int(truncate·σ + 0.5), normalised to sum 1."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, device=like.device, dtype=like.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_filter(x: torch.Tensor, sigma: float, truncate: float = 4.0, mode: str = "reflect") -> torch.Tensor:
    """skimage's ``gaussian(x, sigma, mode=mode, truncate=truncate)`` on the last two dimensions.

    Args:
        mode: "reflect" (mirror about the edge, d c b a | a b c d) or "nearest" (repeat the edge pixel).

    Shape:
        x: N×C×H×W → the same.
    """
    k = gaussian_kernel1d(sigma, truncate, x)
    r = (len(k) - 1) // 2
    c = x.shape[1]
    padded = symmetric_pad(x, r) if mode == "reflect" else F.pad(x, (r, r, r, r), mode="replicate")
    out = F.conv2d(padded, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)
    return F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)


def round_half_down(v: float) -> int:
    """``ceil(v - 0.5)``: the rounding ImageMagick uses for its motion-blur offsets."""
    return int(math.ceil(v - 0.5))
