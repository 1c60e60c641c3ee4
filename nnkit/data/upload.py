"""Import a user's zip of class folders as a ``folder:`` dataset under ``$NNKIT_HOME/uploads/<name>``.

The zip is checked before anything is written (no absolute paths, no ``..``, no links, a bounded
unpacked size, image files only, at least two classes), unpacked into a temporary folder beside the
target, read once with the folder dataset builder (so unreadable images are caught), and only then
moved into place. A bad upload leaves nothing behind.
"""

from __future__ import annotations

import io
import re
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from nnkit.data.folder import IMAGE_EXTENSIONS, build_folder
from nnkit.errors import NnkitError
from nnkit.paths import nnkit_home

MAX_UNPACKED_BYTES = 1 << 30  # 1 GiB: a zip bomb is refused before it is unpacked
MAX_FILES = 100_000
# Files that zip tools add on their own: skipped, never an error.
_JUNK_DIRS = {"__MACOSX"}
_JUNK_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def uploads_dir() -> Path:
    """Where uploaded datasets live: ``$NNKIT_HOME/uploads``."""
    return nnkit_home() / "uploads"


def list_uploads() -> list[str]:
    """Dataset names (``folder:PATH``) of the uploaded datasets, sorted by name."""
    root = uploads_dir()
    if not root.is_dir():
        return []
    return [f"folder:{p}" for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def safe_name(name: str) -> str:
    """A folder name made of letters, digits, ``-`` and ``_`` (from a zip's file name)."""
    stem = Path(str(name)).name
    if stem.lower().endswith(".zip"):
        stem = stem[:-4]
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:60]
    if not clean:
        raise NnkitError(f"{name!r}: give the dataset a name made of letters or digits")
    return clean


def _members(zf: zipfile.ZipFile, label: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """The zip's files as (entry, safe relative path); raises NnkitError for anything unsafe or not an image."""
    files, total = [], 0
    for info in zf.infolist():
        raw = info.filename.replace("\\", "/")  # zips made on Windows may use backslashes
        path = PurePosixPath(raw)
        if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw) or ".." in path.parts:
            raise NnkitError(f"{label}: unsafe path {info.filename!r} in the zip (absolute or with '..')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise NnkitError(f"{label}: {info.filename!r} is a symbolic link; zip the images themselves")
        if info.is_dir():
            continue
        if _JUNK_DIRS & set(path.parts) or path.name in _JUNK_FILES or path.name.startswith("._"):
            continue
        if path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise NnkitError(f"{label}: {info.filename!r} is not an image "
                             f"(allowed: {', '.join(sorted(IMAGE_EXTENSIONS))})")
        total += info.file_size
        files.append((info, path))
        if total > MAX_UNPACKED_BYTES or len(files) > MAX_FILES:
            raise NnkitError(f"{label}: too large once unpacked (limit {MAX_UNPACKED_BYTES >> 20} MiB, "
                             f"{MAX_FILES} files)")
    if not files:
        raise NnkitError(f"{label}: the zip holds no images (expected one folder of images per class)")
    return files


def _strip_common_root(paths: list[PurePosixPath]) -> int:
    """How many leading folders all files share and that are not the class folders themselves.

    A zip of ``animals/`` holds ``animals/cat/1.png``: the class folders sit one level down.
    """
    depth = 0
    while True:
        heads = {p.parts[depth] if len(p.parts) > depth + 1 else None for p in paths}
        # Strip while every file sits two or more levels below one shared folder.
        if len(heads) == 1 and None not in heads and all(len(p.parts) > depth + 2 for p in paths):
            depth += 1
        else:
            return depth


def import_zip(data: bytes, name: str, size: int = 32, channels: int = 3) -> str:
    """Unpack a zip of class folders into ``$NNKIT_HOME/uploads/<name>`` and check it reads as a dataset.

    Args:
        data: the zip file's bytes. Its layout is ``<class>/<image>`` (optionally inside one top
            folder), or ``train/<class>/...`` plus ``test/<class>/...``.
        name: the dataset's folder name (made safe with ``safe_name``). An existing upload of that name
            is never replaced: runs trained on it refer to it by path and must keep their data.
        size, channels: how the images are read for the check (as ``folder:`` datasets do).

    Returns:
        The dataset name, ``folder:<absolute path>``, for ``nnkit.data.create`` and training.

    Raises NnkitError with one line for: not a zip, an empty zip, unsafe paths or links, non-image
    files, one class only, unreadable images, a name already taken.
    """
    folder = safe_name(name)
    label = f"{folder}.zip"
    if (uploads_dir() / folder).exists():
        raise NnkitError(f"an uploaded dataset called {folder!r} already exists: choose another name")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise NnkitError(f"{label}: not a zip archive (zip a folder with one sub-folder of images per class)") from None
    with zf:
        files = _members(zf, label)
        skip = _strip_common_root([p for _, p in files])
        rel = [(info, PurePosixPath(*p.parts[skip:])) for info, p in files]
        top = {p.parts[0] for _, p in rel if len(p.parts) > 1}
        loose = [str(p) for _, p in rel if len(p.parts) == 1]
        if loose:
            raise NnkitError(f"{label}: {loose[0]!r} is not inside a class folder "
                             "(expected one folder of images per class)")
        split_layout = top == {"train", "test"}
        classes = {p.parts[1] for _, p in rel if len(p.parts) > 2} if split_layout else top
        if len(classes) < 2:
            raise NnkitError(f"{label}: only {len(classes)} class folder ({', '.join(sorted(classes)) or 'none'}); "
                             "a classifier needs at least two")
        root = uploads_dir()
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder}.", dir=root))
        try:
            for info, path in rel:
                target = tmp.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            try:
                build_folder(str(tmp), size=size, channels=channels)  # reads every image once
            except NnkitError as exc:  # name the zip, not the temporary folder
                raise NnkitError(str(exc).replace(str(tmp), label)) from None
            final = root / folder
            if final.exists():  # another upload of that name finished meanwhile
                raise NnkitError(f"an uploaded dataset called {folder!r} already exists: choose another name")
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return f"folder:{final}"
