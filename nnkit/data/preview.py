"""Looking at a dataset: class counts per split, a sample grid per class, the confounder tag masks.

The dashboard's Data page shows these; they return plain numbers and uint8 RGB arrays (H×W×3) that
any front end (Streamlit, a report, a notebook) can display.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from nnkit.data.base import Dataset, Split
from nnkit.errors import NnkitError


def class_counts(dataset: Dataset) -> dict[str, list[int]]:
    """Images per class in every split.

    Returns:
        ``{split name: [count of class 0, count of class 1, ...]}`` in the dataset's split order.
    """
    k = dataset.num_classes
    return {name: torch.bincount(split.labels.cpu(), minlength=k)[:k].tolist()
            for name, split in dataset.splits.items()}


def to_uint8_image(grid: torch.Tensor, scale: int = 1) -> np.ndarray:
    """A C×H×W [0, 1] tensor (C = 1 or 3) as an H·scale × W·scale × 3 uint8 array (nearest upscaling).

    Nearest upscaling keeps single pixels crisp: browsers blur small images when they stretch them.
    """
    if grid.dim() != 3 or grid.shape[0] not in (1, 3):
        raise NnkitError(f"expected a C×H×W image with 1 or 3 channels, got shape {tuple(grid.shape)}")
    grid = grid.detach().float().cpu().clamp(0, 1)
    if grid.shape[0] == 1:
        grid = grid.expand(3, -1, -1)
    if scale > 1:
        grid = grid.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    return (grid.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def tile(images: torch.Tensor, ncol: int, scale: int = 2, pad: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Lay images out in rows of ``ncol`` (torchvision's ``make_grid``) as one uint8 RGB array.

    Shape:
        images N×C×H×W in [0, 1] → ((H+pad)·rows+pad)·scale × ((W+pad)·ncol+pad)·scale × 3 uint8.
    """
    if images.dim() != 4 or len(images) == 0:
        raise NnkitError("tile needs a non-empty N×C×H×W batch")
    # make_grid turns grey images into 3 channels itself.
    # Imported here: importing torchvision loads torch._dynamo (seconds), which nnkit's start-up does not need.
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu(), nrow=ncol, padding=pad, pad_value=pad_value)
    return to_uint8_image(grid, scale)


def sample_grid(split: Split, num_classes: int, per_class: int = 8, seed: int = 0, scale: int = 2,
                pad: int = 2) -> np.ndarray:
    """A grid with one row per class holding ``per_class`` random images of that class.

    Args:
        split: the split to draw from.
        num_classes: rows in the grid (classes without images give a blank row).
        per_class: images per row.
        seed: which images are drawn (the same seed gives the same grid).
        scale: integer upscaling factor (nearest).
        pad: pixels between cells (before scaling).

    Returns:
        uint8 H×W×3 array; row ``c`` is class ``c``. Use ``grid_row_centres`` to label the rows.
    """
    if len(split) == 0:
        raise NnkitError("this split has no images to show")
    g = torch.Generator().manual_seed(seed)
    c, h, w = split.images.shape[1:]
    cells = []
    for cls in range(num_classes):
        idx = (split.labels == cls).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)[:per_class]]
        row = split.images[idx].float().cpu()
        if len(row) < per_class:  # a rare class: fill with blank (white) cells
            row = torch.cat([row, torch.ones(per_class - len(row), c, h, w)])
        cells.append(row)
    return tile(torch.cat(cells), per_class, scale=scale, pad=pad)


def grid_row_centres(rows: int, cell: int, scale: int = 2, pad: int = 2) -> list[float]:
    """Pixel y-centre of each row of a grid made by ``tile``/``sample_grid`` (for row labels)."""
    return [((pad + r * (cell + pad)) + cell / 2) * scale for r in range(rows)]


def has_tags(dataset: Dataset) -> bool:
    """Whether any image of the dataset carries a confounder tag (a non-empty mask)."""
    return any(s.masks is not None and bool(s.masks.any()) for s in dataset.splits.values())


def tag_mask_grid(split: Split, n: int = 8, seed: int = 0, scale: int = 3, pad: int = 2) -> np.ndarray:
    """Images that carry a confounder tag, their boolean tag masks, and the images dimmed outside the mask.

    Args:
        split: a split with ``masks`` (e.g. the train split of ``shapes-confounded``).
        n: images per row.
        seed: which tagged images are drawn.

    Returns:
        uint8 array of three rows: the images, the masks (white on black), the image with
        everything outside the mask dimmed to 25%.
    """
    if split.masks is None:
        raise NnkitError("this dataset has no confounder masks (only shapes-confounded has them)")
    tagged = split.masks.flatten(1).any(1).nonzero().flatten()
    if len(tagged) == 0:
        raise NnkitError("no image in this split carries a tag")
    g = torch.Generator().manual_seed(seed)
    idx = tagged[torch.randperm(len(tagged), generator=g)[:n]]
    images = split.images[idx].float().cpu()
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    masks = split.masks[idx].cpu().float()[:, None]
    rows = torch.cat([images, masks.expand(-1, 3, -1, -1), images * (0.25 + 0.75 * masks)])
    return tile(rows, len(idx), scale=scale, pad=pad)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 H×W×3 (or H×W) array as PNG bytes (for downloads and reports)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()
