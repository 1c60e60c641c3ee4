"""The run store (one folder per run) and model loading from it."""

from nnkit.runs.load import load_classifier, load_run_data
from nnkit.runs.store import RunInfo, RunStore, RunWriter, load_weights

__all__ = ["RunInfo", "RunStore", "RunWriter", "load_weights", "load_classifier", "load_run_data"]
