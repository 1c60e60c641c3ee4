"""The one run store: a folder per run under ``$NNKIT_HOME/runs``.

A run is written into ``runs/.partial/<id>/`` while it is being made and renamed into ``runs/<id>/``
only once complete, so a run killed mid-training is never listed. Each complete run holds
``meta.json`` (id, name, kind, seed, versions, device, dataset, model spec, summary),
``config.json`` (the job's config dataclass), ``metrics.jsonl`` (one line per epoch) and weights
as safetensors, plus any artefacts (PNG grids) the job saved.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from nnkit.atomic import write_bytes, write_json
from nnkit.errors import NnkitError
from nnkit.paths import runs_dir
from nnkit.runs.meta import name_problem, read_meta, safe_text

META = "meta.json"
WEIGHTS = "model.safetensors"
_PARTIAL = ".partial"
_WRITER = ".writer.json"  # in a partial folder: which process writes it (pid, host, boot id, start time)
_TOMBSTONE = ".deleted-"  # a run being deleted is first renamed to .partial/<id>.deleted-<random>
_LEGACY_PARTIAL_SECONDS = 24 * 3600  # a partial folder without a writer record is swept after a day

# Run ids are ``YYYYMMDD-HHMMSS-<label>-<hex>``: a name matching their beginning would shadow future runs' ids.
_ID_START = re.compile(r"\d{1,8}(-\d{0,6}(-[A-Za-z0-9_-]*)?)?")

log = logging.getLogger("nnkit.runs")


class BrokenRunWarning(UserWarning):
    """A run, or a file of one, that cannot be read: it is skipped (or the file ignored), the rest still works."""


@dataclass
class RunInfo:
    """A complete run: its folder and its meta.json contents (checked by ``nnkit.runs.meta``)."""

    run_id: str
    path: Path
    meta: dict

    @property
    def name(self) -> str | None:
        return self.meta.get("name")

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "classifier")

    @property
    def label(self) -> str:
        """The run's name (or id) with control characters escaped: safe to print or show."""
        return safe_text(self.name or self.run_id)

    def read_json(self, filename: str) -> dict:
        """A JSON object saved in the run (e.g. ``config.json``).

        Returns:
            The dict; a one-line NnkitError naming the run and file when it is missing, corrupt or not an object.
        """
        try:
            obj = json.loads((self.path / filename).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NnkitError(f"run {self.run_id} has no {filename}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise NnkitError(f"run {self.run_id}: {filename} is unreadable or not valid JSON "
                             f"({safe_text(str(exc))[:80]})") from None
        if not isinstance(obj, dict):
            raise NnkitError(f"run {self.run_id}: {filename} holds a {type(obj).__name__}, not a JSON object")
        return obj

    def optional_json(self, filename: str) -> dict | None:
        """Like ``read_json`` for callers that can do without the file: None (and a logged warning) when
        it is missing or broken."""
        if not (self.path / filename).is_file():
            return None
        try:
            return self.read_json(filename)
        except NnkitError as exc:
            warnings.warn(f"{exc} (ignored)", BrokenRunWarning, stacklevel=2)
            return None

    def metrics(self) -> list[dict]:
        """The run's metrics.jsonl, one dict per line (empty when absent).

        A line that is not a JSON object (a half-written last line of a killed or disk-full writer) is
        dropped; one in the middle is dropped with a ``BrokenRunWarning``.
        """
        f = self.path / "metrics.jsonl"
        try:
            lines = [line for line in f.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            warnings.warn(f"run {self.run_id}: metrics.jsonl is unreadable ({_io_problem(exc)}; ignored)",
                          BrokenRunWarning, stacklevel=2)
            return []
        records = []
        for i, line in enumerate(lines):
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                record = None
            if isinstance(record, dict):
                records.append(record)
            elif i < len(lines) - 1:
                warnings.warn(f"run {self.run_id}: metrics.jsonl line {i + 1} is not a JSON object (dropped)",
                              BrokenRunWarning, stacklevel=2)
        return records


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _writer_record() -> dict:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "start_ticks": _start_ticks(pid)}


def _writer_gone(record) -> bool:
    """Whether the process that wrote a partial folder has certainly ended (False when unsure)."""
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int) or record["pid"] <= 0:
        return False  # unreadable record: keep the folder (os.kill(0 or -1) would signal a group, not a pid)
    if record.get("host") != socket.gethostname():
        return False  # a store shared between machines: another host's processes cannot be seen from here
    boot = _boot_id()
    if record.get("boot_id") and boot and record["boot_id"] != boot:
        return True  # written before the last reboot
    try:
        os.kill(record["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    ticks = record.get("start_ticks")
    now = _start_ticks(record["pid"])
    return ticks is not None and now is not None and ticks != now  # the pid was reused by a new process


def _io_problem(exc: OSError) -> str:
    return (exc.strerror or os.strerror(exc.errno or 0) or type(exc).__name__).lower()


class RunWriter:
    """Writes one run into its partial folder; ``finish`` publishes it, ``abort`` removes it.

    A failed write (disk full, permission denied) removes the partial folder and raises a one-line
    NnkitError, so the store never holds half a run.
    """

    def __init__(self, root: Path, run_id: str):
        self.root = root
        self.run_id = run_id
        self.path = root / _PARTIAL / run_id
        try:
            self.path.mkdir(parents=True)
            write_json(self.path / _WRITER, _writer_record())
        except OSError as exc:
            self._failed(exc, "start it")

    def _failed(self, exc: OSError, what: str):
        self.abort()
        raise NnkitError(f"could not save run {self.run_id}: {_io_problem(exc)} (while trying to {what} in "
                         f"{self.root}); nothing was saved") from None

    def log_metrics(self, record: dict) -> None:
        """Append one JSON line to metrics.jsonl."""
        try:
            with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")
        except OSError as exc:
            self._failed(exc, "append to metrics.jsonl")

    def save_json(self, filename: str, obj) -> None:
        """Write ``obj`` as ``filename`` in the run (atomically)."""
        try:
            write_json(self.path / filename, obj)
        except OSError as exc:
            self._failed(exc, f"write {filename}")

    def save_bytes(self, filename: str, data: bytes) -> None:
        """Write ``data`` as ``filename`` in the run (atomically)."""
        try:
            write_bytes(self.path / filename, data)
        except OSError as exc:
            self._failed(exc, f"write {filename}")

    def save_weights(self, model: torch.nn.Module, filename: str = WEIGHTS) -> None:
        """Save ``model``'s state dict as safetensors (CPU, contiguous)."""
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        # Serialised in memory and written like every other file, so a full disk is one OSError path.
        self.save_bytes(filename, safetensors_bytes(state))

    def finish(self, meta: dict) -> RunInfo:
        """Write meta.json and move the run into the store atomically (one rename)."""
        meta = {"run_id": self.run_id, "status": "complete", **meta}
        self.save_json(META, meta)
        final = self.root / self.run_id
        try:
            (self.path / _WRITER).unlink(missing_ok=True)
            os.replace(self.path, final)
        except OSError as exc:
            self._failed(exc, "publish it")
        return RunInfo(self.run_id, final, meta)

    def abort(self) -> None:
        """Remove the partial folder (nothing of the run stays)."""
        shutil.rmtree(self.path, ignore_errors=True)


class RunStore:
    """The run store at ``root`` (default ``$NNKIT_HOME/runs``)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else runs_dir()

    def begin(self, label: str) -> RunWriter:
        """Start a new run; its id is ``<UTC time>-<label>-<random>``, sortable by creation."""
        self.sweep_partial()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in label)[:40]
        return RunWriter(self.root, f"{stamp}-{safe}-{secrets.token_hex(2)}")

    def sweep_partial(self) -> list[str]:
        """Remove the partial folders whose writing process has ended (killed runs, interrupted deletes).

        Folders of a live process, or of another host sharing the store, are left alone.

        Returns:
            The names of the folders removed.
        """
        partial = self.root / _PARTIAL
        try:
            entries = list(partial.iterdir())
        except OSError:
            return []
        removed = []
        for d in entries:
            if not d.is_dir() or d.name.startswith("."):
                continue
            if _TOMBSTONE in d.name:
                gone = True  # a deleted run: the store no longer lists it whoever removes the rest
            else:
                try:
                    gone = _writer_gone(json.loads((d / _WRITER).read_text()))
                except FileNotFoundError:  # written before writers recorded themselves
                    try:
                        gone = time.time() - d.stat().st_mtime > _LEGACY_PARTIAL_SECONDS
                    except OSError:
                        gone = False
                except (OSError, ValueError):
                    gone = False
            if gone:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        if removed:
            log.info("removed %d partial run folder(s) of ended processes: %s", len(removed), ", ".join(removed))
        return removed

    def scan(self) -> tuple[list[RunInfo], dict[str, str]]:
        """Every run folder: the complete runs (newest first) and the broken ones with their problem.

        Returns:
            ``(runs, broken)``: broken maps a folder name to what is wrong with its meta.json.
        """
        runs: list[RunInfo] = []
        broken: dict[str, str] = {}
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return [], {}
        except OSError as exc:
            raise NnkitError(f"cannot read the run store {self.root}: {_io_problem(exc)}") from None
        for d in entries:
            if d.name.startswith(".") or not d.is_dir():
                continue
            meta, problem = read_meta(d / META)
            if problem and not d.exists():
                continue  # deleted (renamed away) while the store was being read: not broken, just gone
            if problem:
                broken[d.name] = problem
            else:
                runs.append(RunInfo(d.name, d, meta))
        return sorted(runs, key=lambda r: r.run_id, reverse=True), broken

    def list(self, kind: str | None = None) -> list[RunInfo]:
        """Complete runs, newest first (optionally only those of ``kind``).

        A broken run (unreadable meta.json, wrong shape, missing or mistyped fields) is skipped with a
        ``BrokenRunWarning`` that names its folder and the problem; the other runs are listed.
        """
        self.sweep_partial()
        runs, broken = self.scan()
        for folder, problem in sorted(broken.items()):
            warnings.warn(f"skipped broken run {safe_text(folder)} in {self.root}: {safe_text(problem)} "
                          f"(`python -m nnkit runs delete {safe_text(folder)}` removes it)", BrokenRunWarning,
                          stacklevel=2)
        return [r for r in runs if kind is None or r.kind == kind]

    def get(self, ref: str) -> RunInfo:
        """The run whose id, ``--name`` (newest of that name) or unique id prefix is ``ref``.

        A broken run is an error naming its problem; other broken runs do not matter.
        """
        runs, broken = self.scan()
        exact = [r for r in runs if r.run_id == ref] or [r for r in runs if r.name == ref]
        if exact:
            return exact[0]  # newest first, so a reused name means its latest run
        if ref in broken:
            raise NnkitError(f"run {safe_text(ref)} is broken: {safe_text(broken[ref])}")
        prefixed = [r for r in runs if ref and r.run_id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        if prefixed:
            raise NnkitError(f"run {ref!r} is ambiguous: {', '.join(r.run_id for r in prefixed[:5])}")
        broken_prefixed = [b for b in broken if ref and b.startswith(ref)]
        if len(broken_prefixed) == 1:
            b = broken_prefixed[0]
            raise NnkitError(f"run {safe_text(b)} is broken: {safe_text(broken[b])}")
        raise NnkitError(f"no run {ref!r} in {self.root} (see `python -m nnkit runs list`)")

    def check_new_name(self, name: str | None) -> None:
        """Refuse a ``--name`` for a new run that could not name it safely.

        Args:
            name: the name the user gave (None: no name, always fine).

        Returns:
            None; a one-line NnkitError when the name is empty, holds a control character, equals or is
            a prefix of an existing run's id, or looks like the start of one (the name would shadow ids).
        """
        if name is None:
            return
        if not name.strip():
            raise NnkitError("a run name cannot be empty")
        problem = name_problem(name)
        if problem:
            raise NnkitError(f"run name {name!r} is refused: {problem}")
        try:
            ids = [d.name for d in self.root.iterdir() if not d.name.startswith(".") and d.is_dir()]
        except OSError:
            ids = []
        clash = sorted(i for i in ids if i.startswith(name))
        if clash:
            raise NnkitError(f"run name {name!r} is refused: it is {'' if clash[0] == name else 'a prefix of '}"
                             f"the id of run {clash[0]}, which the name would shadow; choose another name")
        if _ID_START.fullmatch(name):
            raise NnkitError(f"run name {name!r} is refused: it looks like the start of a run id "
                             "(<date>-<time>-...), so it would shadow runs trained later; choose another name")

    def delete(self, ref: str) -> str:
        """Delete a run; returns its id.

        The run folder is first renamed into ``.partial`` (one atomic rename, so of two racing deletes
        exactly one wins and the other gets "no run"), then removed. A broken run (see ``list``) is deleted
        by its exact folder name.
        """
        try:
            run = self.get(ref)
            run_id, path = run.run_id, run.path
        except NnkitError:
            if ref not in self.scan()[1]:
                raise
            run_id, path = ref, self.root / ref  # a broken run is deleted by its exact folder name
        tomb = self.root / _PARTIAL / f"{run_id}{_TOMBSTONE}{secrets.token_hex(4)}"
        try:
            tomb.parent.mkdir(exist_ok=True)
            os.rename(path, tomb)
        except FileNotFoundError:
            raise NnkitError(f"no run {ref!r} in {self.root}: it was deleted meanwhile") from None
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise NnkitError(f"no run {ref!r} in {self.root}: it was deleted meanwhile") from None
            raise NnkitError(f"cannot delete run {safe_text(run_id)}: {_io_problem(exc)}") from None
        shutil.rmtree(tomb, ignore_errors=True)
        return run_id


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a user-supplied ``.pt``/``.pth``.

    A ``.pt`` file is read with ``weights_only=True``: tensors only, never arbitrary pickled code.
    """
    path = Path(path)
    if not path.is_file():
        raise NnkitError(f"{path}: no such weights file")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, a truncated file, a different format
        raise NnkitError(f"{path}: not a loadable state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NnkitError(f"{path}: expected a dict of tensors (a state dict)")
    return state
