"""The run store (one folder per run) and model loading from it."""

from nnkit.runs.load import collect_data_warnings, load_classifier, load_run_data
from nnkit.runs.meta import meta_problem, safe_text
from nnkit.runs.store import BrokenRunWarning, RunInfo, RunStore, RunWriter, load_weights

__all__ = ["BrokenRunWarning", "RunInfo", "RunStore", "RunWriter", "load_weights", "load_classifier",
           "load_run_data", "meta_problem", "safe_text", "collect_data_warnings"]
