"""Demo 3: backpropagation step by step (Rumelhart, Hinton & Williams 1986), by hand in numpy.

A small fully connected network of sigmoid units, squared error E = Σ ½(y - o)², and the textbook
delta rule, written out so a page can show every number of one step as a table:

    forward   net = W·a + b,  a = σ(net) = 1 / (1 + e^-net)
    output    δ_out = ∂E/∂net_out = -(y - o)·o(1 - o)
    hidden    δ_hidden = o(1 - o)·Σ_k w_k·δ_k       (sum over the units the hidden unit feeds)
    gradient  ∂E/∂w = δ·(input of that weight),  ∂E/∂b = δ
    update    w ← w - α·∂E/∂w

The maths is plain numpy float64 (no autograd); the tests check it against torch autograd, the way
micrograd checks its engine against PyTorch. ``worked_example()`` is the 2-2-2 network of Matt
Mazur's "A Step by Step Backpropagation Example" (2015), whose published numbers the tests match.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from nnkit.errors import NnkitError


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function σ(z) = 1 / (1 + e^-z), computed without overflow for large |z|."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@dataclass
class SigmoidNet:
    """A fully connected network of sigmoid units (every layer, the output layer included).

    Shape:
        weights[i]: (units in layer i+1) × (units in layer i), like ``torch.nn.Linear.weight``;
        biases[i]: units in layer i+1.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def __post_init__(self):
        self.weights = [np.array(w, dtype=np.float64, ndmin=2) for w in self.weights]
        self.biases = [np.array(b, dtype=np.float64, ndmin=1) for b in self.biases]
        if len(self.weights) != len(self.biases) or not self.weights:
            raise NnkitError("a network needs one bias vector per weight matrix")
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.shape[0] != b.shape[0] or (i and w.shape[1] != self.weights[i - 1].shape[0]):
                raise NnkitError(f"layer {i + 1}: weight matrix {w.shape} does not fit its neighbours")

    @classmethod
    def random(cls, sizes: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> SigmoidNet:
        """Weights and biases drawn uniformly from [-scale, scale] (a common textbook choice).

        Args:
            sizes: units per layer, inputs first, e.g. (2, 3, 1).
            seed: numpy seed, so a page can replay the same start.
            scale: half-width of the uniform range.
        """
        if len(sizes) < 2 or min(sizes) < 1:
            raise NnkitError(f"layer sizes must be at least two positive numbers, got {sizes}")
        rng = np.random.default_rng(seed)
        weights = [rng.uniform(-scale, scale, (sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)]
        biases = [rng.uniform(-scale, scale, sizes[i + 1]) for i in range(len(sizes) - 1)]
        return cls(weights, biases)

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.weights[0].shape[1], *(w.shape[0] for w in self.weights))

    def copy(self) -> SigmoidNet:
        return SigmoidNet([w.copy() for w in self.weights], [b.copy() for b in self.biases])

    def forward(self, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Pre-activations and activations of every layer.

        Shape:
            x: N×inputs (or one pattern as a vector) → (nets, activations); nets[i] is N×units of layer
            i+1, activations[0] is x itself and activations[-1] the output.
        """
        a = np.array(x, dtype=np.float64, ndmin=2)
        if a.shape[1] != self.sizes[0]:
            raise NnkitError(f"the network takes {self.sizes[0]} inputs, got {a.shape[1]}")
        nets, acts = [], [a]
        for w, b in zip(self.weights, self.biases):
            net = a @ w.T + b
            a = sigmoid(net)
            nets.append(net)
            acts.append(a)
        return nets, acts

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The output activations, N×outputs."""
        return self.forward(x)[1][-1]


@dataclass
class BackpropStep:
    """Every number of one gradient-descent step; arrays are N×units (N patterns, summed in E).

    ``deltas[i]``, ``grad_weights[i]`` and ``grad_biases[i]`` belong to weight layer i (0: the first).
    """

    x: np.ndarray
    y: np.ndarray
    lr: float  # α
    nets: list[np.ndarray]
    activations: list[np.ndarray]  # [x, hidden..., output]
    error: float  # E = Σ ½(y - o)² over patterns and outputs
    deltas: list[np.ndarray]
    grad_weights: list[np.ndarray]
    grad_biases: list[np.ndarray]
    before: SigmoidNet
    after: SigmoidNet
    names: list[list[str]] = field(default_factory=list)  # unit names per layer: x1.., h1.., o1..

    @property
    def output(self) -> np.ndarray:
        return self.activations[-1]

    def table(self) -> list[dict]:
        """The step as table rows (phase, quantity, formula, value), for the first pattern.

        Returns:
            Dicts with keys ``phase`` (forward / error / delta / gradient / update), ``quantity``
            (e.g. ``δ_h1``, ``∂E/∂w(h1→o1)``), ``formula`` and ``value`` (a float).
        """
        p = 0  # the table shows one pattern; batches are summed in the gradients
        names, rows = self.names, []
        for layer, (net, act) in enumerate(zip(self.nets, self.activations[1:])):
            for j, unit in enumerate(names[layer + 1]):
                terms = " + ".join(f"w({src}→{unit})·{src}" for src in names[layer])
                rows.append({"phase": "forward", "quantity": f"net_{unit}", "formula": f"{terms} + b_{unit}",
                             "value": float(net[p, j])})
                rows.append({"phase": "forward", "quantity": unit, "formula": f"σ(net_{unit})",
                             "value": float(act[p, j])})
        rows.append({"phase": "error", "quantity": "E", "formula": "Σ ½(y - o)²", "value": self.error})
        last = len(self.deltas) - 1
        for layer in range(last, -1, -1):
            for j, unit in enumerate(names[layer + 1]):
                if layer == last:
                    formula = f"-(y_{unit} - {unit})·{unit}(1 - {unit})"
                else:
                    terms = " + ".join(f"w({unit}→{k})·δ_{k}" for k in names[layer + 2])
                    formula = f"{unit}(1 - {unit})·({terms})"
                rows.append({"phase": "delta", "quantity": f"δ_{unit}", "formula": formula,
                             "value": float(self.deltas[layer][p, j])})
        for layer in range(last, -1, -1):
            for j, unit in enumerate(names[layer + 1]):
                for i, src in enumerate(names[layer]):
                    rows.append({"phase": "gradient", "quantity": f"∂E/∂w({src}→{unit})",
                                 "formula": f"δ_{unit}·{src}", "value": float(self.grad_weights[layer][j, i])})
                rows.append({"phase": "gradient", "quantity": f"∂E/∂b_{unit}", "formula": f"δ_{unit}",
                             "value": float(self.grad_biases[layer][j])})
        for layer in range(last, -1, -1):
            for j, unit in enumerate(names[layer + 1]):
                for i, src in enumerate(names[layer]):
                    rows.append({"phase": "update", "quantity": f"w({src}→{unit})",
                                 "formula": f"{self.before.weights[layer][j, i]:.6g} - {self.lr:g}·∂E/∂w({src}→{unit})",
                                 "value": float(self.after.weights[layer][j, i])})
                rows.append({"phase": "update", "quantity": f"b_{unit}",
                             "formula": f"{self.before.biases[layer][j]:.6g} - {self.lr:g}·∂E/∂b_{unit}",
                             "value": float(self.after.biases[layer][j])})
        return rows


def unit_names(sizes: tuple[int, ...]) -> list[list[str]]:
    """Unit names per layer: inputs x1.., hidden layers h1.. (h1_1.. when there are several), outputs o1.."""
    hidden = len(sizes) - 2
    names = [[f"x{i + 1}" for i in range(sizes[0])]]
    for layer in range(hidden):
        prefix = "h" if hidden == 1 else f"h{layer + 1}_"
        names.append([f"{prefix}{i + 1}" for i in range(sizes[layer + 1])])
    names.append([f"o{i + 1}" for i in range(sizes[-1])])
    return names


def backprop_step(net: SigmoidNet, x, y, lr: float = 0.5, update_biases: bool = True) -> BackpropStep:
    """One step of gradient descent on E = Σ ½(y - o)², every intermediate number kept.

    Args:
        net: the network before the step (left unchanged; the step holds a copy in ``after``).
        x: one input pattern (vector) or N patterns (N×inputs).
        y: the matching targets in [0, 1] (vector or N×outputs).
        lr: the learning rate α.
        update_biases: False keeps the biases fixed, as in some worked examples.

    Shape:
        x N×inputs, y N×outputs → gradients summed over the N patterns.

    Returns:
        BackpropStep with forward values, E, deltas, gradients and the updated network.
    """
    if not lr > 0:
        raise NnkitError(f"the learning rate must be positive, got {lr}")
    nets, acts = net.forward(x)
    y = np.array(y, dtype=np.float64, ndmin=2)
    o = acts[-1]
    if y.shape != o.shape:
        raise NnkitError(f"targets have shape {y.shape}, the network's outputs {o.shape}")
    error = float(0.5 * np.sum((y - o) ** 2))
    deltas: list[np.ndarray] = [np.empty(0)] * len(net.weights)
    deltas[-1] = -(y - o) * o * (1 - o)  # δ_out = ∂E/∂net_out
    for layer in range(len(net.weights) - 2, -1, -1):
        h = acts[layer + 1]
        # δ_hidden = o(1 - o)·Σ_k w_k·δ_k: each hidden unit collects the deltas of the units it feeds.
        deltas[layer] = h * (1 - h) * (deltas[layer + 1] @ net.weights[layer + 1])
    grad_w = [d.T @ a for d, a in zip(deltas, acts[:-1])]  # ∂E/∂w_ji = Σ_patterns δ_j·a_i
    grad_b = [d.sum(axis=0) for d in deltas]
    after = SigmoidNet([w - lr * g for w, g in zip(net.weights, grad_w)],
                       [b - lr * g if update_biases else b.copy() for b, g in zip(net.biases, grad_b)])
    return BackpropStep(acts[0], y, float(lr), nets, acts, error, deltas, grad_w, grad_b, net.copy(), after,
                        unit_names(net.sizes))


def backprop_steps(net: SigmoidNet, x, y, lr: float = 0.5, steps: int = 1,
                   update_biases: bool = True) -> Iterator[BackpropStep]:
    """Yield ``steps`` successive BackpropSteps, each starting from the previous step's network."""
    for _ in range(int(steps)):
        step = backprop_step(net, x, y, lr, update_biases)
        net = step.after
        yield step


def worked_example() -> tuple[SigmoidNet, np.ndarray, np.ndarray, float]:
    """Matt Mazur's worked example: inputs (0.05, 0.10), targets (0.01, 0.99), α = 0.5.

    Weights w1..w8 = 0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55; biases 0.35 (hidden) and 0.60
    (output). After one step (biases kept fixed, as in the article) E = 0.298371109 before the step,
    w5 becomes 0.35891648 and w1 becomes 0.149780716.

    Returns:
        (net, x, y, lr).
    """
    net = SigmoidNet([[[0.15, 0.20], [0.25, 0.30]], [[0.40, 0.45], [0.50, 0.55]]],
                     [[0.35, 0.35], [0.60, 0.60]])
    return net, np.array([0.05, 0.10]), np.array([0.01, 0.99]), 0.5
