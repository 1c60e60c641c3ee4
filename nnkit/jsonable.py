"""JSON that strict parsers accept: NaN and infinities become null, numpy and torch values plain numbers."""

from __future__ import annotations

import math


def json_ready(obj):
    """A copy of ``obj`` that ``json.dumps`` writes as strict JSON.

    Args:
        obj: dicts, lists, tuples, floats, ints, strings, None, numpy scalars/arrays, torch tensors.

    Returns:
        The same structure with NaN/±inf replaced by None, arrays and tensors as (nested) lists, and
        numpy/torch scalars as Python numbers (``json.dumps(..., allow_nan=False)`` then succeeds).
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays/scalars, torch tensors
        return json_ready(obj.tolist())
    return obj
