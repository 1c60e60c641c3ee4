"""The model wrapper: normalisation inside the model, so every caller passes [0, 1] images."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """``net`` preceded by per-channel normalisation.

    Shape:
        input N×C×H×W in [0, 1] → logits N×num_classes.
    Attributes:
        spec: the arguments of ``nnkit.models.create`` that rebuild this model (saved with runs).
        net: the wrapped network (saliency finds its layers there).
    """

    def __init__(self, net: nn.Module, mean, std, spec: dict):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.spec = dict(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)
