"""The embedded default dataset: procedurally generated 32×32 RGB shapes in cluttered, noisy scenes.

Each image holds one small shape of one of ten classes at a random position, size and rotation, in a
random colour, over a textured two-colour background with a few distractor strokes and pixel noise.
Everything is drawn with torch in batches (templates warped with ``affine_grid``/``grid_sample``), so
10,000 + 2,000 images take a few seconds on two CPU cores, and the same seed gives the same pixels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from nnkit.data.base import Dataset, Split
from nnkit.data.options import SHAPES_OPTIONS
from nnkit.data.registry import register

SHAPE_CLASSES = (
    "circle", "square", "triangle", "cross", "ring", "star", "crescent", "heart", "arrow", "tee",
)
IMAGE_SIZE = 32
_TEMPLATE = 64  # template side in pixels; drawn 4× larger and box-filtered for anti-aliasing
_CHUNK = 500  # images rendered per batch: keeps the working set in cache
# Difficulty knobs, tuned so that a small CNN learns the task to >= 95% in 3 epochs while single
# pixels still matter (tests/test_foundation_acceptance.py and the attacks' acceptance test check both).
DIAMETER = (10.0, 18.0)  # object diameter range in pixels
TEXTURE = 0.2  # amplitude of the fine background texture
CONTRAST = 0.3  # minimum luminance difference between object colour and mean background colour
NOISE = (0.02, 0.06)  # per-image Gaussian pixel-noise sigma range
STROKE_P = 0.6  # probability of each of the three clutter strokes
ROTATION = 30.0  # objects are rotated uniformly within ±ROTATION degrees (upright-ish, like photos)


def _polygon(points, scale):
    return [((x + 1) * scale, (y + 1) * scale) for x, y in points]


def _draw_template(name: str) -> np.ndarray:
    """Coverage mask (0..1) of one class, centred and filling the unit disc."""
    big = _TEMPLATE * 4
    s = big / 2  # pixels per unit; the template spans [-1, 1]²
    img = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(img)

    def ellipse(r, fill=255, dx=0.0, dy=0.0):
        d.ellipse([(dx - r + 1) * s, (dy - r + 1) * s, (dx + r + 1) * s, (dy + r + 1) * s], fill=fill)

    if name == "circle":
        ellipse(0.9)
    elif name == "square":
        d.polygon(_polygon([(-0.7, -0.7), (0.7, -0.7), (0.7, 0.7), (-0.7, 0.7)], s), fill=255)
    elif name == "triangle":
        pts = [(0.95 * math.cos(a), 0.95 * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
        d.polygon(_polygon(pts, s), fill=255)
    elif name == "cross":
        d.polygon(_polygon([(-0.9, -0.28), (0.9, -0.28), (0.9, 0.28), (-0.9, 0.28)], s), fill=255)
        d.polygon(_polygon([(-0.28, -0.9), (0.28, -0.9), (0.28, 0.9), (-0.28, 0.9)], s), fill=255)
    elif name == "ring":
        ellipse(0.92)
        ellipse(0.5, fill=0)
    elif name == "star":
        pts = []
        for i in range(10):
            r = 0.95 if i % 2 == 0 else 0.4
            a = -math.pi / 2 + i * math.pi / 5
            pts.append((r * math.cos(a), r * math.sin(a)))
        d.polygon(_polygon(pts, s), fill=255)
    elif name == "crescent":
        ellipse(0.9)
        ellipse(0.75, fill=0, dx=0.42)
    elif name == "heart":
        ellipse(0.42, dx=-0.4, dy=-0.3)
        ellipse(0.42, dx=0.4, dy=-0.3)
        d.polygon(_polygon([(-0.8, -0.12), (0.8, -0.12), (0.0, 0.9)], s), fill=255)
    elif name == "arrow":
        d.polygon(_polygon([(-0.9, -0.18), (0.15, -0.18), (0.15, 0.18), (-0.9, 0.18)], s), fill=255)
        d.polygon(_polygon([(0.1, -0.6), (0.95, 0.0), (0.1, 0.6)], s), fill=255)
    elif name == "tee":
        d.polygon(_polygon([(-0.85, -0.8), (0.85, -0.8), (0.85, -0.38), (-0.85, -0.38)], s), fill=255)
        d.polygon(_polygon([(-0.21, -0.5), (0.21, -0.5), (0.21, 0.9), (-0.21, 0.9)], s), fill=255)
    else:  # pragma: no cover - guarded by SHAPE_CLASSES
        raise ValueError(name)
    img = img.resize((_TEMPLATE, _TEMPLATE), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


@lru_cache(maxsize=1)
def templates() -> torch.Tensor:
    """Class templates as a 10×1×64×64 float tensor of coverage in [0, 1]."""
    return torch.from_numpy(np.stack([_draw_template(n) for n in SHAPE_CLASSES]))[:, None]


def _smooth_noise(g: torch.Generator, n: int, channels: int, cells: int, size: int) -> torch.Tensor:
    """Low-frequency noise: a random cells×cells grid upsampled bilinearly to size×size, in [0, 1]."""
    coarse = torch.rand(n, channels, cells, cells, generator=g)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _colours_apart(g: torch.Generator, base: torch.Tensor, min_luma: float) -> torch.Tensor:
    """Random RGB colours whose luminance differs from ``base``'s (N×3) by at least ``min_luma``.

    Luminance contrast (not just a hue change) keeps the object visible in grey too, as in photos.
    """
    out = torch.rand(base.shape, generator=g)
    for _ in range(30):
        bad = ((out - base) @ _LUMA).abs() < min_luma
        if not bad.any():
            break
        out[bad] = torch.rand(int(bad.sum()), 3, generator=g)
    # Any left after 30 draws get black or white, whichever is further from the background.
    bad = ((out - base) @ _LUMA).abs() < min_luma
    out[bad] = (base[bad] @ _LUMA < 0.5).float()[:, None].expand(-1, 3)
    return out


def _warp(tmpl: torch.Tensor, centre: torch.Tensor, angle: torch.Tensor, half_w: torch.Tensor,
          half_h: torch.Tensor, size: int) -> torch.Tensor:
    """Draw a template (M×1×T×T, spanning [-1, 1]²) rotated, scaled and placed in a size×size frame.

    centre is M×2 in pixels, angle M radians, half_w/half_h M half-extents in pixels.
    Returns M×1×size×size coverage. Bilinear sampling of the large template anti-aliases the edges.
    """
    m = centre.shape[0]
    # Output coords u (normalised to [-1, 1]) map to template coords t = S R (u - c).
    sx, sy = size / 2 / half_w, size / 2 / half_h
    cos, sin = angle.cos(), angle.sin()
    a = torch.stack([torch.stack([cos * sx, -sin * sx], 1), torch.stack([sin * sy, cos * sy], 1)], 1)
    c_n = centre / size * 2 - 1
    theta = torch.cat([a, -(a @ c_n[..., None])], 2)
    grid = F.affine_grid(theta, [m, 1, size, size], align_corners=False)
    return F.grid_sample(tmpl, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


_BAR = torch.ones(1, 1, 8, 8)


def _strokes(g: torch.Generator, n: int, k: int, size: int) -> torch.Tensor:
    """Coverage (N×k×H×W) of k short thin bars per image: the clutter."""
    centre = torch.rand(n * k, 2, generator=g) * size
    angle = torch.rand(n * k, generator=g) * 2 * math.pi
    half_len = 1 + torch.rand(n * k, generator=g) * 2.5
    half_width = 0.35 + torch.rand(n * k, generator=g) * 0.25
    bars = _warp(_BAR.expand(n * k, 1, 8, 8), centre, angle, half_len, half_width, size)
    return bars.view(n, k, size, size)


def render_shapes(labels: torch.Tensor, seed: int, size: int = IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Render one cluttered shape image per label, in cache-sized chunks.

    Args:
        labels: N int64 class indices into SHAPE_CLASSES.
        seed: generator seed; the same labels and seed give the same pixels.
        size: image side in pixels.

    Shape:
        returns images N×3×size×size float32 in [0, 1] and object masks N×size×size bool
        (pixels where the shape covers at least half of the pixel).
    """
    g = torch.Generator().manual_seed(int(seed))
    parts = [_render_chunk(g, labels[i : i + _CHUNK], size) for i in range(0, int(labels.shape[0]), _CHUNK)]
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def _render_chunk(g: torch.Generator, labels: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = int(labels.shape[0])
    # Object geometry: small against the 32 px frame, tilted, anywhere as long as it stays inside.
    diameter = DIAMETER[0] + torch.rand(n, generator=g) * (DIAMETER[1] - DIAMETER[0])
    angle = (torch.rand(n, generator=g) * 2 - 1) * math.radians(ROTATION)
    margin = diameter / 2
    cx = margin + torch.rand(n, generator=g) * (size - 2 * margin)
    cy = margin + torch.rand(n, generator=g) * (size - 2 * margin)
    cover = _warp(templates()[labels], torch.stack([cx, cy], 1), angle, diameter / 2, diameter / 2, size)
    # Background: two colours mixed by smooth noise, plus fine texture.
    bg_a = torch.rand(n, 3, generator=g)
    bg_b = (bg_a + (torch.rand(n, 3, generator=g) - 0.5) * 0.6).clamp(0, 1)
    mix = _smooth_noise(g, n, 1, 4, size)
    background = bg_a[..., None, None] * (1 - mix) + bg_b[..., None, None] * mix
    background = background + (_smooth_noise(g, n, 3, 12, size) - 0.5) * TEXTURE
    fg = _colours_apart(g, (bg_a + bg_b) / 2, CONTRAST)
    # Slight shading across the object keeps colour from being a perfectly flat cue.
    shade = 1 + (_smooth_noise(g, n, 1, 3, size) - 0.5) * 0.3
    img = background * (1 - cover) + (fg[..., None, None] * shade).clamp(0, 1) * cover
    # Clutter: up to three thin strokes in random colours over the scene.
    strokes = _strokes(g, n, 3, size) * (torch.rand(n, 3, 1, 1, generator=g) < STROKE_P)
    stroke_col = torch.rand(n, 3, 3, generator=g)
    alpha = 0.8 * strokes
    for k in range(3):
        ak = alpha[:, k : k + 1]
        img = img * (1 - ak) + stroke_col[:, k, :, None, None] * ak
    sigma = NOISE[0] + torch.rand(n, 1, 1, 1, generator=g) * (NOISE[1] - NOISE[0])
    img = img + torch.randn(img.shape, generator=g) * sigma
    return img.clamp_(0, 1), cover[:, 0] >= 0.5


def balanced_labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    """n labels, classes as balanced as n allows, in a seeded random order."""
    g = torch.Generator().manual_seed(int(seed))
    labels = torch.arange(n) % num_classes
    return labels[torch.randperm(n, generator=g)]


def _split(n: int, seed: int) -> Split:
    labels = balanced_labels(n, len(SHAPE_CLASSES), seed)
    images, _ = render_shapes(labels, seed + 1)
    return Split(images, labels, torch.zeros(n, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool))


@register("shapes", "10 procedurally generated shape classes, 32×32 RGB, cluttered (offline default)",
          offline=True, options=SHAPES_OPTIONS)
def build_shapes(seed: int = 0, n_train: int = 10_000, n_test: int = 2_000) -> Dataset:
    """The ``shapes`` dataset.

    Args:
        seed: dataset seed (train and test are drawn from disjoint sub-seeds of it).
        n_train, n_test: split sizes.

    Returns:
        Dataset with splits "train" and "test", 10 classes (SHAPE_CLASSES).
    """
    splits = {"train": _split(n_train, 1000 * seed + 1), "test": _split(n_test, 1000 * seed + 2)}
    info = {"source": "generated by nnkit.data.shapes", "seed": seed, "n_train": n_train, "n_test": n_test}
    return Dataset("shapes", list(SHAPE_CLASSES), splits, info)
