"""Saliency: where does a classifier look? One entry point over captum's attribution methods.

    attr = explain(model, images, method="gradcam")   # N×C×H×W, like the images
    maps = to_map(attr)                                # N×H×W
    fig = grid_figure(images, {"Grad-CAM": maps})      # a plotly figure, not shown
"""

from nnkit.saliency.figures import blend, colormap, grid_figure, overlay_figure, render_grid_png
from nnkit.saliency.maps import REDUCTIONS, normalize_maps, to_map
from nnkit.saliency.methods import (
    ALIASES,
    METHODS,
    Method,
    explain,
    explain_many,
    find_last_conv,
    list_methods,
    parse_methods,
    resolve_method,
)

__all__ = [
    "ALIASES", "METHODS", "REDUCTIONS", "Method", "blend", "colormap", "explain", "explain_many", "find_last_conv",
    "grid_figure", "list_methods", "normalize_maps", "overlay_figure", "parse_methods", "render_grid_png",
    "resolve_method", "to_map",
]
