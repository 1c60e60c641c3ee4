"""Where nnkit keeps its files: $NNKIT_HOME (default ~/.nnkit), its runs and its data."""

from __future__ import annotations

import os
from pathlib import Path


def nnkit_home() -> Path:
    """The nnkit home folder ($NNKIT_HOME, default ``~/.nnkit``)."""
    return Path(os.environ.get("NNKIT_HOME") or Path.home() / ".nnkit").expanduser()


def runs_dir() -> Path:
    """Folder of the run store: one sub-folder per run."""
    return nnkit_home() / "runs"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Root for downloaded datasets: the argument, else $NNKIT_DATA, else ``$NNKIT_HOME/data``."""
    return Path(root or os.environ.get("NNKIT_DATA") or nnkit_home() / "data").expanduser()
