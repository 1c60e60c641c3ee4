"""Sampling from a trained generator: a grid of N, latent interpolation, per-class rows; PNG grids.

Interpolation walks between two noise vectors (Radford et al. 2016, §6.1 "walking in the latent space");
by default along the great circle (slerp, White 2016), because a Gaussian z concentrates near a sphere
and the straight line between two points passes through its unlikely low-norm interior.
"""

from __future__ import annotations

import io
import math

import torch
from PIL import Image

from nnkit.errors import NnkitError
from nnkit.gan.models import Discriminator, Generator
from nnkit.runs.store import RunInfo, load_weights

GENERATOR = "generator.safetensors"
DISCRIMINATOR = "discriminator.safetensors"


def grid_png(images: torch.Tensor, nrow: int | None = None, padding: int = 2) -> bytes:
    """PNG bytes of ``images`` tiled into a grid (torchvision ``make_grid``).

    Shape:
        images N×C×H×W in [0, 1] (C = 1 or 3) → a PNG with ``nrow`` images per row (default ≈ √N).
    """
    if images.ndim != 4 or images.shape[0] == 0:
        raise NnkitError("nothing to draw: expected a non-empty N×C×H×W batch")
    nrow = nrow or max(1, math.isqrt(images.shape[0] - 1) + 1)
    # Imported here: importing torchvision loads torch._dynamo (seconds), which nnkit's start-up does not need.
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=padding, pad_value=1.0)
    array = grid.mul(255).round().byte().permute(1, 2, 0).numpy()
    pil = Image.fromarray(array[:, :, 0] if images.shape[1] == 1 else array)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def load_gan(run: RunInfo, device: torch.device | str = "cpu", discriminator: bool = False
             ) -> Generator | tuple[Generator, Discriminator]:
    """The run's generator (and discriminator) in eval mode on ``device``.

    Args:
        run: a complete run of kind "gan" (``RunStore().get(ref)``).
        device: where to put the networks.
        discriminator: also return the discriminator.

    Returns:
        The Generator, or (Generator, Discriminator).
    """
    if run.kind != "gan":
        raise NnkitError(f"run {run.run_id} is a {run.kind} run, not a gan")
    try:
        gen = Generator(**run.meta["generator"])
        nets = [(gen, GENERATOR)]
        disc = None
        if discriminator:
            disc = Discriminator(**run.meta["discriminator"])
            nets.append((disc, DISCRIMINATOR))
    except (TypeError, ValueError) as exc:  # a spec in meta.json edited into something the networks do not take
        raise NnkitError(f"run {run.run_id}: its network spec in meta.json is broken ({str(exc)[:100]})") from None
    for net, filename in nets:
        try:
            net.load_state_dict(load_weights(run.path / filename))
        except RuntimeError as exc:
            raise NnkitError(f"run {run.run_id}: {filename} does not fit its spec ({str(exc)[:100]})") from None
    gen = gen.to(device).eval()
    return (gen, disc.to(device).eval()) if discriminator else gen


def _noise(gen: Generator, n: int, seed: int | None) -> torch.Tensor:
    rng = torch.Generator()
    if seed is None:
        rng.seed()
    else:
        rng.manual_seed(int(seed))
    return torch.randn(n, gen.latent_dim, generator=rng)


def _device(gen: Generator) -> torch.device:
    return next(gen.parameters()).device


def sample_images(gen: Generator, n: int = 64, seed: int | None = None,
                  labels: torch.Tensor | None = None) -> torch.Tensor:
    """``n`` samples from z ~ N(0, I).

    Args:
        gen: a generator.
        n: number of samples.
        seed: seed of the noise (None: fresh noise).
        labels: N int64 labels for a conditional generator (default: classes 0..K-1 cycled).

    Shape:
        → n×C×H×W in [0, 1] on CPU.
    """
    if n < 1:
        raise NnkitError(f"n must be at least 1, got {n}")
    if gen.num_classes and labels is None:
        labels = torch.arange(n) % gen.num_classes
    dev = _device(gen)
    return gen.sample(_noise(gen, n, seed).to(dev), None if labels is None else labels.to(dev)).cpu()


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` (White 2016, "Sampling generative networks").

    Shape:
        a, b R×D; t T in [0, 1] → R×T×D (t = 0 gives a, t = 1 gives b).
    """
    an, bn = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((an * bn).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]  # R×1×1
    t = t[None, :, None]
    so = torch.sin(omega)
    return (torch.sin((1 - t) * omega) / so) * a[:, None] + (torch.sin(t * omega) / so) * b[:, None]


def interpolate(gen: Generator, rows: int = 8, steps: int = 8, seed: int | None = None, spherical: bool = True,
                labels: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of samples along paths between pairs of random noise vectors.

    Args:
        gen: a generator.
        rows: number of paths (one per grid row).
        steps: images per path, end points included (>= 2).
        seed: seed of the end points.
        spherical: slerp (default) or a straight line.
        labels: one label per row for a conditional generator (default: classes cycled).

    Shape:
        → (rows·steps)×C×H×W in [0, 1] on CPU, row-major (draw with ``nrow=steps``).
    """
    if rows < 1 or steps < 2:
        raise NnkitError(f"need rows >= 1 and steps >= 2, got rows={rows}, steps={steps}")
    ends = _noise(gen, 2 * rows, seed)
    a, b = ends[:rows], ends[rows:]
    t = torch.linspace(0, 1, steps)
    z = slerp(a, b, t) if spherical else a[:, None] + t[None, :, None] * (b - a)[:, None]
    if gen.num_classes:
        row_labels = torch.arange(rows) % gen.num_classes if labels is None else labels
        labels = row_labels.repeat_interleave(steps)
    dev = _device(gen)
    return gen.sample(z.reshape(rows * steps, -1).to(dev), None if labels is None else labels.to(dev)).cpu()


def class_rows(gen: Generator, per_class: int = 8, seed: int | None = None) -> torch.Tensor:
    """One row per class of a conditional generator; column j shares its noise across the rows.

    Sharing z along a column shows what the noise controls (style) and what the label controls (class).

    Shape:
        → (K·per_class)×C×H×W in [0, 1] on CPU, class k in row k (draw with ``nrow=per_class``).
    """
    if not gen.num_classes:
        raise NnkitError("per-class rows need a class-conditional generator (train with --conditional)")
    if per_class < 1:
        raise NnkitError(f"per_class must be at least 1, got {per_class}")
    k = gen.num_classes
    z = _noise(gen, per_class, seed).repeat(k, 1)
    labels = torch.arange(k).repeat_interleave(per_class)
    dev = _device(gen)
    return gen.sample(z.to(dev), labels.to(dev)).cpu()
