"""Noise corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): gaussian, shot, impulse, speckle.

Severity parameters are those of the paper's released code for 32×32 images (repository
hendrycks/robustness, ``ImageNet-C/create_c/make_cifar_c.py``). Every function takes N×C×H×W float images
in [0, 1], a severity 1..5 and one CPU generator per image, and returns unclamped images (``corrupt``
clamps them to [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nnkit.corruptions._util import draw

GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # standard deviation c
SHOT_NOISE = (500, 250, 100, 75, 50)  # photons per unit intensity c
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # share of values flipped to 0 or 1
SPECKLE_NOISE = (0.06, 0.10, 0.12, 0.16, 0.20)  # standard deviation of the multiplicative noise


def gaussian_noise(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
    """Additive Gaussian noise, independent per value (Hendrycks & Dietterich 2019, CIFAR-10-C).

    ``x + N(0, c²)`` with c = 0.04, 0.06, 0.08, 0.09, 0.10 for severities 1..5.

    Args:
        x: images; severity: 1..5; rngs: one generator per image.

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The noisy images (clamped by ``corrupt``).
    """
    return x + GAUSSIAN_NOISE[severity - 1] * draw(rngs, torch.randn, x.shape[1:], x)


def shot_noise(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
    """Poisson (photon) noise (Hendrycks & Dietterich 2019, CIFAR-10-C).

    ``Poisson(c·x) / c`` with c = 500, 250, 100, 75, 50 for severities 1..5: fewer photons, more noise.

    Args:
        x: images; severity: 1..5; rngs: one generator per image.

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The noisy images.
    """
    c = SHOT_NOISE[severity - 1]
    rate = (x.detach().float().cpu() * c).clamp(min=0)
    counts = torch.stack([torch.poisson(rate[i], generator=g) for i, g in enumerate(rngs)])
    return counts.to(device=x.device, dtype=x.dtype) / c


def impulse_noise(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
    """Salt-and-pepper noise (Hendrycks & Dietterich 2019, CIFAR-10-C; skimage ``random_noise(mode="s&p")``).

    Each value (each channel of each pixel) is replaced with probability c = 0.01, 0.02, 0.03, 0.05, 0.07
    (severities 1..5), by 1 or 0 with equal odds.

    Args:
        x: images; severity: 1..5; rngs: one generator per image.

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The noisy images.
    """
    c = IMPULSE_NOISE[severity - 1]
    u = draw(rngs, torch.rand, x.shape[1:], x)
    out = torch.where(u < c / 2, torch.ones_like(x), x)
    return torch.where((u >= c / 2) & (u < c), torch.zeros_like(x), out)


def speckle_noise(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
    """Multiplicative Gaussian noise (Hendrycks & Dietterich 2019, CIFAR-10-C extra corruptions).

    ``x + x·N(0, c²)`` with c = 0.06, 0.10, 0.12, 0.16, 0.20 for severities 1..5.

    Args:
        x: images; severity: 1..5; rngs: one generator per image.

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The noisy images.
    """
    return x + x * SPECKLE_NOISE[severity - 1] * draw(rngs, torch.randn, x.shape[1:], x)
