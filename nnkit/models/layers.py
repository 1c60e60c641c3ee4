"""Building blocks shared by the models: activations by name (a fresh module per use, for captum)."""

from __future__ import annotations

from torch import nn

from nnkit.errors import NnkitError

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.1),
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def activation(name: str) -> nn.Module:
    """A new activation module (never in-place, never shared: captum's hooks need one per use)."""
    if name not in ACTIVATIONS:
        raise NnkitError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
