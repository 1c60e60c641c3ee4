"""``folder:PATH`` datasets: the user's own images, one sub-folder per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from nnkit.data.base import Dataset, Split
from nnkit.errors import NnkitError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _class_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_classes(path: Path, size: int, channels: int, class_names=None):
    dirs = _class_dirs(path)
    if not dirs:
        raise NnkitError(f"{path}: no class sub-folders (expected one folder of images per class)")
    names = [d.name for d in dirs]
    if class_names is not None and names != class_names:
        raise NnkitError(f"{path}: classes {names} differ from the train classes {class_names}")
    if len(dirs) < 2:
        raise NnkitError(f"{path}: only one class ({dirs[0].name}); a classifier needs at least two")
    images, labels = [], []
    mode = "L" if channels == 1 else "RGB"
    for label, d in enumerate(dirs):
        files = sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise NnkitError(f"{d}: no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        for f in files:
            try:
                with Image.open(f) as im:
                    im = im.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
                    arr = np.asarray(im, dtype=np.uint8)
            except (UnidentifiedImageError, OSError, ValueError) as exc:
                raise NnkitError(f"{f}: unreadable image ({type(exc).__name__})") from None
            images.append(arr if arr.ndim == 3 else arr[..., None])
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return names, Split(x, torch.tensor(labels, dtype=torch.int64))


def _stratified(split: Split, test_fraction: float, seed: int) -> tuple[Split, Split]:
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in split.labels.unique():
        idx = (split.labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = max(1, round(len(idx) * test_fraction)) if len(idx) > 1 else 0
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return split.subset(torch.cat(train_idx)), split.subset(torch.cat(test_idx))


def build_folder(path: str, size: int = 32, channels: int = 3, test_fraction: float = 0.2,
                 seed: int = 0) -> Dataset:
    """Read an image folder as a Dataset.

    Args:
        path: a folder with one sub-folder per class, or with ``train/`` and ``test/`` folders that
            each hold the class sub-folders (then they are the splits).
        size: images are resized to size×size.
        channels: 3 (RGB) or 1 (grey).
        test_fraction: share of each class held out as the test split (seeded, stratified) when
            the folder has no ``train/``/``test/``.
        seed: the split's seed.

    Returns:
        Dataset named ``folder:PATH`` with splits train and test.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise NnkitError(f"folder dataset {path!r}: not a folder")
    if channels not in (1, 3):
        raise NnkitError(f"channels must be 1 or 3, got {channels}")
    if not 0 < test_fraction < 1:
        raise NnkitError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    if (root / "train").is_dir() and (root / "test").is_dir():
        names, train = _read_classes(root / "train", size, channels)
        _, test = _read_classes(root / "test", size, channels, class_names=names)
    else:
        names, everything = _read_classes(root, size, channels)
        train, test = _stratified(everything, test_fraction, seed)
    info = {"source": str(root), "size": size, "channels": channels}
    return Dataset(f"folder:{path}", names, {"train": train, "test": test}, info)
