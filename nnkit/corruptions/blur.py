"""Blur corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): gaussian, defocus, motion, zoom.

Severity parameters are those of the paper's released code for 32×32 images (repository
hendrycks/robustness, ``ImageNet-C/create_c/make_cifar_c.py``), which calls skimage, OpenCV, ImageMagick
and scipy; each function here says which of their conventions (kernel size, border) it follows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nnkit.corruptions._util import round_half_down

GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)  # σ in pixels
DEFOCUS_BLUR = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))  # (disk radius, anti-alias σ)
MOTION_BLUR = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))  # ImageMagick (radius, σ); angle U(-45°, 45°)
# Zoom factors 1.00, 1.01, ..., last: numpy's arange(1, 1.06, 0.01) in the paper's code also yields 1.06 (float
# rounding), arange(1, 1.16, 0.01) stops at 1.15; these are the factors it really uses.
ZOOM_BLUR = (1.06, 1.11, 1.15, 1.20, 1.25)


def gaussian_blur(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator] = ()) -> torch.Tensor:
    """Gaussian blur (Hendrycks & Dietterich 2019, CIFAR-10-C extra corruptions).

    σ = 0.4, 0.6, 0.7, 0.8, 1.0 pixels for severities 1..5, kernel taps to ±int(4σ + 0.5) as skimage's
    ``gaussian`` (truncate 4). Through ``torchvision.transforms.v2.functional.gaussian_blur``, whose border
    mirrors (d c b | a b c d) where skimage repeats the edge pixel: only the outermost pixels differ.

    Args:
        x: images; severity: 1..5; rngs: unused (deterministic).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The blurred images.
    """
    sigma = GAUSSIAN_BLUR[severity - 1]
    r = min(int(4 * sigma + 0.5), min(x.shape[-2:]) - 1)  # the mirror padding needs r < side
    # Imported here: importing torchvision loads torch._dynamo (seconds), which nnkit's start-up does not need.
    import torchvision.transforms.v2.functional as TF

    return TF.gaussian_blur(x, [2 * r + 1, 2 * r + 1], [sigma, sigma])


def defocus_kernel(radius: float, alias_blur: float, like: torch.Tensor) -> torch.Tensor:
    """The paper's defocus kernel: a disk of ``radius`` on a 17×17 grid, normalised, then smoothed by a 3×3
    Gaussian of σ ``alias_blur`` (OpenCV ``GaussianBlur``) to anti-alias it; cropped to where it is non-zero.

    Args:
        radius, alias_blur: the paper's (disk radius, anti-alias σ); like: gives the device and dtype.

    Shape:
        returns K×K with K = 2·(floor(radius) + 1) + 1.

    Returns:
        The kernel; it sums to 1.
    """
    half = 8  # the paper's grid for radius <= 8
    t = torch.arange(-half, half + 1, device=like.device, dtype=like.dtype)
    disk = ((t[:, None] ** 2 + t[None, :] ** 2) <= radius**2).to(like.dtype)
    disk = disk / disk.sum()
    g = torch.exp(-(torch.tensor([-1.0, 0.0, 1.0], device=like.device, dtype=like.dtype) ** 2)
                  / (2 * alias_blur**2))
    g = g / g.sum()
    smooth = F.conv2d(disk[None, None], (g[:, None] * g[None, :])[None, None], padding=1)[0, 0]
    keep = int(math.floor(radius)) + 1
    return smooth[half - keep:half + keep + 1, half - keep:half + keep + 1]


def defocus_blur(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator] = ()) -> torch.Tensor:
    """Defocus blur: convolution with an anti-aliased disk (Hendrycks & Dietterich 2019, CIFAR-10-C).

    (radius, anti-alias σ) = (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1) for severities 1..5;
    the border mirrors (d c b | a b c d) as OpenCV's ``filter2D`` default. See :func:`defocus_kernel`.

    Args:
        x: images; severity: 1..5; rngs: unused (deterministic).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The blurred images.
    """
    k = defocus_kernel(*DEFOCUS_BLUR[severity - 1], x)
    r = (k.shape[0] - 1) // 2
    c = x.shape[1]
    padded = F.pad(x, (r, r, r, r), mode="reflect" if r < min(x.shape[-2:]) else "replicate")
    return F.conv2d(padded, k.expand(c, 1, *k.shape).contiguous(), groups=c)  # one kernel per channel


def motion_blur(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
    """Motion blur along a random direction (Hendrycks & Dietterich 2019, CIFAR-10-C).

    As ImageMagick's ``MotionBlurImage`` (which the paper's code calls): a one-sided Gaussian of σ over
    2·⌈radius⌉ + 1 taps, tap i taken i pixels away along the angle (rounded to whole pixels), the edge pixel
    repeated beyond the border. (radius, σ) = (6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5) for severities 1..5;
    angle drawn per image, uniform in [-45°, 45°].

    Args:
        x: images; severity: 1..5; rngs: one generator per image (the angle).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The blurred images.
    """
    radius, sigma = MOTION_BLUR[severity - 1]
    width = 2 * math.ceil(radius) + 1
    angles = [-45.0 + 90.0 * float(torch.rand((), generator=g, dtype=torch.float64)) for g in rngs]
    weights = torch.exp(-torch.arange(width, dtype=torch.float64) ** 2 / (2 * sigma**2))
    weights = (weights / weights.sum()).tolist()
    n, c, h, w = x.shape
    rows0 = torch.arange(h, device=x.device)
    cols0 = torch.arange(w, device=x.device)
    out = torch.zeros_like(x)
    for i in range(width):
        dx = torch.tensor([round_half_down(i * math.cos(math.radians(a))) for a in angles], device=x.device)
        dy = torch.tensor([round_half_down(i * math.sin(math.radians(a))) for a in angles], device=x.device)
        rows = (rows0[None, :] + dy[:, None]).clamp(0, h - 1)
        cols = (cols0[None, :] + dx[:, None]).clamp(0, w - 1)
        shifted = x.gather(2, rows[:, None, :, None].expand(n, c, h, w))
        out = out + weights[i] * shifted.gather(3, cols[:, None, None, :].expand(n, c, h, w))
    return out


def clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre by ``factor`` and keep the input's size (the paper's ``clipped_zoom``).

    The centre ceil(side / factor) pixels are resized to round(that · factor) with linear interpolation
    that maps corner to corner (scipy's ``zoom(order=1)``), and the centre ``side`` pixels kept.

    Args:
        x: images; factor: the zoom, >= 1.

    Shape:
        N×C×H×W → N×C×H×W.

    Returns:
        The zoomed images.
    """
    n, c, h, w = x.shape

    def crop(side: int) -> tuple[int, int, int]:
        ch = math.ceil(side / factor)
        return (side - ch) // 2, ch, int(round(ch * factor))

    top, ch, out_h = crop(h)
    left, cw, out_w = crop(w)
    part = x[:, :, top:top + ch, left:left + cw]
    zoomed = F.interpolate(part, size=(out_h, out_w), mode="bilinear", align_corners=True)
    t, lft = (out_h - h) // 2, (out_w - w) // 2
    return zoomed[:, :, t:t + h, lft:lft + w]


def zoom_blur(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator] = ()) -> torch.Tensor:
    """Zoom blur: the mean of the image and its centre zooms by 1.00, 1.01, ..., z (Hendrycks & Dietterich
    2019, CIFAR-10-C), z = 1.06, 1.11, 1.15, 1.20, 1.25 for severities 1..5 (see ``ZOOM_BLUR``).

    Args:
        x: images; severity: 1..5; rngs: unused (deterministic).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The blurred images.
    """
    steps = int(round((ZOOM_BLUR[severity - 1] - 1.0) / 0.01)) + 1
    out = x.clone()
    for i in range(steps):
        out = out + clipped_zoom(x, 1.0 + 0.01 * i)
    return out / (steps + 1)

