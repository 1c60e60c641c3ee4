"""Demo 8: undercomplete and denoising autoencoders.

An undercomplete autoencoder squeezes each image through a bottleneck of ``k`` numbers and learns to
rebuild it (Hinton & Salakhutdinov 2006): the smaller ``k``, the blurrier the reconstruction. A
denoising autoencoder sees a corrupted image and is trained to output the clean one (Vincent et al.
2008), so it learns to remove the noise. Both are small MLPs trained with a plain loop that yields
its progress, so a page can redraw the reconstructions while it learns.
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
    model: Autoencoder


def train_autoencoder(images: torch.Tensor, bottleneck: int = 32, noise: float = 0.0, steps: int = 500,
                      batch_size: int = 64, lr: float = 1e-3, hidden: int = 128, seed: int | None = 0,
                      device: str | torch.device | None = "cpu", every: int = 50,
                      stop_event: threading.Event | None = None) -> Iterator[AutoencoderProgress]:
    """Train an autoencoder with Adam on MSE to the clean images; yield progress every ``every`` steps.

    Args:
        images: N×C×H×W training images in [0, 1] (e.g. MNIST or shapes train images).
        bottleneck: code size k (the slider); noise: σ of the input corruption (0: undercomplete only,
            > 0: denoising).
        steps, batch_size, lr, hidden: the training budget and the network's hidden width.
        seed: seeds weights, batches and noise (None picks one).
        device: where to train; every: steps between yields.
        stop_event: set it to stop within one step (``Cancelled`` is raised).

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
        model = Autoencoder(tuple(images.shape[1:]), int(bottleneck), int(hidden)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
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


def fit_autoencoder(images: torch.Tensor, **kwargs) -> tuple[Autoencoder, list[float]]:
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
def reconstruct(model: Autoencoder, images: torch.Tensor, noise: float = 0.0, seed: int = 0) -> Reconstructions:
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
def codes(model: Autoencoder, images: torch.Tensor) -> np.ndarray:
    """Bottleneck codes, N×k (with k = 2 the page can scatter them coloured by label)."""
    device = next(model.parameters()).device
    return model.encode(images.to(device)).float().cpu().numpy()
