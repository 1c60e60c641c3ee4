"""Write files atomically: into a temp file beside the target, then rename (never half-written)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from nnkit.errors import NnkitError

# Read once at import: os.umask can only be read by setting it, which is not thread-safe later on.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp makes the file 0600; give it the permissions a plain open() would (0666 minus umask).
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_writable(path: str | os.PathLike, *, folder: bool = False, option: str = "--out") -> Path:
    """Check before any work that ``path`` can be written, so a long computation never ends in a lost result.

    The check creates the missing folders, writes and removes a probe file there, and removes the folders
    it created again (nothing is left behind if the command fails later; the real write makes them anew).

    Args:
        path: the output file (``folder=False``) or the output folder (``folder=True``); ``~`` is expanded.
        folder: whether ``path`` names a folder that will receive files.
        option: how the user gave the path (goes into the message).

    Returns:
        The expanded path; a one-line NnkitError when it cannot be written (a parent is a file, the file is
        a folder, no permission, read-only file system).
    """
    path = Path(path).expanduser()
    target_dir = path if folder else path.parent
    if not folder and path.is_dir():
        raise NnkitError(f"{option} {str(path)!r} is a folder: give a file name inside it")
    if folder and path.exists() and not path.is_dir():
        raise NnkitError(f"{option} {str(path)!r} is a file: give a folder")
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise NnkitError(f"cannot write {option} {str(path)!r}: permission denied")
    existing = next((p for p in (target_dir, *target_dir.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise NnkitError(f"cannot write {option} {str(path)!r}: {str(existing)!r} is a file, not a folder")
    created = [p for p in (target_dir, *target_dir.parents) if not p.exists()]
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".nnkit-probe.", dir=target_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise NnkitError(f"cannot write {option} {str(path)!r}: {exc.strerror or exc}") from None
    finally:
        for p in created:  # deepest first; a folder that meanwhile got files stays
            try:
                p.rmdir()
            except OSError:
                break
    return path
