"""The one device helper: picks cuda / mps / cpu, overridable with an argument or NNKIT_DEVICE."""

from __future__ import annotations

import os

import torch

from nnkit.errors import NnkitError

_CHOICES = ("auto", "cpu", "cuda", "mps")


def get_device(name: str | None = None) -> torch.device:
    """Return the torch device to run on.

    Args:
        name: "cpu", "cuda", "cuda:1", "mps" or "auto"/None. None reads NNKIT_DEVICE, then picks
            the best available (cuda, then mps, then cpu).

    Returns:
        A ``torch.device``. Raises NnkitError when the requested device is unknown or absent.
    """
    name = (name or os.environ.get("NNKIT_DEVICE") or "auto").strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.split(":")[0] not in _CHOICES:
        raise NnkitError(f"unknown device {name!r}: choose one of {', '.join(_CHOICES)}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NnkitError(f"device {name!r} asked for, but no CUDA GPU is available here")
    if name == "mps" and not torch.backends.mps.is_available():
        raise NnkitError("device 'mps' asked for, but Apple MPS is not available here")
    return torch.device(name)


def describe_device(device: torch.device | str | None = None) -> str:
    """Human-readable device name, e.g. ``"cpu: AMD EPYC 7B13 (2 threads)"`` or ``"cuda: NVIDIA H100"``."""
    device = get_device(device if isinstance(device, str) or device is None else str(device))
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type == "mps":
        return "mps: Apple GPU"
    threads = torch.get_num_threads()
    name = cpu_name()
    return f"cpu{': ' + name if name else ''} ({threads} thread{'s' if threads != 1 else ''})"


def cpu_name() -> str:
    """The processor's model name ("" where the system does not say)."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
