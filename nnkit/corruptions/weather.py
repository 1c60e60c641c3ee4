"""Weather corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019) that need no photographs: fog.

Severity parameters are those of the paper's released code for 32×32 images (repository
hendrycks/robustness, ``ImageNet-C/create_c/make_cifar_c.py``). Frost blends in photographs of frost that
ship with that code, and snow and spatter lean on ImageMagick and OpenCV effects: they are not here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nnkit.corruptions._util import uniform

FOG = ((0.2, 3.0), (0.5, 3.0), (0.75, 2.5), (1.0, 2.0), (1.5, 1.75))  # (fog strength, wibble decay)


def plasma_fractal(rngs: Sequence[torch.Generator], mapsize: int, wibble_decay: float) -> torch.Tensor:
    """A cloud-like height map per image by the diamond-square algorithm (the paper's ``plasma_fractal``).

    The map starts at 0; each halving of the step fills the centres of the squares and then the diamonds with
    the mean of their four neighbours (wrapping around) plus uniform noise of ±wibble², wibble starting at 100
    and divided by ``wibble_decay`` per step: a larger decay gives smoother fog. Normalised to [0, 1].

    Args:
        rngs: one generator per image; mapsize: a power of two; wibble_decay: as above.

    Shape:
        returns N×mapsize×mapsize float64 on the CPU.
    """
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    like = torch.empty(0, dtype=torch.float64)
    m = torch.zeros(len(rngs), mapsize, mapsize, dtype=torch.float64)
    step, wibble = mapsize, 100.0

    def wibbled_mean(total: torch.Tensor) -> torch.Tensor:
        return total / 4 + wibble * uniform(rngs, -wibble, wibble, total.shape[1:], like)

    while step >= 2:
        half = step // 2
        corners = m[:, 0::step, 0::step]
        squares = corners + corners.roll(-1, dims=1)
        squares = squares + squares.roll(-1, dims=2)
        m[:, half::step, half::step] = wibbled_mean(squares)
        centres = m[:, half::step, half::step]
        corners = m[:, 0::step, 0::step]
        m[:, 0::step, half::step] = wibbled_mean(centres + centres.roll(1, dims=1) + corners + corners.roll(-1, dims=2))
        m[:, half::step, 0::step] = wibbled_mean(centres + centres.roll(1, dims=2) + corners + corners.roll(-1, dims=1))
        step = half
        wibble /= wibble_decay
    m = m - m.amin(dim=(1, 2), keepdim=True)
    return m / m.amax(dim=(1, 2), keepdim=True).clamp(min=1e-12)


def fog(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
    """Fog: a plasma-fractal cloud added to every channel, then the image scaled back towards its range
    (Hendrycks & Dietterich 2019, CIFAR-10-C).

    ``(x + c·cloud) · max(x) / (max(x) + c)`` with (c, wibble decay) = (0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2),
    (1.5, 1.75) for severities 1..5; the cloud is :func:`plasma_fractal` on the smallest power-of-two square that
    covers the image (32 for CIFAR, as in the paper), cropped to the image, one per image.

    Args:
        x: images; severity: 1..5; rngs: one generator per image (the cloud).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The foggy images.
    """
    c, decay = FOG[severity - 1]
    h, w = x.shape[-2:]
    mapsize = 1 << max(1, (max(h, w) - 1).bit_length())
    cloud = plasma_fractal(rngs, mapsize, decay)[:, None, :h, :w].to(device=x.device, dtype=x.dtype)
    top = x.amax(dim=(1, 2, 3), keepdim=True)
    return (x + c * cloud) * top / (top + c)
