"""The example grid as a PNG: one image under every corruption (rows) and severity (columns)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw


def grid_uint8(grid: torch.Tensor, pad: int = 2) -> np.ndarray:
    """Tile an example grid into one RGB array with white gaps.

    Args:
        grid: the images (``corruption_examples``); pad: the gap in pixels.

    Returns:
        The tiled uint8 array, grey images repeated into three channels.

    Shape:
        grid R×K×C×H×W in [0, 1] (C = 1 or 3) → (R·(H+pad)+pad)×(K·(W+pad)+pad)×3 uint8.
    """
    r, k, c, h, w = grid.shape
    a = (grid.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    if c == 1:
        a = np.repeat(a, 3, axis=2)
    out = np.full((r * (h + pad) + pad, k * (w + pad) + pad, 3), 255, np.uint8)
    for i in range(r):
        for j in range(k):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = a[i, j].transpose(1, 2, 0)
    return out


def grid_png(grid: torch.Tensor, names: Sequence[str], severities: Sequence[int], zoom: int = 3) -> bytes:
    """The example grid as PNG bytes, enlarged ``zoom`` times (nearest), with corruption names on the left
    and "clean", "1".."5" on top.

    Args:
        grid: the images; names: the corruptions (rows); severities: the columns after "clean"; zoom: enlargement.

    Shape:
        grid R×(1+S)×C×H×W in [0, 1], as ``corruption_examples`` returns.

    Returns:
        The PNG file's bytes.
    """
    arr = grid_uint8(grid)
    img = Image.fromarray(arr).resize((arr.shape[1] * zoom, arr.shape[0] * zoom), Image.NEAREST)
    left, top = 130, 18
    sheet = Image.new("RGB", (img.width + left, img.height + top), "white")
    sheet.paste(img, (left, top))
    draw = ImageDraw.Draw(sheet)
    h, w = grid.shape[-2:]
    pad = 2
    for i, name in enumerate(names):
        draw.text((4, top + zoom * (pad + i * (h + pad)) + zoom * h // 2 - 6), str(name), fill="black")
    for j, label in enumerate(["clean", *map(str, severities)]):
        draw.text((left + zoom * (pad + j * (w + pad)) + 2, 3), label, fill="black")
    buf = io.BytesIO()
    sheet.save(buf, format="PNG")
    return buf.getvalue()
