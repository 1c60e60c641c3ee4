"""A deep fully connected stack shared by the vanishing-gradient (4) and residual (7) demos.

The network is ``stem → blocks → head``, each block ``[BatchNorm] → act → Linear`` (the
pre-activation ordering of He et al. 2016, "Identity Mappings in Deep Residual Networks"), applied
as ``x ← block(x)`` in the plain net or ``x ← x + block(x)`` in the residual one, so the two nets have
exactly the same layers and differ only by the skip connection. Built in float64 so gradients of
1e-30 still show on a log axis instead of underflowing to zero.
"""

from __future__ import annotations

import torch
from torch import nn

from nnkit.errors import NnkitError

_ACTS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.01),
         "elu": nn.ELU, "softplus": nn.Softplus}
_RELU_LIKE = {"relu", "leaky_relu", "elu", "softplus"}


class DeepMLP(nn.Module):
    """``depth`` Linear layers in all: stem, depth - 2 blocks, head.

    Initialisation follows the activation, as the textbooks pair them: Glorot/Xavier normal for
    sigmoid and tanh (Glorot & Bengio 2010), He/Kaiming normal for the ReLU family (He et al. 2015);
    biases start at zero.
    """

    def __init__(self, depth: int, width: int, activation: str, batch_norm: bool = False, residual: bool = False,
                 in_features: int = 32, out_features: int = 10):
        super().__init__()
        if activation not in _ACTS:
            raise NnkitError(f"unknown activation {activation!r}: choose one of {', '.join(_ACTS)}")
        if depth < 3 or width < 1:
            raise NnkitError(f"depth must be at least 3 (stem, a block, head) and width ≥ 1, got {depth}, {width}")
        self.residual = residual
        self.stem = nn.Linear(in_features, width)
        blocks = []
        for _ in range(depth - 2):
            layers: list[nn.Module] = [nn.BatchNorm1d(width)] if batch_norm else []
            layers += [_ACTS[activation](), nn.Linear(width, width)]
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(_ACTS[activation](), nn.Linear(width, out_features))
        for module in self.modules():
            if isinstance(module, nn.Linear):
                if activation in _RELU_LIKE:
                    nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                else:
                    nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)
        self.double()

    def linears(self) -> list[nn.Linear]:
        """The weight layers from input to output (stem first)."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = x + block(x) if self.residual else block(x)
        return self.head(x)


def weight_gradient_norms(model: DeepMLP, n: int = 64, seed: int = 0) -> list[float]:
    """‖∂L/∂W‖ (Frobenius) of each Linear layer, stem first, for one cross-entropy backward pass.

    The batch is n standard-normal inputs with random class labels: at initialisation the size of the
    gradient reaching each layer depends on the architecture, not on what the data means.
    """
    g = torch.Generator().manual_seed(seed)
    first = model.stem
    x = torch.randn(n, first.in_features, generator=g, dtype=torch.float64)
    y = torch.randint(0, model.head[-1].out_features, (n,), generator=g)
    model.zero_grad(set_to_none=True)
    model.train()  # batch norm normalises with the batch statistics, as during training
    nn.functional.cross_entropy(model(x), y).backward()
    return [float(m.weight.grad.norm()) for m in model.linears()]
