"""Batch augmentation on the device: random horizontal flips and pad-and-crop shifts."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_batch(x: torch.Tensor, mode: str, pad: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Augment a batch in one vectorised pass (no per-image Python loop).

    Args:
        x: N×C×H×W images in [0, 1].
        mode: "none", "flip", "crop" or "flip+crop".
        pad: reflection padding before the random crop, in pixels.
        generator: where the random draws come from (None: torch's global generator); on x's device.

    Returns:
        A new N×C×H×W batch.
    """
    if mode == "none":
        return x
    n, _, h, w = x.shape
    if "flip" in mode:
        flip = torch.rand(n, 1, 1, 1, generator=generator, device=x.device) < 0.5
        x = torch.where(flip, x.flip(3), x)
    if "crop" in mode:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dy = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=x.device)
        dx = torch.randint(0, 2 * pad + 1, (n, 1, 1), generator=generator, device=x.device)
        rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).expand(n, h, w)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).expand(n, h, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
        x = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()
    return x
