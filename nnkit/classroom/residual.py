"""Demo 7: residual connections keep gradients alive (He et al. 2016, "Deep Residual Learning").

A residual block computes H(x) = F(x) + x, so ∂H/∂x = ∂F/∂x + I: the identity term carries the
gradient back to the first layer however small ∂F/∂x gets. The demo measures ‖∂L/∂W₁‖, the gradient
at the first layer, against depth for a plain stack and for the same stack with skip connections.

Why a fully connected stack without batch norm rather than ``nnkit.models.create("resnet",
residual=False)``: with batch norm in every block, the plain CIFAR ResNet's first-layer gradient does
not vanish at depth 20-56 (it grows; He et al. say the same of their BN plain nets, whose trouble was
optimisation, not vanishing). The textbook effect is the one without normalisation, shown honestly by
``DeepMLP`` with sigmoid units: the plain net's first-layer gradient falls by about 1/4 per layer,
while the residual net's stays put. With ReLU and He initialisation the plain net keeps its gradient
at these depths and the residual one grows (the page can show that too with ``activation="relu"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from nnkit.classroom._deep import DeepMLP, weight_gradient_norms
from nnkit.classroom._threads import one_thread
from nnkit.errors import NnkitError


@dataclass
class DepthSweep:
    """First-layer gradient norm against depth, plain vs residual (plot both on a log y axis)."""

    activation: str
    depths: np.ndarray
    plain: np.ndarray  # ‖∂L/∂W₁‖ of the plain net at each depth
    residual: np.ndarray  # the same with x ← x + F(x) in every block

    @property
    def ratio(self) -> np.ndarray:
        """residual / plain at each depth (how many times more gradient the skips deliver)."""
        return self.residual / np.maximum(self.plain, 1e-300)


def first_layer_gradient(depth: int, residual: bool, activation: str = "sigmoid", width: int = 64,
                         seed: int = 0) -> float:
    """‖∂L/∂W₁‖ of one freshly initialised DeepMLP (cross-entropy on a random batch).

    Args:
        depth: Linear layers in the net (≥ 3); residual: add the skip connections.
        activation: sigmoid, tanh, relu, leaky_relu, elu or softplus; width: hidden units.
        seed: weights and batch.
    """
    with one_thread():
        torch.manual_seed(seed)
        return weight_gradient_norms(DeepMLP(depth, width, activation, residual=residual), seed=seed)[0]


def depth_sweep(depths=(3, 5, 10, 20, 30, 40, 50), activation: str = "sigmoid", width: int = 64,
                seeds: int = 2) -> DepthSweep:
    """First-layer gradient norm of plain and residual nets at each depth (geometric mean over seeds).

    Args:
        depths: numbers of Linear layers (each ≥ 3).
        activation, width: as for ``first_layer_gradient``.
        seeds: nets averaged per point.

    Returns:
        DepthSweep; with sigmoid units the plain net's norm at depth 20 is ~1e-12 while the residual
        net's stays ~0.1, a gap of about ten orders of magnitude.
    """
    depths = np.array(sorted({int(d) for d in depths}))
    if len(depths) == 0 or depths.min() < 3:
        raise NnkitError("depths must be integers ≥ 3")

    def mean(residual: bool, d: int) -> float:
        logs = [np.log(max(first_layer_gradient(d, residual, activation, width, s), 1e-300)) for s in range(seeds)]
        return float(np.exp(np.mean(logs)))

    plain = np.array([mean(False, d) for d in depths])
    res = np.array([mean(True, d) for d in depths])
    return DepthSweep(activation, depths, plain, res)
