"""Where nnkit keeps its files: $NNKIT_HOME (default ~/.nnkit), its runs and its data."""

from __future__ import annotations

import os
from pathlib import Path

from nnkit.errors import NnkitError

_CHECKED: set[Path] = set()  # folders already found writable in this process (the check is done once each)


def _home_path() -> Path:
    return Path(os.environ.get("NNKIT_HOME") or Path.home() / ".nnkit").expanduser()


def _writable_folder(path: Path) -> Path:
    """``path`` created if missing; a one-line NnkitError naming NNKIT_HOME when it cannot be a writable folder."""
    if path in _CHECKED:
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        problem = None if os.access(path, os.W_OK | os.X_OK) else "permission denied"
    except FileExistsError:
        problem = "it is a file, not a folder"
    except OSError as exc:  # NotADirectoryError below a file, ENOENT under /proc, EACCES, EROFS
        problem = (exc.strerror or type(exc).__name__).lower()
    if problem:
        home = os.environ.get("NNKIT_HOME")
        where = f"NNKIT_HOME={home}" if home else f"{_home_path()} (the default NNKIT_HOME)"
        raise NnkitError(f"{where} is not a writable folder ({problem}: {path}); "
                         "point NNKIT_HOME at a folder you can write to")
    _CHECKED.add(path)
    return path


def nnkit_home() -> Path:
    """The nnkit home folder ($NNKIT_HOME, default ``~/.nnkit``), created when missing.

    Returns:
        The folder; a one-line NnkitError when it is a file, cannot be created or is not writable.
    """
    return _writable_folder(_home_path())


def runs_dir() -> Path:
    """Folder of the run store: one sub-folder per run (created when missing, checked writable)."""
    return _writable_folder(nnkit_home() / "runs")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Root for downloaded datasets: the argument, else $NNKIT_DATA, else ``$NNKIT_HOME/data``."""
    return Path(root or os.environ.get("NNKIT_DATA") or _home_path() / "data").expanduser()
