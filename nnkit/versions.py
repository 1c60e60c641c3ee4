"""Library versions recorded with every run and report (reproducibility)."""

from __future__ import annotations

import platform
from importlib import metadata

import nnkit

_PACKAGES = ("torch", "torchvision", "numpy", "captum", "safetensors")


def library_versions() -> dict[str, str]:
    """Versions of python, nnkit and the libraries a result depends on."""
    out = {"python": platform.python_version(), "nnkit": nnkit.__version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
