"""Images for style transfer: the built-in procedural content and style images, and file I/O.

nnkit ships no photographs and downloads none: the default content image is a small landscape drawn
with PIL, and the styles are procedural textures (numpy), all deterministic. User images are read
with PIL and resized so that their longer side is ``size``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, UnidentifiedImageError

from nnkit.atomic import write_bytes
from nnkit.errors import NnkitError

CONTENTS = ("landscape",)
STYLES = ("waves", "mosaic", "strokes")
DEFAULT_CONTENT = "landscape"
DEFAULT_STYLE = "waves"


def _to_tensor(pil: Image.Image) -> torch.Tensor:
    array = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def _from_array(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.clip(rgb, 0, 1).astype(np.float32)).permute(2, 0, 1)[None].contiguous()


def _landscape(size: int) -> torch.Tensor:
    """A sunny landscape: sky gradient, sun, two mountain ranges, a house with a roof, a tree, a meadow."""
    s = 4 * size  # drawn large, then down-sampled: anti-aliased edges
    rng = np.random.default_rng(7)
    y = np.linspace(0, 1, s)[:, None, None]
    sky = (1 - y) * np.array([0.35, 0.6, 0.95]) + y * np.array([0.85, 0.92, 1.0])
    img = Image.fromarray((np.broadcast_to(sky, (s, s, 3)) * 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    d.ellipse([0.72 * s, 0.08 * s, 0.88 * s, 0.24 * s], fill=(255, 214, 70))
    x = np.linspace(0, 1, 64)
    for base, amp, colour, phase in ((0.45, 0.12, (110, 120, 150), 0.3), (0.58, 0.08, (70, 120, 80), 2.0)):
        ridge = base - amp * (np.sin(7 * x + phase) * 0.6 + np.sin(17 * x + 2 * phase) * 0.3 + rng.normal(0, 0.05, 64))
        d.polygon([(0, s)] + [(xi * s, ri * s) for xi, ri in zip(x, ridge)] + [(s, s)], fill=colour)
    d.rectangle([0, 0.72 * s, s, s], fill=(90, 160, 70))
    d.rectangle([0.2 * s, 0.55 * s, 0.5 * s, 0.8 * s], fill=(200, 80, 60))  # house
    d.polygon([(0.17 * s, 0.56 * s), (0.35 * s, 0.4 * s), (0.53 * s, 0.56 * s)], fill=(120, 50, 40))
    d.rectangle([0.31 * s, 0.65 * s, 0.39 * s, 0.8 * s], fill=(90, 60, 30))  # door
    for wx in (0.23, 0.42):
        d.rectangle([wx * s, 0.6 * s, (wx + 0.06) * s, 0.66 * s], fill=(250, 240, 160))
    d.rectangle([0.7 * s, 0.58 * s, 0.74 * s, 0.82 * s], fill=(100, 70, 40))  # tree
    d.ellipse([0.61 * s, 0.4 * s, 0.83 * s, 0.64 * s], fill=(40, 110, 50))
    return _to_tensor(img.resize((size, size), Image.LANCZOS))


def _palette(t: np.ndarray, a, b, c, d) -> np.ndarray:
    """Cosine colour palette a + b·cos(2π(c·t + d)) (Quilez), t H×W → H×W×3."""
    return np.asarray(a) + np.asarray(b) * np.cos(2 * np.pi * (np.asarray(c) * t[..., None] + np.asarray(d)))


def _waves(size: int) -> torch.Tensor:
    """Swirling bands: sines on domain-warped coordinates, coloured with a bright cosine palette."""
    v, u = np.mgrid[0:1:complex(size), 0:1:complex(size)]
    wu = u + 0.15 * np.sin(6 * np.pi * v + 2 * np.sin(4 * np.pi * u))
    wv = v + 0.15 * np.sin(5 * np.pi * u + 2 * np.cos(3 * np.pi * v))
    t = 0.5 + 0.5 * np.sin(9 * np.pi * wu + 4 * np.sin(3 * np.pi * wv)) * np.cos(4 * np.pi * wv)
    rgb = _palette(t, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), (0.0, 0.33, 0.67))
    # Fine stripes across the bands: a second scale of texture for the lower VGG layers.
    rgb *= (0.85 + 0.15 * np.sin(60 * np.pi * (wu + wv)))[..., None]
    return _from_array(rgb)


def _mosaic(size: int) -> torch.Tensor:
    """Stained glass: Voronoi cells in saturated colours with dark lead lines between them."""
    rng = np.random.default_rng(3)
    n = 90
    pts = rng.random((n, 2))
    colours = _palette(rng.random(n), (0.55, 0.45, 0.45), (0.45, 0.45, 0.5), (1.0, 1.0, 1.0), (0.0, 0.15, 0.2))
    v, u = np.mgrid[0:1:complex(size), 0:1:complex(size)]
    dist = (u[..., None] - pts[:, 0]) ** 2 + (v[..., None] - pts[:, 1]) ** 2  # H×W×n
    two = np.partition(dist, 1, axis=-1)[..., :2]
    nearest = dist.argmin(-1)
    edge = (np.sqrt(two[..., 1]) - np.sqrt(two[..., 0])) < 0.012
    rgb = colours[nearest]
    rgb[edge] = 0.08
    return _from_array(rgb)


def _strokes(size: int) -> torch.Tensor:
    """Brush strokes: many short, thick, slanted lines in warm and cool colours over a light ground."""
    rng = np.random.default_rng(11)
    s = 2 * size
    img = Image.new("RGB", (s, s), (235, 225, 200))
    d = ImageDraw.Draw(img)
    for _ in range(900):
        x, y = rng.random(2) * s
        angle = rng.normal(0.8, 0.35)
        length = rng.uniform(0.03, 0.09) * s
        colour = tuple(int(255 * c) for c in _palette(np.array(rng.random()), (0.5, 0.4, 0.4), (0.5, 0.4, 0.4),
                                                      (1.0, 1.0, 1.0), (0.05, 0.25, 0.55)).clip(0, 1))
        d.line([(x, y), (x + length * np.cos(angle), y + length * np.sin(angle))], fill=colour,
               width=max(2, int(s * 0.012)))
    img = img.filter(ImageFilter.GaussianBlur(radius=0.6))
    return _to_tensor(img.resize((size, size), Image.LANCZOS))


_BUILDERS = {"landscape": _landscape, "waves": _waves, "mosaic": _mosaic, "strokes": _strokes}


def builtin_image(name: str, size: int = 256) -> torch.Tensor:
    """A built-in image by name: ``landscape`` (content) or ``waves``, ``mosaic``, ``strokes`` (styles).

    Shape:
        → 1×3×size×size in [0, 1].
    """
    if name not in _BUILDERS:
        raise NnkitError(f"unknown built-in image {name!r}: choose one of {', '.join(_BUILDERS)}")
    if size < 16:
        raise NnkitError(f"image size must be at least 16 pixels, got {size}")
    return _BUILDERS[name](int(size))


def resize_longer(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (antialiased bilinear) so that the longer side is ``size``, keeping the aspect ratio.

    Shape:
        1×3×H×W → 1×3×h×w with max(h, w) == size.
    """
    h, w = image.shape[-2:]
    scale = size / max(h, w)
    new = (max(1, round(h * scale)), max(1, round(w * scale)))
    if new == (h, w):
        return image
    return torch.nn.functional.interpolate(image, size=new, mode="bilinear", antialias=True,
                                           align_corners=False).clamp(0, 1)


def load_image(source: str | Path, size: int = 256) -> torch.Tensor:
    """An image file (PNG, JPEG, ...) or a built-in image name, as RGB with its longer side ``size``.

    Args:
        source: a path, or a built-in name (``landscape``, ``waves``, ``mosaic``, ``strokes``) when no
            file of that name exists.
        size: length of the longer side in pixels.

    Shape:
        → 1×3×H×W in [0, 1].
    """
    path = Path(source)
    if not path.is_file():
        if str(source) in _BUILDERS:
            return builtin_image(str(source), size)
        raise NnkitError(f"{source}: no such image file (built-in images: {', '.join(_BUILDERS)})")
    if size < 16:
        raise NnkitError(f"image size must be at least 16 pixels, got {size}")
    try:
        with Image.open(path) as pil:
            image = _to_tensor(pil)
    except (UnidentifiedImageError, OSError) as exc:
        raise NnkitError(f"{path}: not a readable image ({type(exc).__name__})") from None
    return resize_longer(image, size)


def png_bytes(image: torch.Tensor) -> bytes:
    """PNG bytes of a 1×3×H×W (or 3×H×W) image in [0, 1]."""
    if image.ndim == 4:
        image = image[0]
    array = image.detach().float().cpu().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write ``image`` (1×3×H×W in [0, 1]) as a PNG atomically; returns the path."""
    return write_bytes(path, png_bytes(image))
