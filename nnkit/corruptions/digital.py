"""Digital and geometric corruptions of CIFAR-10-C (Hendrycks & Dietterich, ICLR 2019): contrast, brightness,
JPEG, pixelate, elastic transform.

Severity parameters are those of the paper's released code for 32×32 images (repository
hendrycks/robustness, ``ImageNet-C/create_c/make_cifar_c.py``); sizes given there in pixels of a 32-pixel
image scale with the image here. Each function says where it follows a library the paper's code called.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nnkit.corruptions._util import gaussian_filter, uniform

CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # factor towards the per-channel mean
BRIGHTNESS = (0.05, 0.1, 0.15, 0.2, 0.3)  # added to V of HSV
JPEG_QUALITY = (80, 65, 58, 50, 40)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)  # side of the small image / side
# (alpha, sigma, affine) as fractions of the side (the paper writes them as multiples of IMSIZE = 32).
ELASTIC = ((0.0, 0.0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05), (0.1, 0.03, 0.03))


def contrast(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator] = ()) -> torch.Tensor:
    """Lower contrast: ``(x - m)·c + m`` with m each channel's mean over the image (Hendrycks & Dietterich
    2019, CIFAR-10-C), c = 0.75, 0.5, 0.4, 0.3, 0.15 for severities 1..5.

    Not ``torchvision``'s ``adjust_contrast``, which blends towards the mean of the grey image: the paper
    keeps each channel's own mean.

    Args:
        x: images; severity: 1..5; rngs: unused (deterministic).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The corrupted images.
    """
    c = CONTRAST[severity - 1]
    mean = x.mean(dim=(-2, -1), keepdim=True)
    return (x - mean) * c + mean


def brightness(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator] = ()) -> torch.Tensor:
    """Brighter: c added to V of HSV, clipped to 1 (Hendrycks & Dietterich 2019, CIFAR-10-C), c = 0.05, 0.1,
    0.15, 0.2, 0.3 for severities 1..5.

    Computed without the round trip through HSV, with the same result: for a fixed hue and saturation the RGB
    values are proportional to V, so every channel is scaled by V'/V (V = the largest channel); a black pixel
    (V = 0, saturation 0) becomes grey V'. A 1-channel image is its own V. Not ``torchvision``'s
    ``adjust_brightness``, which multiplies instead of adding to V.

    Args:
        x: images; severity: 1..5; rngs: unused (deterministic).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The corrupted images.
    """
    c = BRIGHTNESS[severity - 1]
    v = x.amax(dim=1, keepdim=True)
    v_new = (v + c).clamp(max=1.0)
    scaled = x * (v_new / v.clamp(min=torch.finfo(x.dtype).tiny))
    return torch.where(v > 0, scaled, v_new.expand_as(x))


def jpeg_compression(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator] = ()) -> torch.Tensor:
    """JPEG compression at quality 80, 65, 58, 50, 40 for severities 1..5 (Hendrycks & Dietterich 2019,
    CIFAR-10-C), encoded and decoded with PIL as the paper's code does, one image at a time on the CPU.

    The images are rounded to 8 bits first, as a saved image would be. (``torchvision``'s ``jpeg`` would batch
    this, but its image codecs are deprecated since torchvision 0.29 and warn on every call.)

    Args:
        x: images; severity: 1..5; rngs: unused (deterministic).

    Shape:
        N×C×H×W in [0, 1] (C = 1 or 3) → N×C×H×W.

    Returns:
        The decoded images.
    """
    quality = JPEG_QUALITY[severity - 1]
    as_bytes = (x.detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    out = []
    for a in as_bytes:
        buf = io.BytesIO()
        Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        out.append(np.asarray(Image.open(buf)).reshape(a.shape))
    decoded = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).to(torch.float32) / 255
    return decoded.to(device=x.device, dtype=x.dtype)


@lru_cache(maxsize=64)
def box_resample_matrix(size_in: int, size_out: int) -> np.ndarray:
    """PIL's ``Image.resize(..., Image.BOX)`` along one axis as a size_out×size_in matrix.

    PIL's rule: output pixel i is centred at (i + 0.5)·scale in the input (scale = size_in / size_out); with
    support 0.5·max(scale, 1) it averages, with equal weights, the input pixels whose centres fall in
    (centre - 0.5·max(scale, 1), centre + 0.5·max(scale, 1)] after PIL's rounding of the window.

    Args:
        size_in, size_out: the axis's length before and after.

    Returns:
        The size_out×size_in float64 matrix; each row sums to 1.
    """
    scale = size_in / size_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    m = np.zeros((size_out, size_in))
    for i in range(size_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), size_in)
        for j in range(lo, hi):
            t = (j - centre + 0.5) / filterscale
            m[i, j] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = m[i].sum()
        if total:
            m[i] /= total
    return m


def _resize_box(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    rows = torch.as_tensor(box_resample_matrix(x.shape[-2], h), device=x.device, dtype=x.dtype)
    cols = torch.as_tensor(box_resample_matrix(x.shape[-1], w), device=x.device, dtype=x.dtype)
    return torch.einsum("ih,nchw,jw->ncij", rows, x, cols)


def pixelate(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator] = ()) -> torch.Tensor:
    """Pixelate: down to int(side·c) pixels and back up, both with PIL's BOX filter (Hendrycks & Dietterich
    2019, CIFAR-10-C), c = 0.95, 0.9, 0.85, 0.75, 0.65 for severities 1..5.

    PIL's BOX resampling is written out as two matrices (:func:`box_resample_matrix`), so it runs batched on
    any device and on images of any size; PIL's own resize is the reference in the tests.

    Args:
        x: images; severity: 1..5; rngs: unused (deterministic).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The pixelated images.
    """
    c = PIXELATE[severity - 1]
    h, w = x.shape[-2:]
    small = _resize_box(x, max(1, int(h * c)), max(1, int(w * c)))
    return _resize_box(small, h, w)


def _affine_matrices(n: int, h: int, w: int, jitter: torch.Tensor) -> torch.Tensor:
    """Per image, the affine map (OpenCV ``getAffineTransform``) taking the paper's three anchor points to
    themselves plus ``jitter``.

    Shape:
        jitter N×3×2 (x, y) → N×2×3 float64.
    """
    centre = np.array([h, w], dtype=np.float32) // 2
    square = min(h, w) // 3
    anchors = np.array([centre + square, [centre[0] + square, centre[1] - square], centre - square], np.float32)
    src = torch.as_tensor(anchors, dtype=torch.float64)
    dst = src[None] + jitter.to(torch.float64)
    a = torch.cat([src, torch.ones(3, 1, dtype=torch.float64)], dim=1)  # 3×3: [x, y, 1] per anchor
    return torch.linalg.solve(a[None].expand(n, 3, 3), dst).transpose(1, 2)  # N×2×3


def elastic_transform(x: torch.Tensor, severity: int, rngs: Sequence[torch.Generator]) -> torch.Tensor:
    """Elastic transform: a random affine warp, then a smooth random displacement field (Hendrycks &
    Dietterich 2019, CIFAR-10-C; after Simard et al. 2003).

    Per severity (alpha, sigma, affine) = (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05), (0.1, 0.03, 0.03), each times the side (the paper: times 32). The warp moves three
    anchor points by U(-affine, affine) pixels each and is sampled bilinearly with a mirrored border
    (OpenCV ``warpAffine``, ``BORDER_REFLECT_101``, whose 1/32-pixel fixed point is not reproduced); the
    displacement per axis is U(-1, 1) noise smoothed by a Gaussian of σ = sigma (truncate 3, mirrored border)
    times alpha, applied bilinearly with a mirrored border (scipy ``map_coordinates(order=1, mode="reflect")``).
    Not ``torchvision``'s ``elastic``, which takes one field for the whole batch and fills the border.

    Args:
        x: images; severity: 1..5; rngs: one generator per image (the warp and the field).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W.

    Returns:
        The warped images.
    """
    n, c, h, w = x.shape
    size = min(h, w)
    alpha, sigma, affine = (v * size for v in ELASTIC[severity - 1])
    cpu = torch.empty(0, dtype=torch.float32)
    jitter = uniform(rngs, -affine, affine, (3, 2), cpu)
    field = uniform(rngs, -1.0, 1.0, (2, h, w), cpu)  # dx, dy per image; drawn even when alpha is 0
    inverse = torch.linalg.inv(torch.cat([_affine_matrices(n, h, w, jitter),
                                          torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(n, 1, 3)], 1))
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    pts = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).reshape(-1, 3)  # (x, y, 1) per pixel
    src = torch.einsum("nij,pj->npi", inverse[:, :2], pts).reshape(n, h, w, 2)
    grid = torch.stack([2 * src[..., 0] / max(w - 1, 1) - 1, 2 * src[..., 1] / max(h - 1, 1) - 1], dim=-1)
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    warped = F.grid_sample(work, grid.to(device=x.device, dtype=work.dtype), mode="bilinear",
                           padding_mode="reflection", align_corners=True)
    if alpha == 0:
        return warped.to(x.dtype)
    disp = gaussian_filter(field.to(torch.float64), sigma, truncate=3.0) * alpha  # N×2×H×W: dx, dy
    sx = xs[None] + disp[:, 0]
    sy = ys[None] + disp[:, 1]
    grid = torch.stack([(2 * sx + 1) / w - 1, (2 * sy + 1) / h - 1], dim=-1)
    out = F.grid_sample(warped, grid.to(device=x.device, dtype=work.dtype), mode="bilinear",
                        padding_mode="reflection", align_corners=False)
    return out.to(x.dtype)
