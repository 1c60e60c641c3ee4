"""Saliency figures: a heatmap over its image, and a grid of images × methods.

Plotly figures are returned, never shown: the dashboard page shows them, the CLI saves them as JSON.
``render_grid_png`` draws the same grid as a PNG with torchvision and PIL (no matplotlib).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from nnkit.errors import NnkitError
from nnkit.saliency.maps import normalize_maps

COLORSCALE = "Inferno"  # perceptually uniform, dark = no relevance
_HEADER = 14  # pixel height of the PNG's column titles


def _rgb_uint8(image: torch.Tensor) -> np.ndarray:
    """C×H×W in [0, 1] (C = 1 or 3) → H×W×3 uint8."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise NnkitError(f"an image must be C×H×W with 1 or 3 channels, got shape {tuple(image.shape)}")
    img = image.detach().float().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        img = img.expand(3, -1, -1)
    return (img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _image_traces(image: torch.Tensor, heatmap: torch.Tensor | None, opacity: float, showscale: bool):
    import plotly.graph_objects as go

    traces = [go.Image(z=_rgb_uint8(image), hoverinfo="skip")]
    if heatmap is not None:
        z = normalize_maps(heatmap.detach().float().cpu()).numpy()
        traces.append(go.Heatmap(z=z, colorscale=COLORSCALE, zmin=0, zmax=1, opacity=opacity,
                                 showscale=showscale, hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"))
    return traces


def overlay_figure(image: torch.Tensor, heatmap: torch.Tensor, title: str | None = None, opacity: float = 0.55):
    """One image with its relevance map laid over it.

    Args:
        image: C×H×W in [0, 1] (grey or RGB).
        heatmap: H×W relevance (any scale; shown as |map| scaled to its 99th percentile).
        title: figure title.
        opacity: of the heatmap layer.

    Returns:
        A ``plotly.graph_objects.Figure`` (not shown).
    """
    import plotly.graph_objects as go

    if tuple(heatmap.shape) != tuple(image.shape[-2:]):
        raise NnkitError(f"heatmap {tuple(heatmap.shape)} does not match the image {tuple(image.shape[-2:])}")
    fig = go.Figure(_image_traces(image, heatmap, opacity, showscale=True))
    fig.update_yaxes(autorange="reversed", scaleanchor="x", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_layout(title=title, margin=dict(l=10, r=10, t=40 if title else 10, b=10), height=360, width=400)
    return fig


def grid_figure(images: torch.Tensor, maps: dict[str, torch.Tensor], row_titles: list[str] | None = None,
                opacity: float = 0.55):
    """A grid: one row per image, the image first, then one overlay per method.

    Args:
        images: N×C×H×W in [0, 1].
        maps: ``{method label: N×H×W map}`` (e.g. ``to_map(explain(...))`` per method).
        row_titles: optional text per row (e.g. "label circle, predicted square").
        opacity: of the heatmap layers.

    Returns:
        A ``plotly.graph_objects.Figure`` (not shown).
    """
    from plotly.subplots import make_subplots

    n, cols = images.shape[0], 1 + len(maps)
    for label, m in maps.items():
        if tuple(m.shape) != (n, *images.shape[-2:]):
            raise NnkitError(f"map {label!r} has shape {tuple(m.shape)}, expected {(n, *images.shape[-2:])}")
    if n == 0:
        raise NnkitError("no images to draw")
    fig = make_subplots(rows=n, cols=cols, column_titles=["image", *maps], row_titles=row_titles,
                        horizontal_spacing=0.01, vertical_spacing=0.01)
    for i in range(n):
        for trace in _image_traces(images[i], None, opacity, False):
            fig.add_trace(trace, row=i + 1, col=1)
        for j, m in enumerate(maps.values()):
            for trace in _image_traces(images[i], m[i], opacity, showscale=(i == 0 and j == 0)):
                fig.add_trace(trace, row=i + 1, col=j + 2)
    fig.update_yaxes(autorange="reversed", visible=False)
    fig.update_xaxes(visible=False)
    fig.update_annotations(font_size=11)  # column and row titles: long method names stay apart
    # The colour bar sits right of the row titles.
    fig.update_traces(colorbar=dict(thickness=10, x=1.06), selector=dict(type="heatmap"))
    fig.update_layout(height=max(200, 110 * n + 60), width=max(300, 110 * cols + 120),
                      margin=dict(l=10, r=60, t=40, b=10))
    return fig


def colormap(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] to RGB with plotly's Inferno scale.

    Shape:
        any shape S → S×3 float32 in [0, 1].
    """
    import plotly.colors as pc

    table = torch.tensor([[int(v) / 255 for v in c[4:-1].split(",")]
                          for c in pc.sample_colorscale(COLORSCALE, np.linspace(0, 1, 256).tolist())])
    idx = (values.detach().float().clamp(0, 1) * 255).round().long()
    return table[idx]


def blend(images: torch.Tensor, maps: torch.Tensor, alpha: float = 0.55) -> torch.Tensor:
    """Heatmaps blended over their images (for PNG output).

    Shape:
        images N×C×H×W in [0, 1] (C = 1 or 3), maps N×H×W → N×3×H×W in [0, 1].
    """
    rgb = images.detach().float().cpu().clamp(0, 1)
    if rgb.shape[1] == 1:
        rgb = rgb.expand(-1, 3, -1, -1)
    heat = colormap(normalize_maps(maps.detach().float().cpu())).permute(0, 3, 1, 2)
    return (1 - alpha) * rgb + alpha * heat


def render_grid_png(images: torch.Tensor, maps: dict[str, torch.Tensor], scale: int = 4, alpha: float = 0.55,
                    row_titles: list[str] | None = None) -> bytes:
    """The images × methods grid as PNG bytes (torchvision's make_grid, PIL for the titles).

    Args:
        images: N×C×H×W in [0, 1].
        maps: ``{method label: N×H×W map}``.
        scale: nearest-neighbour enlargement so that small images stay readable.
        alpha: heatmap opacity.
        row_titles: optional text per row, written left of it (e.g. "circle→square": true → predicted).

    Returns:
        PNG file contents.
    """
    import matplotlib
    import torch.nn.functional as F
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid

    n = images.shape[0]
    if n == 0:
        raise NnkitError("no images to draw")
    rgb = images.detach().float().cpu().clamp(0, 1)
    if rgb.shape[1] == 1:
        rgb = rgb.expand(-1, 3, -1, -1)
    columns = [rgb] + [blend(images, m, alpha) for m in maps.values()]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image i, then its methods
    tiles = F.interpolate(tiles, scale_factor=scale, mode="nearest")
    pad = 2
    grid = make_grid(tiles, nrow=len(columns), padding=pad, pad_value=1.0)
    arr = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    body = Image.fromarray(arr)
    # matplotlib's DejaVu Sans has the arrow of "true→predicted"; PIL's built-in font draws it as a box.
    font = ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), 11)
    if row_titles is not None and len(row_titles) != n:
        raise NnkitError(f"{len(row_titles)} row titles for {n} images")
    rows = [str(t) for t in row_titles] if row_titles is not None else []
    left = int(max((font.getlength(t) for t in rows), default=-6)) + 6  # the row titles' column
    canvas = Image.new("RGB", (left + body.width, body.height + _HEADER), "white")
    canvas.paste(body, (left, _HEADER))
    draw = ImageDraw.Draw(canvas)
    tile_w = tiles.shape[-1] + pad
    for j, title in enumerate(["image", *maps]):
        draw.text((left + pad + j * tile_w + 2, 1), str(title)[: max(4, tile_w // 6)], fill=(0, 0, 0), font=font)
    for i, title in enumerate(rows):  # vertically centred on its row of tiles
        draw.text((2, _HEADER + pad + i * tile_w + tile_w // 2), title, fill=(0, 0, 0), font=font, anchor="lm")
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
