"""Demo 5: convolution, padding, stride and max pooling by hand; feature maps of a trained CNN.

Deep-learning "convolution" is cross-correlation: out[i, j] = Σ_u Σ_v in[i·s + u, j·s + v]·k[u, v]
over the zero-padded input (LeCun et al. 1998). The output side is ⌊(n + 2p - k) / s⌋ + 1
(Dumoulin & Visin 2016, "A guide to convolution arithmetic"). Max pooling keeps the largest value of
each window. Everything here is plain numpy so the page can show each window and its products;
the tests check it against ``torch.nn.functional.conv2d`` and ``max_pool2d``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from nnkit.classroom._threads import one_thread
from nnkit.errors import NnkitError

# Classic 3×3 filters (Sobel 1968, Prewitt 1970, the discrete Laplacian).
KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float64),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], dtype=np.float64),
    "prewitt_x": np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64),
    "box_blur": np.full((3, 3), 1 / 9, dtype=np.float64),
}

POOL_EXAMPLE = np.array([[1, 2, 2, 4], [2, 5, 1, 8], [3, 0, 4, 4], [6, 1, 7, 6]], dtype=np.float64)


def output_size(n: int, k: int, stride: int = 1, padding: int = 0) -> int:
    """⌊(n + 2p - k) / s⌋ + 1: the side of the output of a k×k window over an n×n input.

    Raises NnkitError when the window does not fit even once.
    """
    if k < 1 or stride < 1 or padding < 0 or n < 1:
        raise NnkitError("sizes and stride must be ≥ 1 and padding ≥ 0")
    if n + 2 * padding < k:
        raise NnkitError(f"a {k}×{k} window does not fit a {n}×{n} input with padding {padding}")
    return (n + 2 * padding - k) // stride + 1


def _as_image(image) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2:
        raise NnkitError(f"expected a 2-D grey image, got shape {a.shape}")
    return a


@dataclass(frozen=True)
class Window:
    """One position of the kernel: where it sits, what it sees and what it produces."""

    row: int  # output row
    col: int  # output column
    top: int  # window's top row in the padded input
    left: int  # window's left column in the padded input
    patch: np.ndarray  # k×k values under the kernel
    products: np.ndarray  # patch · kernel, element-wise
    value: float  # Σ products (+ bias)


@dataclass
class ConvResult:
    """The padded input, the kernel and the output map of one convolution."""

    padded: np.ndarray  # (n + 2p)×(n + 2p)
    kernel: np.ndarray
    output: np.ndarray  # out×out
    stride: int
    padding: int
    formula: str  # e.g. "⌊(28 + 2·1 - 3) / 1⌋ + 1 = 28"


def conv_windows(image, kernel, stride: int = 1, padding: int = 0, bias: float = 0.0) -> Iterator[Window]:
    """The kernel's positions in reading order, for animating the slide.

    Args:
        image: H×W grey image; kernel: k×k.
        stride, padding: as in ``torch.nn.Conv2d`` (zero padding).
        bias: added to every output value.

    Yields:
        A Window per output pixel.
    """
    img, ker = _as_image(image), _as_image(kernel)
    if ker.shape[0] != ker.shape[1]:
        raise NnkitError(f"use a square kernel here, got {ker.shape}")
    k = ker.shape[0]
    padded = np.pad(img, padding)
    for r in range(output_size(img.shape[0], k, stride, padding)):
        for c in range(output_size(img.shape[1], k, stride, padding)):
            top, left = r * stride, c * stride
            patch = padded[top:top + k, left:left + k]
            products = patch * ker
            yield Window(r, c, top, left, patch, products, float(products.sum() + bias))


def convolve(image, kernel, stride: int = 1, padding: int = 0, bias: float = 0.0) -> ConvResult:
    """Slide ``kernel`` over ``image`` (cross-correlation, as every deep-learning library does).

    Args:
        image: H×W grey image (square for the formula); kernel: k×k, e.g. ``KERNELS["sobel_x"]``.
        stride: step between windows; padding: zeros added on every side; bias: added to each output.

    Shape:
        H×W → ⌊(H + 2p - k)/s⌋ + 1 per side.

    Returns:
        ConvResult with the padded input, the output map and the size formula written out.
    """
    img, ker = _as_image(image), _as_image(kernel)
    if ker.shape[0] != ker.shape[1]:
        raise NnkitError(f"use a square kernel here, got {ker.shape}")
    k = ker.shape[0]
    n = output_size(img.shape[0], k, stride, padding)
    m = output_size(img.shape[1], k, stride, padding)
    padded = np.pad(img, padding)
    # All windows at once (a strided view), so a 28×28 image updates instantly while a slider moves.
    view = np.lib.stride_tricks.sliding_window_view(padded, (k, k))[::stride, ::stride][:n, :m]
    output = np.einsum("ijuv,uv->ij", view, ker) + bias
    formula = f"⌊({img.shape[0]} + 2·{padding} - {k}) / {stride}⌋ + 1 = {n}"
    return ConvResult(padded, ker, output, stride, padding, formula)


@dataclass
class PoolResult:
    """Max pooling: the output and where each maximum came from."""

    output: np.ndarray
    argmax: np.ndarray  # out×out×2: (row, col) of each window's maximum in the input
    size: int
    stride: int


def max_pool(grid, size: int = 2, stride: int = 2) -> PoolResult:
    """Max pooling without padding (2×2, stride 2 by default).

    Shape:
        H×W → (⌊(H - size)/stride⌋ + 1)×(⌊(W - size)/stride⌋ + 1).

    Returns:
        PoolResult; ``max_pool(POOL_EXAMPLE).output`` is [[5, 8], [6, 7]].
    """
    a = _as_image(grid)
    n = output_size(a.shape[0], size, stride)
    m = output_size(a.shape[1], size, stride)
    out = np.empty((n, m))
    arg = np.empty((n, m, 2), dtype=int)
    for r in range(n):
        for c in range(m):
            window = a[r * stride:r * stride + size, c * stride:c * stride + size]
            u, v = np.unravel_index(int(np.argmax(window)), window.shape)
            out[r, c] = window[u, v]
            arg[r, c] = (r * stride + u, c * stride + v)
    return PoolResult(out, arg, size, stride)


def demo_image(size: int = 16) -> np.ndarray:
    """A grey test image with vertical, horizontal and diagonal edges: a bright square and a triangle.

    Returns:
        size×size float array in [0, 1].
    """
    if size < 8:
        raise NnkitError("the demo image needs a side of at least 8 pixels")
    img = np.zeros((size, size))
    q = size // 4
    img[q:size - q, q:2 * q + 1] = 1.0  # a bar: vertical and horizontal edges
    rows, cols = np.indices((size, size))
    img[(rows > size // 2) & (cols > 2 * q + 1) & (rows - size // 2 >= size - 1 - cols)] = 0.6  # a diagonal edge
    return img


@dataclass
class FeatureMap:
    """Activations after one layer of a CNN's feature extractor, for one image."""

    stage: int  # 1-based conv stage in ``model.net.features``
    layer: str  # "conv", "batchnorm", "relu", "maxpool", ... (the module's class name, lower case)
    maps: np.ndarray  # C×H×W (at most ``max_channels`` channels)
    channels: int  # channels the layer really has


@torch.no_grad()
@one_thread()
def feature_maps(model, image: torch.Tensor, max_channels: int = 8) -> list[FeatureMap]:
    """Per-layer feature maps of a trained nnkit CNN (``models.create("cnn")``) for one image.

    Args:
        model: a Classifier whose ``net.features`` is a sequence of conv stages (the nnkit cnn).
        image: C×H×W (or 1×C×H×W) in [0, 1].
        max_channels: channels kept per layer (the first ones), so the page draws a small grid.

    Returns:
        A FeatureMap after every module of every stage: conv, (batch norm), activation, pooling.
    """
    features = getattr(getattr(model, "net", None), "features", None)
    if not isinstance(features, torch.nn.Sequential) or not all(
            isinstance(s, torch.nn.Sequential) for s in features):
        raise NnkitError("feature maps need an nnkit cnn (its conv stages in model.net.features)")
    x = image.unsqueeze(0) if image.dim() == 3 else image
    if x.dim() != 4 or x.shape[0] != 1:
        raise NnkitError(f"expected one C×H×W image, got shape {tuple(image.shape)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x = (x.to(device) - model.mean) / model.std  # the Classifier's own normalisation
    out = []
    for s, stage in enumerate(features, start=1):
        for module in stage:
            x = module(x)
            name = type(module).__name__.lower().replace("2d", "")
            out.append(FeatureMap(s, name, x[0, :max_channels].float().cpu().numpy(), int(x.shape[1])))
    model.train(was_training)
    return out
