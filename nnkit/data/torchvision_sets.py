"""MNIST, Fashion-MNIST and CIFAR-10 through torchvision, with a clear offline error."""

from __future__ import annotations

import os

import numpy as np
import torch

from nnkit.data.base import Dataset, Split
from nnkit.data.options import TORCHVISION_OPTIONS
from nnkit.data.registry import register
from nnkit.errors import NnkitError
from nnkit.paths import data_root

_RAW_FILES = {
    "mnist": ("MNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                           "t10k-labels-idx1-ubyte"),
    "fashion-mnist": ("FashionMNIST/raw", "the four Fashion-MNIST idx files"),
    "cifar10": ("cifar-10-batches-py", "the extracted CIFAR-10 python batches"),
}


def _load(cls, name: str, root, download: bool | None):
    """Both torchvision splits; tries the files on disk first, then a download when allowed."""
    import torchvision.datasets as tvd

    root = data_root(root)
    if download is None:
        download = os.environ.get("NNKIT_OFFLINE", "") in ("", "0")
    tv_cls = getattr(tvd, cls)
    try:
        return tv_cls(str(root), train=True, download=False), tv_cls(str(root), train=False, download=False)
    except (RuntimeError, FileNotFoundError, OSError):
        pass
    where, files = _RAW_FILES[name]
    if download:
        try:
            return tv_cls(str(root), train=True, download=True), tv_cls(str(root), train=False, download=True)
        except Exception as exc:  # no network, a proxy, a truncated file: one line for the user
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise NnkitError(f"{name}: not found under {root} and the download failed ({reason}); "
                             f"offline, put {files} in {root / where}") from None
    raise NnkitError(f"{name}: not found under {root}; put {files} in {root / where} "
                     f"(or allow a download)")


def _to_split(ds) -> Split:
    data = ds.data
    if isinstance(data, np.ndarray):  # CIFAR: N×H×W×C uint8
        images = torch.from_numpy(data).permute(0, 3, 1, 2)
    else:  # MNIST family: N×H×W uint8
        images = data[:, None]
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return Split(images.float().div_(255), labels)


def _build(cls: str, name: str, class_names, root, download, limit):
    train, test = _load(cls, name, root, download)
    splits = {"train": _to_split(train), "test": _to_split(test)}
    if limit:
        splits = {k: v.subset(slice(0, int(limit))) for k, v in splits.items()}
    names = class_names or list(train.classes)
    info = {"source": f"torchvision.datasets.{cls}", "root": str(data_root(root))}
    return Dataset(name, names, splits, info)


@register("mnist", "MNIST handwritten digits, 28×28 grey (torchvision; downloads when online)",
          options=TORCHVISION_OPTIONS)
def build_mnist(root=None, download: bool | None = None, limit: int | None = None, seed: int = 0) -> Dataset:
    """MNIST from ``root`` (``--data-root``/``$NNKIT_DATA``); ``limit`` keeps the first N of each split."""
    return _build("MNIST", "mnist", [str(i) for i in range(10)], root, download, limit)


@register("fashion-mnist", "Fashion-MNIST clothing, 28×28 grey (torchvision; downloads when online)",
          options=TORCHVISION_OPTIONS)
def build_fashion(root=None, download: bool | None = None, limit: int | None = None, seed: int = 0) -> Dataset:
    """Fashion-MNIST, as ``build_mnist``."""
    return _build("FashionMNIST", "fashion-mnist", None, root, download, limit)


@register("cifar10", "CIFAR-10 photos, 32×32 RGB (torchvision; downloads when online)",
          options=TORCHVISION_OPTIONS)
def build_cifar10(root=None, download: bool | None = None, limit: int | None = None, seed: int = 0) -> Dataset:
    """CIFAR-10, as ``build_mnist``."""
    return _build("CIFAR10", "cifar10", None, root, download, limit)
