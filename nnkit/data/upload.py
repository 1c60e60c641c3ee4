"""Import a user's zip of class folders as a ``folder:`` dataset under ``$NNKIT_HOME/uploads/<name>``.

The zip's directory is checked before anything is written (no absolute paths, no ``..``, no links, no
name used as both a file and a folder, a bounded unpacked size, image files only, at least two
classes: ``check_zip``, cheap enough for the page's script thread). The import itself (``import_zip``,
run as a background job by the dashboard) unpacks into a temporary folder beside the target, reads
every image's header to bound its pixels and the upload's total pixels before anything is decoded,
reads the folder once with the folder dataset builder (so unreadable images are caught), and only then
moves it into place. A bad or cancelled upload leaves nothing behind, and every failure is one line.

Uploads expire (``expire_uploads``): an uploaded dataset that no run in the store was trained on is
removed ``UPLOAD_TTL_S`` (24 h) after its import; one that a run uses is kept with that run.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image

from nnkit.data.folder import IMAGE_EXTENSIONS, build_folder
from nnkit.errors import Cancelled, NnkitError
from nnkit.paths import nnkit_home

MAX_UNPACKED_BYTES = 1 << 30  # 1 GiB: a zip bomb is refused before it is unpacked
MAX_FILES = 100_000
# Pixels are what decoding costs, and a PNG of one colour compresses 13000×13000 pixels into 300 bytes: the
# headers are read first and the upload refused above these bounds, before any image is decoded.
MAX_IMAGE_PIXELS = 40_000_000  # one image: a 40-megapixel photo (PIL's own bomb limit is ~179 M)
MAX_TOTAL_PIXELS = 200_000_000  # the whole upload: 600 MB as 8-bit RGB, a few tens of CPU seconds to decode
UPLOAD_TTL_S = 24 * 3600  # an upload no run was trained on is removed this long after its import
STALE_S = 3600  # temporary folders that a killed import left behind are removed after this
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


@dataclass(frozen=True)
class ZipPlan:
    """What ``check_zip`` found: the zip's images and where each goes, relative to the dataset folder."""

    folder: str  # the dataset's folder name under uploads/
    label: str  # "<folder>.zip", used in messages
    files: tuple[tuple[zipfile.ZipInfo, PurePosixPath], ...]
    classes: tuple[str, ...]


def _open_zip(source: bytes | str | os.PathLike, label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(source) if isinstance(source, bytes | bytearray) else source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        raise NnkitError(f"{label}: not a zip archive (zip a folder with one sub-folder of images per class)") from None


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
    _check_clashes([p for _, p in files], label)
    return files


def _check_clashes(paths: list[PurePosixPath], label: str) -> None:
    """One path used twice, or as both a file and a folder, cannot be unpacked: say which."""
    seen: set[PurePosixPath] = set()
    for p in paths:
        if p in seen:
            raise NnkitError(f"{label}: {str(p)!r} appears twice in the zip")
        seen.add(p)
    folders = {parent for p in paths for parent in p.parents}
    clash = next((p for p in paths if p in folders), None)
    if clash is not None:
        raise NnkitError(f"{label}: {str(clash)!r} is both a file and a folder in the zip")


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


def _plan(zf: zipfile.ZipFile, folder: str, label: str) -> ZipPlan:
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
    return ZipPlan(folder, label, tuple(rel), tuple(sorted(classes)))


def check_zip(source: bytes | str | os.PathLike, name: str) -> ZipPlan:
    """Check a zip's directory (names, paths, sizes, layout) without unpacking or decoding anything.

    Args:
        source: the zip's bytes or its path.
        name: the dataset's folder name (made safe with ``safe_name``).

    Returns:
        The ZipPlan; a one-line NnkitError for: not a zip, an empty zip, unsafe paths or links, a name
        used twice or as both file and folder, non-image files, too large, one class only, a name taken.
    """
    folder = safe_name(name)
    label = f"{folder}.zip"
    if (uploads_dir() / folder).exists():
        raise NnkitError(f"an uploaded dataset called {folder!r} already exists: choose another name")
    with _open_zip(source, label) as zf:
        return _plan(zf, folder, label)


def _unpack_one(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, label: str) -> None:
    """Copy one zip entry to ``target``; every way a lying or damaged zip fails becomes one line."""
    what = f"{label}: {info.filename!r}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with zf.open(info) as src, open(target, "xb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        raise NnkitError(f"{what} clashes with another file or folder of the same name") from None
    except zipfile.BadZipFile as exc:  # a CRC or size that does not match the data: the header lies
        raise NnkitError(f"{what} is damaged: its contents do not match the zip's header ({exc})") from None
    except (zlib.error, EOFError):
        raise NnkitError(f"{what} is damaged: its compressed data is corrupt or cut short") from None
    except NotImplementedError:
        raise NnkitError(f"{what} uses a compression method Python cannot read: zip it again with deflate") from None
    except RuntimeError as exc:  # zipfile: "File ... is encrypted, password required for extraction"
        if "encrypted" in str(exc):
            raise NnkitError(f"{what} is encrypted: zip the images without a password") from None
        raise


def _pixels(path: Path, shown: str) -> int:
    """An image's width × height from its header (nothing is decoded), bounded by MAX_IMAGE_PIXELS."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below with a clearer line
            with Image.open(path) as im:
                width, height = im.size
    except Image.DecompressionBombError:
        raise NnkitError(f"{shown}: image too large to decode safely (a decompression bomb?)") from None
    except Exception as exc:  # PIL raises many types for a file that is not an image: one line naming it
        raise NnkitError(f"{shown}: unreadable image ({type(exc).__name__})") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise NnkitError(f"{shown}: image too large ({width}×{height} = {width * height:,} pixels; an upload's "
                         f"images may have at most {MAX_IMAGE_PIXELS:,} pixels each)")
    return width * height


@dataclass(frozen=True)
class ImportedUpload:
    """An imported dataset: its name for ``nnkit.data.create`` and what it holds."""

    dataset: str  # folder:<absolute path>
    folder: str  # the folder name under uploads/
    classes: int
    images: int


def import_zip(source: bytes | str | os.PathLike, name: str, size: int = 32, channels: int = 3, *,
               on_progress: Callable[[int, int, str], None] | None = None,
               stop_event: threading.Event | None = None) -> str:
    """Unpack a zip of class folders into ``$NNKIT_HOME/uploads/<name>`` and check it reads as a dataset.

    Args:
        source: the zip's bytes or path. Its layout is ``<class>/<image>`` (optionally inside one top
            folder), or ``train/<class>/...`` plus ``test/<class>/...``.
        name: the dataset's folder name (made safe with ``safe_name``). An existing upload of that name
            is never replaced: runs trained on it refer to it by path and must keep their data.
        size, channels: how the images are read for the check (as ``folder:`` datasets do).
        on_progress: called as ``(done, total, stage)`` after each file is unpacked and checked.
        stop_event: when set, the import stops within one file, removes what it unpacked and raises
            ``nnkit.errors.Cancelled``.

    Returns:
        The dataset name, ``folder:<absolute path>``, for ``nnkit.data.create`` and training.

    Raises NnkitError with one line for everything ``check_zip`` refuses and for: a damaged or lying zip,
    an unreadable image, an image over MAX_IMAGE_PIXELS, images over MAX_TOTAL_PIXELS in all.
    """
    return import_upload(source, name, size, channels, on_progress=on_progress, stop_event=stop_event).dataset


def import_upload(source: bytes | str | os.PathLike, name: str, size: int = 32, channels: int = 3, *,
                  on_progress: Callable[[int, int, str], None] | None = None,
                  stop_event: threading.Event | None = None) -> ImportedUpload:
    """``import_zip`` returning an ImportedUpload (the dataset name with its class and image counts)."""
    plan = check_zip(source, name)
    label, total = plan.label, len(plan.files)
    root = uploads_dir()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{plan.folder}.", dir=root))
    try:
        with _open_zip(source, label) as zf:
            pixels = 0
            for i, (info, path) in enumerate(plan.files):
                if stop_event is not None and stop_event.is_set():
                    raise Cancelled("upload cancelled")
                target = tmp.joinpath(*path.parts)
                _unpack_one(zf, info, target, label)
                pixels += _pixels(target, f"{label}: {info.filename}")
                if pixels > MAX_TOTAL_PIXELS:
                    raise NnkitError(f"{label}: the images hold more than {MAX_TOTAL_PIXELS:,} pixels in all (the "
                                     "limit of one upload): use fewer or smaller images")
                if on_progress is not None:
                    on_progress(i + 1, total, "unpacking and checking image sizes")
        if on_progress is not None:
            on_progress(total, total, "reading every image")
        try:
            ds = build_folder(str(tmp), size=size, channels=channels)  # decodes every image once
        except NnkitError as exc:  # name the zip, not the temporary folder
            raise NnkitError(str(exc).replace(str(tmp), label)) from None
        except Image.DecompressionBombError:
            raise NnkitError(f"{label}: an image is too large to decode safely (a decompression bomb?)") from None
        if stop_event is not None and stop_event.is_set():
            raise Cancelled("upload cancelled")
        final = root / plan.folder
        if final.exists():  # another upload of that name finished meanwhile
            raise NnkitError(f"an uploaded dataset called {plan.folder!r} already exists: choose another name")
        tmp.rename(final)
        os.utime(final)  # its age (for expiry) counts from the import, not from the zip's own dates
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImportedUpload(f"folder:{final}", plan.folder, ds.num_classes, sum(len(s) for s in ds.splits.values()))


def _used_uploads(store) -> set[str]:
    """Paths of the ``folder:`` datasets that the store's runs were trained on."""
    used = set()
    for info in store.list():
        dataset = info.meta.get("dataset")
        name = dataset.get("name") if isinstance(dataset, dict) else None
        if isinstance(name, str) and name.startswith("folder:"):
            used.add(name[len("folder:"):])
    return used


def expire_uploads(now: float | None = None, store=None) -> list[str]:
    """Remove uploads that no run uses, ``UPLOAD_TTL_S`` after their import, and stale import leftovers.

    Args:
        now: the current time (tests pass a later one).
        store: the run store that decides which uploads are in use (default: ``RunStore()``).

    Returns:
        The names of the removed upload folders (leftovers are removed silently).
    """
    from nnkit.runs.store import RunStore

    root = uploads_dir()
    if not root.is_dir():
        return []
    now = time.time() if now is None else now
    removed: list[str] = []
    used = None
    for p in sorted(root.iterdir()):
        try:
            age = now - p.stat().st_mtime
        except OSError:  # removed meanwhile by another session
            continue
        if p.name.startswith("."):
            if age > STALE_S:  # an import that was killed before it could clean up
                shutil.rmtree(p, ignore_errors=True)
        elif p.is_dir() and age > UPLOAD_TTL_S:
            if used is None:
                used = _used_uploads(store or RunStore())
            if str(p) not in used and str(p.resolve()) not in used:
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p.name)
    return removed
