"""Demo 4: activation functions, their derivatives, and vanishing gradients in deep nets.

The derivative bounds tell the story: σ'(z) ≤ 1/4, so the backpropagated signal in a deep sigmoid
net shrinks layer by layer (Hochreiter 1991; Glorot & Bengio 2010), while ReLU passes gradients
through unchanged where it is active (Glorot, Bordes & Bengio 2011; He et al. 2015) and batch
normalisation keeps each layer's inputs in the range where σ is steep (Ioffe & Szegedy 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nnkit.classroom._deep import DeepMLP, weight_gradient_norms
from nnkit.classroom._threads import one_thread
from nnkit.errors import NnkitError

LEAKY_SLOPE = 0.01  # leaky ReLU's slope for z < 0 (Maas et al. 2013)
ELU_ALPHA = 1.0  # ELU's saturation value -α (Clevert et al. 2016)


def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


# name -> (f, f'); derivatives at the kinks follow PyTorch's autograd (ReLU'(0) = 0, ELU'(0) = 1).
ACTIVATIONS = {
    "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1 - _sigmoid(z))),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(np.float64)),
    "leaky_relu": (lambda z: np.where(z > 0, z, LEAKY_SLOPE * z), lambda z: np.where(z > 0, 1.0, LEAKY_SLOPE)),
    "elu": (lambda z: np.where(z > 0, z, ELU_ALPHA * np.expm1(np.minimum(z, 0))),
            lambda z: np.where(z > 0, 1.0, ELU_ALPHA * np.exp(np.minimum(z, 0)))),
    "softplus": (lambda z: np.logaddexp(0.0, z), _sigmoid),
}

FORMULAS = {
    "sigmoid": ("σ(z) = 1 / (1 + e^-z)", "σ'(z) = σ(z)(1 - σ(z)) ≤ 1/4"),
    "tanh": ("tanh(z)", "1 - tanh²(z) ≤ 1"),
    "relu": ("max(0, z)", "1 if z > 0 else 0"),
    "leaky_relu": (f"z if z > 0 else {LEAKY_SLOPE}·z", f"1 if z > 0 else {LEAKY_SLOPE}"),
    "elu": ("z if z > 0 else α(e^z - 1)", "1 if z > 0 else α·e^z"),
    "softplus": ("ln(1 + e^z)", "σ(z)"),
}


@dataclass
class Curve:
    """An activation function and its derivative sampled on ``z``."""

    name: str
    z: np.ndarray
    value: np.ndarray
    derivative: np.ndarray
    formula: str
    derivative_formula: str


def activation_curves(names=None, z=None) -> list[Curve]:
    """f(z) and f'(z) for each activation, ready for two plotly line charts.

    Args:
        names: activation names (default: all six, see ``ACTIVATIONS``).
        z: sample points (default: 401 points on [-5, 5]).

    Returns:
        One Curve per name.
    """
    names = list(ACTIVATIONS) if names is None else list(names)
    z = np.linspace(-5, 5, 401) if z is None else np.asarray(z, dtype=np.float64)
    out = []
    for name in names:
        if name not in ACTIVATIONS:
            raise NnkitError(f"unknown activation {name!r}: choose one of {', '.join(ACTIVATIONS)}")
        f, df = ACTIVATIONS[name]
        out.append(Curve(name, z, f(z), df(z), *FORMULAS[name]))
    return out


def torch_activation(name: str):
    """The PyTorch function matching ``ACTIVATIONS[name]`` (the tests check f' against its autograd)."""
    fns = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
           "leaky_relu": lambda t: torch.nn.functional.leaky_relu(t, LEAKY_SLOPE),
           "elu": lambda t: torch.nn.functional.elu(t, ELU_ALPHA), "softplus": torch.nn.functional.softplus}
    if name not in fns:
        raise NnkitError(f"unknown activation {name!r}: choose one of {', '.join(fns)}")
    return fns[name]


@dataclass
class LayerNorms:
    """Per-layer weight-gradient norms of one deep network at initialisation."""

    label: str  # e.g. "sigmoid", "relu", "sigmoid + batch norm"
    layers: np.ndarray  # 1..depth, input side first
    norms: np.ndarray  # ‖∂L/∂W_l‖, averaged over the seeds (geometric mean, as for a log axis)


VANISHING_SETUPS = {
    "sigmoid": ("sigmoid", False),
    "relu": ("relu", False),
    "sigmoid + batch norm": ("sigmoid", True),
    "tanh": ("tanh", False),
    "relu + batch norm": ("relu", True),
}


def vanishing_gradients(setups=("sigmoid", "relu", "sigmoid + batch norm"), depth: int = 20, width: int = 64,
                        seeds: int = 3) -> list[LayerNorms]:
    """Gradient norm per layer in deep fully connected nets, one curve per setup (plot on a log y axis).

    Args:
        setups: keys of ``VANISHING_SETUPS``.
        depth: Linear layers per net (≥ 3); width: units per hidden layer.
        seeds: networks averaged per setup (different random weights and batches).

    Returns:
        LayerNorms per setup: in the sigmoid net the first layers get gradients many orders of
        magnitude below the last; with ReLU (He init) or batch norm they stay within one order.
    """
    out = []
    for label in setups:
        if label not in VANISHING_SETUPS:
            raise NnkitError(f"unknown setup {label!r}: choose from {', '.join(VANISHING_SETUPS)}")
        act, bn = VANISHING_SETUPS[label]
        runs = []
        with one_thread():
            for seed in range(seeds):
                torch.manual_seed(seed)
                runs.append(weight_gradient_norms(DeepMLP(depth, width, act, batch_norm=bn), seed=seed))
        norms = np.exp(np.mean(np.log(np.maximum(np.array(runs), 1e-300)), axis=0))
        out.append(LayerNorms(label, np.arange(1, depth + 1), norms))
    return out
