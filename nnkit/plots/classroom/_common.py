"""Helpers shared by the classroom figure modules: the classroom layout, colours, and the play/step controls.

Private to ``nnkit.plots.classroom``; pages import the demo's own module, never this one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from nnkit.plots.theme import LAYOUT, TRAIN_COLOUR, VAL_COLOUR

# The shared look without its legend (classroom figures place their legends one by one) and with room for a title.
_LAYOUT = {**{k: v for k, v in LAYOUT.items() if k != "legend"}, "margin": dict(l=10, r=10, t=50, b=10)}
_CLASS_COLOURS = (VAL_COLOUR, TRAIN_COLOUR)  # label 0, label 1 (plotly's default red and blue)
_PALETTE = (TRAIN_COLOUR, VAL_COLOUR, "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880")


def _finite(values) -> list[float | None]:
    """Floats with NaN/inf as None, so plotly leaves a gap instead of failing or squashing the axis."""
    return [float(v) if v is not None and math.isfinite(float(v)) else None for v in values]


def _rgb(image: np.ndarray) -> np.ndarray:
    """H×W or H×W×C floats in [0, 1] → H×W×3 uint8 (what ``go.Image`` shows pixel for pixel)."""
    a = np.clip(np.asarray(image, dtype=np.float64), 0, 1)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return (a * 255).round().astype(np.uint8)


def _play_controls(steps: Sequence, label: str, duration: int = 150, y: float = -0.12) -> dict:
    """Layout entries for a play/pause button and a step slider over frames named ``str(step)``."""
    slider = dict(active=0, currentvalue=dict(prefix=f"{label} "), pad=dict(t=40), x=0.12, len=0.88, y=y,
                  steps=[dict(label=str(s), method="animate",
                              args=[[str(s)], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                   transition=dict(duration=0))]) for s in steps])
    play = dict(type="buttons", showactive=False, x=0.0, y=y, xanchor="left", yanchor="top", pad=dict(t=58, r=10),
                direction="left",
                buttons=[dict(label="▶", method="animate",
                              args=[None, dict(frame=dict(duration=duration, redraw=True), fromcurrent=True,
                                               transition=dict(duration=0))]),
                         dict(label="❚❚", method="animate",
                              args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False),
                                                 transition=dict(duration=0))])])
    return dict(sliders=[slider], updatemenus=[play])
