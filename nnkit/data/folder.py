"""``folder:PATH`` datasets: the user's own images, one sub-folder per class.

How the images are read (``nnkit datasets`` and the README state the same rules):

- Size: every image is resized to size×size (bilinear). Unless ``size`` is given it is inferred: the
  larger side of the most common image size among the images (ties: the larger), clamped to
  [8, 128] so that a folder of photos does not make a model of megapixel inputs.
- Channels: unless ``channels`` is given, 1 when every image is grey (a grey mode such as L or I;16,
  or colour with R, G and B equal within one level everywhere), else 3; colour images read as grey
  (``channels=1``) take the ITU-R 601 luma.
- Transparency (RGBA, LA, palette with a transparent colour) is composited on white.
- Bit depth: 8-bit images are divided by 255, 16-bit ones (I;16) by 65535, 32-bit integer ones (I) by
  65535 when every value fits in 16 bits (a 16-bit file read as 32-bit) else by 2**31 - 1; float
  images (F) are taken as [0, 1] and clipped.
- Splits: ``train/`` and ``test/`` folders when both exist, else a seeded share (``test_fraction``) of
  each class is held out, so every class needs at least 2 images.

The dataset's name holds the folder's absolute path, and its info a fingerprint of the files (relative
paths, sizes, modification times), so a run reads the same folder from any working directory and
notices when the files changed.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nnkit.data.base import Dataset, Split
from nnkit.data.options import SEED, Option
from nnkit.errors import NnkitError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MIN_SIZE, MAX_SIZE = 8, 512  # bounds of ``size``; 512² × 3 float32 is 3 MB per image
AUTO_MAX_SIZE = 128  # an inferred size is capped here: small models, a laptop's memory
# The decoded dataset (N × C × size² float32) must fit in memory with room for training beside it.
MAX_DATASET_BYTES = 4 << 30
# Pixels read from disk in all (sum of width × height): bounds the decoding time of a folder.
MAX_SOURCE_PIXELS = 2_000_000_000
FOLDER_OPTIONS: dict[str, Option] = {
    "size": Option("int", "side of the square the images are resized to (default: inferred)", MIN_SIZE, MAX_SIZE),
    "channels": Option("int", "1 (grey) or 3 (RGB) (default: inferred)", 1, 3, choices=(1, 3)),
    "test_fraction": Option("float", "share of each class held out as test when there is no train/test layout",
                            0.0, 1.0, open_low=True, open_high=True),
    "seed": SEED,
}
SIZE_RULE = (f"size: the larger side of the most common image size, clamped to [{MIN_SIZE}, {AUTO_MAX_SIZE}] "
             "(size=N overrides)")
CHANNELS_RULE = "channels: 1 when every image is grey, else 3 (channels=1|3 overrides); transparency on white"
BIT_DEPTH_RULE = "values scaled by bit depth: 8-bit /255, 16-bit /65535"


class DataChangedWarning(UserWarning):
    """The images of a folder dataset changed since a run was trained on them."""


@dataclass
class _File:
    path: Path
    label: int
    width: int
    height: int
    mode: str


def resolve_folder(path: str) -> Path:
    """The folder's absolute path (``~`` expanded, links resolved); a one-line NnkitError if it is not a folder."""
    root = Path(str(path)).expanduser()
    try:
        root = root.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop
        raise NnkitError(f"folder dataset {path!r}: cannot resolve the path ({exc})") from None
    if not root.is_dir():
        raise NnkitError(f"folder dataset {path!r}: not a folder")
    return root


def _class_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(d: Path) -> list[Path]:
    return sorted(f for f in d.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
                  and not f.name.startswith("."))


def _layout(root: Path) -> list[Path]:
    """The folders that hold class sub-folders: [train, test] or [root]."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return [root / "train", root / "test"]
    return [root]


def folder_fingerprint(path: str | Path) -> str:
    """A cheap fingerprint of a folder dataset's files: SHA-256 of the sorted relative paths, sizes and
    modification times of its images (no image is read).

    Args:
        path: the dataset folder.

    Returns:
        ``sha256:<hex>``; it changes when an image is added, removed, renamed or rewritten.
    """
    root = resolve_folder(str(path))
    h = hashlib.sha256()
    for base in _layout(root):
        for d in _class_dirs(base):
            for f in _image_files(d):
                st = f.stat()
                h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "sha256:" + h.hexdigest()


def folder_changed(stored: dict, dataset: Dataset) -> str | None:
    """A warning when a folder dataset's files differ from those a run was trained on, else None.

    Args:
        stored: the run's ``meta["dataset"]`` (its ``info`` holds the fingerprint taken at training).
        dataset: the dataset just built.

    Returns:
        One line naming the folder, or None (not a folder dataset, another folder, same files, or a run
        from before fingerprints were recorded).
    """
    old = (stored.get("info") or {}).get("fingerprint")
    new = dataset.info.get("fingerprint")
    if not old or not new or stored.get("name") != dataset.name or old == new:
        return None
    return (f"the images in {dataset.info.get('source', dataset.name)} changed since the run was trained "
            "(files added, removed or rewritten): the figures are not those of its training data")


def _scan(base: Path, class_names: list[str] | None) -> tuple[list[str], list[_File]]:
    """The class names and every image's header (size, mode): nothing is decoded yet."""
    dirs = _class_dirs(base)
    if not dirs:
        raise NnkitError(f"{base}: no class sub-folders (expected one folder of images per class)")
    names = [d.name for d in dirs]
    if class_names is not None and names != class_names:
        raise NnkitError(f"{base}: classes {names} differ from the train classes {class_names}")
    if len(dirs) < 2:
        raise NnkitError(f"{base}: only one class ({dirs[0].name}); a classifier needs at least two")
    files: list[_File] = []
    for label, d in enumerate(dirs):
        paths = _image_files(d)
        if not paths:
            raise NnkitError(f"{d}: no images (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        for f in paths:
            try:
                # PIL only warns between its limit and twice it; the check below refuses those in one line.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    im = Image.open(f)
                with im:
                    width, height, mode = im.width, im.height, im.mode
            except Image.DecompressionBombError:
                raise NnkitError(f"{f}: image too large to decode safely (a decompression bomb?)") from None
            except Exception as exc:  # PIL raises many types for a broken file: each is one line naming it
                raise NnkitError(f"{f}: unreadable image ({type(exc).__name__})") from None
            if width * height > (Image.MAX_IMAGE_PIXELS or float("inf")):
                raise NnkitError(f"{f}: image too large ({width}×{height} pixels; the limit is "
                                 f"{Image.MAX_IMAGE_PIXELS:,} pixels)")
            files.append(_File(f, label, width, height, mode))
    return names, files


def _infer_size(files: list[_File]) -> tuple[int, tuple[int, int]]:
    """(size, the most common (width, height)): its larger side, clamped to [MIN_SIZE, AUTO_MAX_SIZE]."""
    counts = Counter((f.width, f.height) for f in files)
    common = max(counts, key=lambda wh: (counts[wh], max(wh), wh))
    return max(MIN_SIZE, min(AUTO_MAX_SIZE, max(common))), common


def _decode(f: _File, size: int) -> np.ndarray:
    """One image as size×size×3 float32 in [0, 1] (grey repeated in the three channels)."""
    with Image.open(f.path) as im:
        im.load()
        if im.mode.startswith("I;16") or im.mode in ("I", "F"):
            arr = np.asarray(im, dtype=np.float64)
            if im.mode.startswith("I;16"):
                arr = arr / 65535.0
            elif im.mode == "I":
                arr = arr / (65535.0 if arr.max(initial=0) <= 65535 else 2**31 - 1)
            t = torch.from_numpy(np.clip(arr, 0, 1).astype(np.float32))[None, None]
            # Downscaling with antialias, like PIL's resize of 8-bit images below.
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            return t[0, 0].clamp_(0, 1).numpy()[..., None].repeat(3, axis=2)
        has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB").resize((size, size), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.float32) / 255.0
    if has_alpha:
        alpha = arr[..., 3:4]
        arr = arr[..., :3] * alpha + (1.0 - alpha)  # composited on white
    return arr


def _read(files: list[_File], size: int, channels: int | None) -> tuple[Split, int]:
    """Decode every image into one N×C×size×size tensor; returns the split and the channels used."""
    x = torch.empty(len(files), 3, size, size)
    grey = True
    for i, f in enumerate(files):
        try:
            arr = _decode(f, size)
        except NnkitError:
            raise
        except Image.DecompressionBombError:
            raise NnkitError(f"{f.path}: image too large to decode safely (a decompression bomb?)") from None
        except Exception as exc:  # a truncated or corrupt file fails only when decoded: one line naming it
            raise NnkitError(f"{f.path}: unreadable image ({type(exc).__name__})") from None
        x[i] = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        if grey:  # one level of slack: JPEG's colour conversion rounds grey pixels apart by one
            grey = bool((x[i] - x[i, :1]).abs().max() <= 1.5 / 255)
    used = channels if channels is not None else (1 if grey else 3)
    if used == 1:
        # The luma of ITU-R 601 (what PIL's convert("L") uses) for colour images read as grey.
        x = (x * torch.tensor([0.299, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True) if not grey \
            else x[:, :1].clone()
    return Split(x, torch.tensor([f.label for f in files], dtype=torch.int64)), used


def _check_budget(files: list[_File], size: int, path: Path) -> None:
    pixels = sum(f.width * f.height for f in files)
    if pixels > MAX_SOURCE_PIXELS:
        raise NnkitError(f"{path}: the images hold {pixels:,} pixels in all, more than the {MAX_SOURCE_PIXELS:,} "
                         "nnkit decodes for one dataset: use fewer or smaller images")
    need = len(files) * 3 * size * size * 4
    if need > MAX_DATASET_BYTES:
        raise NnkitError(f"{path}: {len(files):,} images at {size}×{size} need {need / 2**30:.1f} GiB of memory "
                         f"(limit {MAX_DATASET_BYTES / 2**30:.0f} GiB): give a smaller size=")


def _stratified(split: Split, test_fraction: float, seed: int) -> tuple[Split, Split]:
    g = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in split.labels.unique():
        idx = (split.labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        # At least one test and one training image of every class (the folder was checked to have 2).
        k = min(len(idx) - 1, max(1, round(len(idx) * test_fraction)))
        test_idx.append(idx[:k])
        train_idx.append(idx[k:])
    return split.subset(torch.cat(train_idx)), split.subset(torch.cat(test_idx))


def _check_counts(names: list[str], files: list[_File], test_fraction: float) -> None:
    counts = Counter(f.label for f in files)
    few = [(names[c], counts[c]) for c in range(len(names)) if counts[c] < 2]
    if few:
        name, count = few[0]
        more = f" (and {len(few) - 1} other class{'es' * (len(few) > 2)})" if len(few) > 1 else ""
        raise NnkitError(f"class {name!r} has {count} image{'s' * (count != 1)}{more}: each class needs at least 2 "
                         f"so that one can be held out for the test split ({test_fraction:.0%} of each class)")


def build_folder(path: str, size: int | None = None, channels: int | None = None, test_fraction: float = 0.2,
                 seed: int = 0) -> Dataset:
    """Read an image folder as a Dataset (the module docstring states how size, channels and values are read).

    Args:
        path: a folder with one sub-folder per class, or with ``train/`` and ``test/`` folders that
            each hold the class sub-folders (then they are the splits).
        size: images are resized to size×size; None infers it from the images.
        channels: 3 (RGB) or 1 (grey); None infers it from the images.
        test_fraction: share of each class held out as the test split (seeded, stratified) when
            the folder has no ``train/``/``test/``.
        seed: the split's seed.

    Shape:
        every split's images are N×channels×size×size float32 in [0, 1].

    Returns:
        Dataset named ``folder:<absolute path>`` with splits train and test; ``info`` records the
        source, fingerprint, size and channels used and how they were chosen, and the most common
        original image size.
    """
    root = resolve_folder(path)
    if size is not None and not MIN_SIZE <= int(size) <= MAX_SIZE:
        raise NnkitError(f"size must be between {MIN_SIZE} and {MAX_SIZE}, got {size}")
    if channels not in (None, 1, 3):
        raise NnkitError(f"channels must be 1 or 3, got {channels}")
    if not 0 < test_fraction < 1:
        raise NnkitError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    fingerprint = folder_fingerprint(root)
    bases = _layout(root)
    names, files = _scan(bases[0], None)
    test_files = _scan(bases[1], names)[1] if len(bases) == 2 else None
    if test_files is None:
        _check_counts(names, files, test_fraction)
    every = files + (test_files or [])
    inferred, common = _infer_size(every)
    used_size = int(size) if size is not None else inferred
    _check_budget(every, used_size, root)
    split, used_channels = _read(every, used_size, channels)
    if test_files is None:
        train, test = _stratified(split, test_fraction, seed)
    else:
        train, test = split.subset(slice(0, len(files))), split.subset(slice(len(files), None))
    modes = Counter(f.mode for f in every)
    sizes = sorted({(f.width, f.height) for f in every})
    info = {
        "source": str(root), "fingerprint": fingerprint, "images": len(every),
        "size": used_size, "size_rule": "given" if size is not None else SIZE_RULE,
        "channels": used_channels, "channels_rule": "given" if channels is not None else CHANNELS_RULE,
        "original_size": list(common), "mixed_sizes": len(sizes) > 1,
        # The distinct (width, height) of the images on disk (the first 20: more only says "mixed").
        "source_sizes": [list(wh) for wh in sizes[:20]],
        "modes": dict(modes), "transparency": "composited on white",
        "layout": "train/ and test/ folders" if test_files is not None else
                  f"one folder per class, {test_fraction:.0%} of each class held out (seed {seed})",
    }
    return Dataset(f"folder:{root}", names, {"train": train, "test": test}, info)
