"""Pictures of an attack: where it changed the image, a before/after PNG sheet, per-image views for a front end.

The CLI's ``--out`` sheet, the dashboard's Attack page and the report draw from these, so a changed
pixel or a placed patch is outlined the same way everywhere. Nothing here runs the model.

Marks are in continuous image coordinates: ``x`` is the column and ``y`` the row, and pixel (r, c)
covers the unit square ``[c, c + 1] × [r, r + 1]``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from attacks.base import AttackResult

EXAMPLES = 8  # before/after pairs on a sheet when no images are picked
ZOOM = 8  # PNG pixels per image pixel


def to_pil(image: torch.Tensor, mask: torch.Tensor | None = None, zoom: int = ZOOM) -> Image.Image:
    """An image tensor as a PIL image enlarged ``zoom`` times without smoothing.

    Args:
        image: C×H×W in [0, 1] (C = 1 or 3).
        mask: H×W bool; pixels outside it become transparent (e.g. a circular patch).
        zoom: PNG pixels per image pixel.

    Returns:
        An "L"/"RGB" image, or "RGBA" with a mask.
    """
    a = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    if mask is not None:
        alpha = mask.cpu().numpy().astype(np.uint8) * 255
        rgb = np.repeat(a[..., None], 3, 2) if a.ndim == 2 else a
        img = Image.fromarray(np.concatenate([rgb, alpha[..., None]], 2), "RGBA")
    else:
        img = Image.fromarray(a)
    return img.resize((img.width * zoom, img.height * zoom), Image.Resampling.NEAREST)


def png_bytes(image: Image.Image) -> bytes:
    """A PIL image encoded as PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def rgb_uint8(image: torch.Tensor) -> np.ndarray:
    """C×H×W in [0, 1] (C = 1 or 3) → H×W×3 uint8, the way the sheets round it."""
    a = (image.detach().float().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    a = a.transpose(1, 2, 0)
    return np.ascontiguousarray(np.repeat(a, 3, 2) if a.shape[2] == 1 else a)


def perturbation_marks(result: AttackResult, i: int) -> list[dict]:
    """Outlines of what the attack changed in image ``i`` (none for an image it did not attack).

    One-pixel (Su et al. 2019): one ``rect`` per changed pixel. Local patch (LaVAN, Karmon et al. 2018):
    the patch box as a ``rect`` (square patch) or ``circle``. Universal patch (Brown et al. 2017): the
    placed patch, rotated, as a ``path`` through its four corners (square) or a ``circle``.

    Args:
        result: what an attack returned.
        i: the image's index in the result.

    Returns:
        ``[{"type": "rect"|"circle", "x0", "y0", "x1", "y1"}, {"type": "path", "points": [[x, y], ...]}, ...]``
        in image coordinates (x = column, y = row; pixel (r, c) spans [c, c+1] × [r, r+1]).
    """
    if not bool(result.attacked[i]):
        return []
    pert = result.perturbation
    shape = result.params.get("shape", "square")
    if "pixels" in pert:
        rows_cols = sorted({(int(r), int(c)) for r, c in pert["pixels"][i].tolist() if r >= 0})
        return [{"type": "rect", "x0": c, "y0": r, "x1": c + 1, "y1": r + 1} for r, c in rows_cols]
    if "position" in pert and "mask" in result.shared:
        top, left = (int(v) for v in pert["position"][i].tolist())
        if top < 0:
            return []
        s = int(result.shared["mask"].shape[0])
        return [{"type": "circle" if shape == "circle" else "rect", "x0": left, "y0": top, "x1": left + s,
                 "y1": top + s}]
    if "centre" in pert and "mask" in result.shared:
        cx, cy = (float(v) for v in pert["centre"][i].tolist())
        if math.isnan(cx):
            return []
        half = result.shared["mask"].shape[0] / 2
        if shape == "circle":
            return [{"type": "circle", "x0": cx - half, "y0": cy - half, "x1": cx + half, "y1": cy + half}]
        a = float(pert["angle"][i]) if "angle" in pert else 0.0
        cos, sin = math.cos(a), math.sin(a)
        # warp_patch maps patch offset (u, v) to image offset R(angle)·(u, v) around the centre.
        corners = [(-half, -half), (half, -half), (half, half), (-half, half)]
        return [{"type": "path", "points": [[cx + cos * u - sin * v, cy + sin * u + cos * v] for u, v in corners]}]
    return []


def _draw_marks(draw: ImageDraw.ImageDraw, marks: list[dict], x0: int, y0: int, zoom: int) -> None:
    for m in marks:
        if m["type"] == "path":
            pts = [(x0 + x * zoom, y0 + y * zoom) for x, y in m["points"]]
            draw.line(pts + pts[:1], fill="red", width=2)
            continue
        box = [x0 + m["x0"] * zoom - 2, y0 + m["y0"] * zoom - 2, x0 + m["x1"] * zoom + 1, y0 + m["y1"] * zoom + 1]
        if m["type"] == "circle":
            draw.ellipse(box, outline="red", width=2)
        else:
            draw.rectangle(box, outline="red", width=2)


def examples_sheet(result: AttackResult, clean: torch.Tensor, class_names: Sequence[str],
                   picks: Sequence[int] | None = None, mark_patches: bool = False) -> Image.Image:
    """A PNG-ready sheet: one row per image, clean | adversarial, prediction and confidence underneath.

    Args:
        result: what the attack returned.
        clean: N×C×H×W, the images given to the attack.
        class_names: the class names.
        picks: rows to show, in order (default: up to 8 attacked images, fooled ones first).
        mark_patches: outline patches too (changed pixels are always outlined).

    Returns:
        An RGB PIL image.
    """
    if picks is None:
        attacked = result.attacked.nonzero()[:, 0].tolist()
        order = [i for i in attacked if result.success[i]] + [i for i in attacked if not result.success[i]]
        picks = order[:EXAMPLES] or list(range(min(EXAMPLES, len(result))))
    picks = list(picks)
    h, w = result.images.shape[2:]
    cell_w, cell_h, text_h = w * ZOOM, h * ZOOM, 30
    sheet = Image.new("RGB", (2 * cell_w + 30, max(1, len(picks)) * (cell_h + text_h) + 10), "white")
    draw = ImageDraw.Draw(sheet)
    pixels = result.perturbation.get("pixels")

    def name(k: int) -> str:
        return class_names[k] if k < len(class_names) else str(k)

    for row, i in enumerate(picks):
        y0 = row * (cell_h + text_h) + 5
        panels = ((clean[i], result.probs_before[i], "clean"),
                  (result.images[i], result.probs_after[i], "fooled" if result.success[i] else "failed"))
        for col, (img, probs, caption) in enumerate(panels):
            x0 = 10 + col * (cell_w + 10)
            sheet.paste(to_pil(img).convert("RGB"), (x0, y0))
            draw.text((x0, y0 + cell_h + 4), f"{caption}: {name(int(probs.argmax()))} {float(probs.max()):.2f}",
                      fill="black")
            if col == 1 and pixels is not None:
                for r, c in pixels[i].tolist():  # outline every changed pixel
                    if r >= 0:
                        draw.rectangle([x0 + c * ZOOM - 2, y0 + r * ZOOM - 2, x0 + (c + 1) * ZOOM + 1,
                                        y0 + (r + 1) * ZOOM + 1], outline="red", width=2)
            elif col == 1 and mark_patches:
                _draw_marks(draw, perturbation_marks(result, i), x0, y0, ZOOM)
    return sheet


def example_views(result: AttackResult, clean: torch.Tensor, indices: Sequence[int] | None = None) -> list[dict]:
    """Plain-data views of each attacked image for a front end (numpy images, lists, no tensors).

    Args:
        result: what the attack returned for N images.
        clean: N×C×H×W, the images given to the attack.
        indices: each image's index in its split (default 0..N-1), for captions.

    Shape:
        ``before`` and ``after`` are H×W×3 uint8; ``probs_before`` / ``probs_after`` K floats.

    Returns:
        One dict per image: index, label, target (or None), before, after, probs_before, probs_after,
        pred_before, pred_after, conf_before, conf_after, attacked, success, queries, marks
        (:func:`perturbation_marks`) and status ("fooled", "failed" or "not attacked").
    """
    indices = list(range(len(result))) if indices is None else [int(i) for i in indices]
    views = []
    for i in range(len(result)):
        attacked, success = bool(result.attacked[i]), bool(result.success[i])
        views.append({
            "index": indices[i], "label": int(result.labels[i]),
            "target": None if result.targets is None else int(result.targets[i]),
            "before": rgb_uint8(clean[i]), "after": rgb_uint8(result.images[i]),
            "probs_before": result.probs_before[i].tolist(), "probs_after": result.probs_after[i].tolist(),
            "pred_before": int(result.pred_before[i]), "pred_after": int(result.pred_after[i]),
            "conf_before": float(result.conf_before[i]), "conf_after": float(result.conf_after[i]),
            "attacked": attacked, "success": success, "queries": int(result.queries[i]),
            "marks": perturbation_marks(result, i),
            "status": "fooled" if success else ("failed" if attacked else "not attacked"),
        })
    return views
