"""Demo 9: the GAN minimax game on a 1-D or 2-D toy distribution, the way GAN Lab shows it.

Generator G maps noise z to samples; discriminator D scores how real a sample looks. They play
min_G max_D V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))] (Goodfellow et al. 2014), here with one
D step and one G step per iteration and the non-saturating generator loss -log D(G(z)) the paper
recommends. At the game's equilibrium G's samples match the data and D outputs 1/2 everywhere.
Each yielded frame holds the real and fake samples and D's output over a grid, for plotting.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nnkit.classroom._threads import one_thread
from nnkit.errors import Cancelled, NnkitError
from nnkit.seeding import seed_everything

# name -> (dimension, plot range per axis, description)
TARGETS = {
    "gaussian": (1, (-1.0, 5.0), "1-D Gaussian N(2, 0.5²)"),
    "bimodal": (1, (-4.0, 4.0), "1-D mixture of N(-2, 0.4²) and N(2, 0.4²)"),
    "ring": (2, (-3.0, 3.0), "2-D ring of 8 Gaussians (radius 2, σ 0.1)"),
    "line": (2, (-3.0, 3.0), "2-D samples along the diagonal segment from (-1.5, -1.5) to (1.5, 1.5)"),
}


def sample_target(name: str, n: int, generator: torch.Generator) -> torch.Tensor:
    """n samples of the toy distribution ``name`` (see ``TARGETS``), shape n×dim."""
    if name == "gaussian":
        return 2.0 + 0.5 * torch.randn(n, 1, generator=generator)
    if name == "bimodal":
        sign = torch.randint(0, 2, (n, 1), generator=generator) * 2.0 - 1.0
        return 2.0 * sign + 0.4 * torch.randn(n, 1, generator=generator)
    if name == "ring":
        angle = torch.randint(0, 8, (n,), generator=generator) * (2 * math.pi / 8)
        centres = 2.0 * torch.stack([angle.cos(), angle.sin()], 1)
        return centres + 0.1 * torch.randn(n, 2, generator=generator)
    if name == "line":
        t = torch.rand(n, 1, generator=generator) * 3.0 - 1.5
        return torch.cat([t, t], 1) + 0.05 * torch.randn(n, 2, generator=generator)
    raise NnkitError(f"unknown toy distribution {name!r}: choose one of {', '.join(TARGETS)}")


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, d_out))


@dataclass
class GanFrame:
    """The game after ``step`` iterations."""

    step: int
    d_loss: float  # -[log D(x) + log(1 - D(G(z)))], mean over the batch
    g_loss: float  # -log D(G(z)) (non-saturating)
    value: float  # V(D, G) = E log D(x) + E log(1 - D(G(z))) on the frame's samples
    real: np.ndarray  # M×dim data samples
    fake: np.ndarray  # M×dim generator samples
    grid: list[np.ndarray]  # one axis per dimension (G points each)
    d_grid: np.ndarray  # D's output on the grid: G (1-D) or G×G with row i = grid[1][i] (2-D)


def gan_steps(target: str = "gaussian", steps: int = 2000, every: int = 50, batch_size: int = 128,
              lr: float = 1e-3, hidden: int = 32, noise_dim: int | None = None, samples: int = 500,
              grid_size: int = 101, seed: int | None = 0, stop_event: threading.Event | None = None,
              ) -> Iterator[GanFrame]:
    """Play the GAN game on CPU; yield a GanFrame every ``every`` iterations.

    Args:
        target: a key of ``TARGETS``.
        steps: iterations (one D step and one G step each); every: iterations between frames.
        batch_size: samples per step for each player; lr: Adam's rate for both (betas 0.5, 0.999,
            as in DCGAN, Radford et al. 2016).
        hidden: units per hidden layer of both players; noise_dim: z's size (default: the data's).
        samples: real and fake samples in each frame (fixed z, so the page shows the points move).
        grid_size: grid points per axis for D's output (2-D: grid_size² points).
        seed: seeds both players and the data (None picks one).
        stop_event: set it to stop within one iteration (``Cancelled`` is raised).

    Yields:
        GanFrame at step 0, every ``every`` iterations and at the end.
    """
    if target not in TARGETS:
        raise NnkitError(f"unknown toy distribution {target!r}: choose one of {', '.join(TARGETS)}")
    if steps < 0 or every < 1 or batch_size < 1 or samples < 1 or grid_size < 2:
        raise NnkitError("steps ≥ 0; frame interval, batch size, samples ≥ 1; grid size ≥ 2")
    dim, (lo, hi), _ = TARGETS[target]
    seed = seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    zdim = int(noise_dim or dim)
    gen, disc = _mlp(zdim, hidden, dim), _mlp(dim, hidden, 1)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    fixed_z = torch.randn(samples, zdim, generator=g)
    fixed_real = sample_target(target, samples, g)
    axis = np.linspace(lo, hi, grid_size)
    if dim == 1:
        grid_points = torch.tensor(axis, dtype=torch.float32).view(-1, 1)
    else:
        xx, yy = np.meshgrid(axis, axis)
        grid_points = torch.tensor(np.stack([xx.ravel(), yy.ravel()], 1), dtype=torch.float32)

    @torch.no_grad()
    def frame(step: int, d_loss: float, g_loss: float) -> GanFrame:
        fake = gen(fixed_z)
        log_d_real = F.logsigmoid(disc(fixed_real)).mean()
        log_1m_d_fake = F.logsigmoid(-disc(fake)).mean()  # log(1 - σ(a)) = log σ(-a)
        d = torch.sigmoid(disc(grid_points)).view(-1).numpy()
        d_grid = d if dim == 1 else d.reshape(grid_size, grid_size)
        return GanFrame(step, d_loss, g_loss, float(log_d_real + log_1m_d_fake), fixed_real.numpy(),
                        fake.numpy(), [axis.copy() for _ in range(dim)], d_grid)

    def play(first: int, last: int) -> GanFrame:
        """Iterations first..last, then the frame after them (one intra-op thread: tiny tensors)."""
        d_losses, g_losses = [], []
        with one_thread():
            for _ in range(first, last + 1):
                if stop_event is not None and stop_event.is_set():
                    raise Cancelled("GAN training cancelled")
                real = sample_target(target, batch_size, g)
                fake = gen(torch.randn(batch_size, zdim, generator=g))
                # D ascends log D(x) + log(1 - D(G(z))): cross-entropy with labels 1 (real), 0 (fake).
                d_loss = (F.binary_cross_entropy_with_logits(disc(real), torch.ones(batch_size, 1))
                          + F.binary_cross_entropy_with_logits(disc(fake.detach()), torch.zeros(batch_size, 1)))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                # G descends -log D(G(z)) (non-saturating): strong gradients even while D wins easily.
                g_loss = F.binary_cross_entropy_with_logits(disc(fake), torch.ones(batch_size, 1))
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                d_losses.append(d_loss.detach())
                g_losses.append(g_loss.detach())
            return frame(last, float(torch.stack(d_losses).mean()), float(torch.stack(g_losses).mean()))

    with one_thread():
        first_frame = frame(0, math.nan, math.nan)
    yield first_frame
    for start in range(1, int(steps) + 1, every):
        yield play(start, min(start + every - 1, int(steps)))
