"""The one run store: a folder per run under ``$NNKIT_HOME/runs``.

A run is written into ``runs/.partial/<id>/`` while it is being made and renamed into ``runs/<id>/``
only once complete, so a run killed mid-training is never listed. Each complete run holds
``meta.json`` (id, name, kind, seed, versions, device, dataset, model spec, summary),
``config.json`` (the job's config dataclass), ``metrics.jsonl`` (one line per epoch) and weights
as safetensors, plus any artefacts (PNG grids) the job saved.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nnkit.atomic import write_bytes, write_json
from nnkit.errors import NnkitError
from nnkit.paths import runs_dir

META = "meta.json"
WEIGHTS = "model.safetensors"
_PARTIAL = ".partial"


@dataclass
class RunInfo:
    """A complete run: its folder and its meta.json contents."""

    run_id: str
    path: Path
    meta: dict

    @property
    def name(self) -> str | None:
        return self.meta.get("name")

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "classifier")

    def read_json(self, filename: str) -> dict:
        return json.loads((self.path / filename).read_text())

    def metrics(self) -> list[dict]:
        """The run's metrics.jsonl, one dict per line (empty when absent)."""
        f = self.path / "metrics.jsonl"
        if not f.exists():
            return []
        return [json.loads(line) for line in f.read_text().splitlines() if line.strip()]


class RunWriter:
    """Writes one run into its partial folder; ``finish`` publishes it, ``abort`` removes it."""

    def __init__(self, root: Path, run_id: str):
        self.root = root
        self.run_id = run_id
        self.path = root / _PARTIAL / run_id
        self.path.mkdir(parents=True)

    def log_metrics(self, record: dict) -> None:
        """Append one JSON line to metrics.jsonl."""
        with open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def save_json(self, filename: str, obj) -> None:
        write_json(self.path / filename, obj)

    def save_bytes(self, filename: str, data: bytes) -> None:
        write_bytes(self.path / filename, data)

    def save_weights(self, model: torch.nn.Module, filename: str = WEIGHTS) -> None:
        """Save ``model``'s state dict as safetensors (CPU, contiguous)."""
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(self.path / filename))

    def finish(self, meta: dict) -> RunInfo:
        """Write meta.json and move the run into the store atomically (one rename)."""
        meta = {"run_id": self.run_id, "status": "complete", **meta}
        write_json(self.path / META, meta)
        final = self.root / self.run_id
        os.replace(self.path, final)
        return RunInfo(self.run_id, final, meta)

    def abort(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class RunStore:
    """The run store at ``root`` (default ``$NNKIT_HOME/runs``)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else runs_dir()

    def begin(self, label: str) -> RunWriter:
        """Start a new run; its id is ``<UTC time>-<label>-<random>``, sortable by creation."""
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
        return RunWriter(self.root, f"{stamp}-{safe}-{secrets.token_hex(2)}")

    def list(self, kind: str | None = None) -> list[RunInfo]:
        """Complete runs, newest first (optionally only those of ``kind``)."""
        if not self.root.is_dir():
            return []
        runs = []
        for d in self.root.iterdir():
            if d.name.startswith(".") or not (d / META).is_file():
                continue
            try:
                meta = json.loads((d / META).read_text())
            except (OSError, json.JSONDecodeError):
                continue  # a damaged run is not listed rather than breaking the listing
            if meta.get("status") == "complete" and (kind is None or meta.get("kind") == kind):
                runs.append(RunInfo(d.name, d, meta))
        return sorted(runs, key=lambda r: r.run_id, reverse=True)

    def get(self, ref: str) -> RunInfo:
        """The run whose id, ``--name`` (newest of that name) or unique id prefix is ``ref``."""
        runs = self.list()
        exact = [r for r in runs if r.run_id == ref] or [r for r in runs if r.name == ref]
        if exact:
            return exact[0]  # newest first, so a reused name means its latest run
        prefixed = [r for r in runs if ref and r.run_id.startswith(ref)]
        if len(prefixed) == 1:
            return prefixed[0]
        if prefixed:
            raise NnkitError(f"run {ref!r} is ambiguous: {', '.join(r.run_id for r in prefixed[:5])}")
        raise NnkitError(f"no run {ref!r} in {self.root} (see `python -m nnkit runs list`)")

    def delete(self, ref: str) -> str:
        """Delete a run; returns its id."""
        run = self.get(ref)
        shutil.rmtree(run.path)
        return run.run_id


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
