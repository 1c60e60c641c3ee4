"""The report's figures and images as plain JSON: plotly figures by their JSON form, PNGs as base64.

The canonical report is one JSON document; HTML and Markdown are rendered from it alone, so a figure
is stored once (its plotly JSON) and drawn by whichever renderer reads it.
"""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np


def plain(obj):
    """``obj`` as strict JSON data: NaN and infinities become None, numpy values and tuples plain ones."""
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def _untyped(obj):
    """plotly's base64 typed arrays (``{"dtype", "bdata", "shape"}``) as plain nested lists."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            values = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            shape = obj.get("shape")
            if shape:
                values = values.reshape([int(v) for v in str(shape).split(",")])
            return values.tolist()
        return {k: _untyped(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_untyped(v) for v in obj]
    return obj


def figure_json(fig) -> dict:
    """A plotly figure as plain ``{"data": [...], "layout": {...}}``: numbers, not numpy or typed arrays, so
    the report's JSON reads the same in any tool."""
    import plotly

    return plain(_untyped(json.loads(json.dumps(fig.to_plotly_json(), cls=plotly.utils.PlotlyJSONEncoder))))


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of PNG bytes."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return im.width, im.height


class Assets:
    """Collects the figures and images of a report under unique ids, in the order they were added."""

    def __init__(self):
        self.figures: dict[str, dict] = {}
        self.images: dict[str, dict] = {}

    def figure(self, key: str, fig, *, title: str, section: str, caption: str, cli: str | None = None) -> str:
        """Add a plotly figure; returns its id (``key``)."""
        self.figures[key] = {"title": title, "section": section, "caption": caption, "cli": cli,
                             "plotly": figure_json(fig)}
        return key

    def image(self, key: str, png: bytes, *, title: str, section: str, caption: str, cli: str | None = None) -> str:
        """Add a PNG image; returns its id (``key``)."""
        width, height = png_size(png)
        self.images[key] = {"title": title, "section": section, "caption": caption, "cli": cli,
                            "mime": "image/png", "width": width, "height": height,
                            "base64": base64.b64encode(png).decode("ascii")}
        return key


def image_bytes(entry: dict) -> bytes:
    """The PNG bytes of a report image entry."""
    return base64.b64decode(entry["base64"])
