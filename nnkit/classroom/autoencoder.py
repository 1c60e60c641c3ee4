"""Demo 8: undercomplete and denoising autoencoders.

An undercomplete autoencoder squeezes each image through a bottleneck of ``k`` numbers and learns to
rebuild it (Hinton & Salakhutdinov 2006): the smaller ``k``, the blurrier the reconstruction. A
denoising autoencoder sees a corrupted image and is trained to output the clean one (Vincent et al.
2008), so it learns to remove the noise. Both are trained with a plain loop that yields its progress,
so a page can redraw the reconstructions while it learns.

The default network is convolutional (strided convolutions down, transposed convolutions up, as in
Masci et al. 2011, "Stacked convolutional auto-encoders"): on the cluttered ``shapes`` images an MLP of
the same budget learns only each image's background colour (flat blobs), because the pixels it must
place are not tied to their neighbours. When ``k`` fills whole channels of the quarter-resolution grid
(``k = c·(H/4)·(W/4)`` with ``c`` at least the image's channels, e.g. 256 = 4 × 8 × 8 for 32×32 RGB images)
the code is that map of ``c`` channels and keeps *where* things are; otherwise a linear layer makes the
``k`` numbers. The MLP stays as an option.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnkit.classroom._threads import one_thread
from nnkit.device import get_device
from nnkit.errors import Cancelled, NnkitError
from nnkit.seeding import seed_everything

ARCHS = ("conv", "mlp")
# Per-architecture defaults: the conv net's first-stage channels and Adam step (3e-3 reaches recognisable
# shapes within 600 steps; 1e-3 leaves them blurred), the MLP's hidden units and step.
WIDTH = {"conv": 32, "mlp": 128}
LR = {"conv": 3e-3, "mlp": 1e-3}
DEFAULT_BOTTLENECK = 256  # 4 code channels on the 8×8 grid of a 32×32 image: shapes recognisable, 12× fewer numbers
DEFAULT_STEPS = 600


class Autoencoder(nn.Module):
    """MLP autoencoder: pixels → hidden → bottleneck → hidden → pixels (sigmoid, in [0, 1]).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W in [0, 1]; ``encode`` gives the N×bottleneck codes.
    """

    def __init__(self, shape: tuple[int, int, int], bottleneck: int = 32, hidden: int = 128):
        super().__init__()
        if bottleneck < 1 or hidden < 1:
            raise NnkitError(f"bottleneck and hidden sizes must be ≥ 1, got {bottleneck}, {hidden}")
        self.shape = tuple(int(s) for s in shape)
        d = int(np.prod(self.shape))
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, bottleneck))
        self.decoder = nn.Sequential(nn.Linear(bottleneck, hidden), nn.ReLU(), nn.Linear(hidden, d), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x)).view(-1, *self.shape)


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder (Masci et al. 2011): two stride-2 convolutions down to a quarter-resolution
    grid, the bottleneck, two stride-2 transposed convolutions back up (sigmoid, in [0, 1]).

    The bottleneck is a map of ``k / (h·w)`` channels on the h×w grid when ``k`` is a multiple of h·w and
    gives at least as many channels as the image has (the code keeps where things are), else ``k`` numbers
    from a linear layer.

    Args:
        shape: C×H×W of the images; bottleneck: k, the numbers per image in the code; width: channels of
            the first stage (the second has twice as many).

    Shape:
        N×C×H×W in [0, 1] → N×C×H×W in [0, 1]; ``encode`` gives the N×k codes (flattened).
    """

    def __init__(self, shape: tuple[int, int, int], bottleneck: int = DEFAULT_BOTTLENECK, width: int = 32):
        super().__init__()
        if bottleneck < 1 or width < 1:
            raise NnkitError(f"bottleneck and width must be ≥ 1, got {bottleneck}, {width}")
        self.shape = tuple(int(s) for s in shape)
        c, h, w = self.shape
        gh, gw = (h + 1) // 2, (w + 1) // 2
        gh, gw = (gh + 1) // 2, (gw + 1) // 2  # the grid after two stride-2, padding-1 3×3 convolutions
        a, b = int(width), 2 * int(width)
        # A map of fewer channels than the image has cannot hold a colour per cell: such k go through a
        # linear layer instead (on shapes, one code channel came out worse than the flat-colour image).
        self.spatial = bottleneck % (gh * gw) == 0 and bottleneck // (gh * gw) >= c
        down = [nn.Conv2d(c, a, 3, 2, 1), nn.ReLU(), nn.Conv2d(a, b, 3, 2, 1), nn.ReLU()]
        if self.spatial:
            code = bottleneck // (gh * gw)
            self.encoder = nn.Sequential(*down, nn.Conv2d(b, code, 1))
            head = [nn.Conv2d(code, b, 3, 1, 1), nn.ReLU()]
        else:
            self.encoder = nn.Sequential(*down, nn.Flatten(), nn.Linear(b * gh * gw, bottleneck))
            head = [nn.Linear(bottleneck, b * gh * gw), nn.ReLU(), nn.Unflatten(1, (b, gh, gw))]
        self.decoder = nn.Sequential(*head, nn.ConvTranspose2d(b, a, 4, 2, 1), nn.ReLU(),
                                     nn.ConvTranspose2d(a, c, 4, 2, 1), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.decoder(self.encoder(x))
        if out.shape[-2:] != x.shape[-2:]:  # odd sizes come back a pixel or two larger: crop to the input
            out = out[..., : x.shape[-2], : x.shape[-1]]
        return out


def build_autoencoder(shape: tuple[int, int, int], bottleneck: int = DEFAULT_BOTTLENECK, arch: str = "conv",
                      width: int | None = None) -> nn.Module:
    """The demo's network: ``ConvAutoencoder`` (default) or the MLP ``Autoencoder``.

    Args:
        shape: C×H×W; bottleneck: k; arch: "conv" or "mlp"; width: first-stage channels (conv) or hidden
            units (mlp), None for the architecture's default (``WIDTH``).

    Returns:
        The untrained module (a one-line NnkitError for an unknown ``arch``).
    """
    if arch not in ARCHS:
        raise NnkitError(f"unknown autoencoder {arch!r}: choose conv or mlp")
    width = WIDTH[arch] if width is None else int(width)
    if arch == "mlp":
        return Autoencoder(shape, int(bottleneck), width)
    return ConvAutoencoder(shape, int(bottleneck), width)


def corrupt(images: torch.Tensor, noise: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive Gaussian noise of standard deviation ``noise``, clipped back to [0, 1]."""
    if noise < 0:
        raise NnkitError(f"noise must be ≥ 0, got {noise}")
    if noise == 0:
        return images
    eps = torch.randn(images.shape, generator=generator, dtype=images.dtype).to(images.device)
    return (images + noise * eps).clamp(0, 1)


@dataclass
class AutoencoderProgress:
    """One snapshot of the training: the model is live (it keeps learning after this is yielded)."""

    step: int
    steps: int
    loss: float  # mean squared error to the clean images, averaged over the last ``every`` steps
    model: nn.Module  # Autoencoder or ConvAutoencoder


def train_autoencoder(images: torch.Tensor, bottleneck: int = DEFAULT_BOTTLENECK, noise: float = 0.0,
                      steps: int = DEFAULT_STEPS, batch_size: int = 64, lr: float | None = None,
                      width: int | None = None, arch: str = "conv", seed: int | None = 0,
                      device: str | torch.device | None = "cpu", every: int = 20,
                      stop_event: threading.Event | None = None) -> Iterator[AutoencoderProgress]:
    """Train an autoencoder with Adam on MSE to the clean images; yield progress every ``every`` steps.

    Undercomplete (Hinton & Salakhutdinov 2006) with ``noise`` 0, denoising (Vincent et al. 2008) above.

    Args:
        images: N×C×H×W training images in [0, 1] (e.g. MNIST or shapes train images).
        bottleneck: code size k (the slider); noise: σ of the input corruption (0: undercomplete only,
            > 0: denoising).
        steps, batch_size: the training budget.
        lr: Adam's step (None: ``LR[arch]``); width: first-stage channels (conv) or hidden units (mlp),
            None: ``WIDTH[arch]``; arch: "conv" (default) or "mlp" (see ``build_autoencoder``).
        seed: seeds weights, batches and noise (None picks one).
        device: where to train; every: steps between yields.
        stop_event: set it to stop within one step (``Cancelled`` is raised).

    Shape:
        images N×C×H×W → a model mapping N×C×H×W to N×C×H×W.

    Yields:
        AutoencoderProgress after step 0 (untrained), every ``every`` steps and at the end.
    """
    if images.dim() != 4 or len(images) == 0:
        raise NnkitError(f"expected N×C×H×W images, got shape {tuple(images.shape)}")
    if steps < 1 or batch_size < 1 or every < 1:
        raise NnkitError("steps, batch size and frame interval must be ≥ 1")
    seed = seed_everything(seed)
    device = get_device(str(device) if device is not None else None)
    g = torch.Generator().manual_seed(seed)
    x = images.to(device)
    with one_thread():
        model = build_autoencoder(tuple(images.shape[1:]), int(bottleneck), arch, width).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=LR[arch] if lr is None else float(lr))
        with torch.no_grad():
            start = float(F.mse_loss(model(corrupt(x[:256], noise, g)), x[:256]))
    yield AutoencoderProgress(0, steps, start, model)

    def run(first: int, last: int) -> float:
        """Steps first..last; their mean loss (one intra-op thread: the tensors are small)."""
        losses = []
        with one_thread():
            for _ in range(first, last + 1):
                if stop_event is not None and stop_event.is_set():
                    raise Cancelled("autoencoder training cancelled")
                idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=g).to(device)
                clean = x[idx]
                loss = F.mse_loss(model(corrupt(clean, noise, g)), clean)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.detach())
        return float(torch.stack(losses).mean())

    for first in range(1, int(steps) + 1, every):
        last = min(first + every - 1, int(steps))
        yield AutoencoderProgress(last, steps, run(first, last), model)


def fit_autoencoder(images: torch.Tensor, **kwargs) -> tuple[nn.Module, list[float]]:
    """Run ``train_autoencoder`` to the end; returns (model in eval mode, loss per snapshot)."""
    losses, model = [], None
    for p in train_autoencoder(images, **kwargs):
        losses.append(p.loss)
        model = p.model
    return model.eval(), losses


def _to_numpy_images(x: torch.Tensor) -> np.ndarray:
    """N×C×H×W → N×H×W (grey) or N×H×W×C (colour), the layouts plotly's imshow takes."""
    a = x.detach().float().cpu().numpy()
    return a[:, 0] if a.shape[1] == 1 else a.transpose(0, 2, 3, 1)


@dataclass
class Reconstructions:
    """Clean, corrupted and reconstructed images side by side, with their errors to the clean ones."""

    clean: np.ndarray  # N×H×W or N×H×W×C in [0, 1]
    noisy: np.ndarray
    reconstructed: np.ndarray
    mse_noisy: float  # mean squared error of the corrupted input to the clean image
    mse_reconstructed: float  # ... of the reconstruction


@torch.no_grad()
@one_thread()
def reconstruct(model: nn.Module, images: torch.Tensor, noise: float = 0.0, seed: int = 0) -> Reconstructions:
    """Corrupt ``images`` with noise σ, pass them through the autoencoder, compare with the clean ones.

    Shape:
        images N×C×H×W in [0, 1] → arrays N×H×W (grey) or N×H×W×C (colour).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    clean = images.to(device)
    noisy = corrupt(clean, noise, torch.Generator().manual_seed(seed))
    recon = model(noisy)
    model.train(was_training)
    return Reconstructions(_to_numpy_images(clean), _to_numpy_images(noisy), _to_numpy_images(recon),
                           float(F.mse_loss(noisy, clean)), float(F.mse_loss(recon, clean)))


@torch.no_grad()
def codes(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """Bottleneck codes, N×k (with k = 2 the page can scatter them coloured by label)."""
    device = next(model.parameters()).device
    return model.encode(images.to(device)).float().cpu().numpy()
