"""Demo 2: the perceptron learning rule (Rosenblatt 1958) and why XOR needs a hidden layer.

The perceptron predicts ŷ = 1 when w·x + b ≥ 0 and, for each misclassified point, moves the line:
w ← w + α(y - ŷ)x, b ← b + α(y - ŷ). On linearly separable points it stops after finitely many
mistakes (Novikoff 1962); on XOR no line separates the classes (Minsky & Papert 1969), so it never
has an error-free epoch. A network with one hidden layer of sigmoid units, trained by backpropagation
(see ``backprop``), solves XOR; ``xor_network`` yields its decision boundary on a grid as it learns.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nnkit.classroom.backprop import SigmoidNet, backprop_step
from nnkit.errors import NnkitError

# The four Boolean patterns with their AND, OR and XOR labels.
BOOLEAN_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
BOOLEAN_Y = {"AND": np.array([0, 0, 0, 1]), "OR": np.array([0, 1, 1, 1]), "XOR": np.array([0, 1, 1, 0])}


def toy_points(kind: str = "separable", n: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small 2-D data set for the perceptron page.

    Args:
        kind: "separable" (two blobs split by a margin), "xor" (four clusters around the XOR corners),
            or a Boolean gate name ("AND", "OR", "XOR": the four corner points only).
        n: number of points (blob kinds only).
        seed: numpy seed.

    Returns:
        (x N×2 float, y N int in {0, 1}).
    """
    if kind in BOOLEAN_Y:
        return BOOLEAN_X.copy(), BOOLEAN_Y[kind].copy()
    rng = np.random.default_rng(seed)
    if kind == "separable":
        y = np.arange(n) % 2
        centres = np.where(y[:, None] == 1, [1.0, 1.0], [-1.0, -1.0])
        x = centres + rng.normal(0, 0.45, (n, 2))
        # Push points away from the true boundary x1 + x2 = 0 so the margin is never zero.
        side = np.where(y == 1, 1.0, -1.0)
        gap = side * (x.sum(1) / 2) - 0.2
        x = x - np.where(gap < 0, gap, 0)[:, None] * side[:, None]
        return x, y
    if kind == "xor":
        corner = rng.integers(0, 4, n)
        x = BOOLEAN_X[corner] + rng.normal(0, 0.12, (n, 2))
        return x, BOOLEAN_Y["XOR"][corner].copy()
    raise NnkitError(f"unknown point set {kind!r}: choose separable, xor, AND, OR or XOR")


@dataclass(frozen=True)
class PerceptronStep:
    """One presentation of one point to the perceptron."""

    epoch: int  # 1-based
    index: int  # which point
    x: tuple[float, float]
    target: int
    prediction: int  # before the update
    mistake: bool  # prediction ≠ target, so the weights moved
    w: tuple[float, ...]  # after the update
    b: float  # after the update


@dataclass(frozen=True)
class PerceptronResult:
    """The whole run: converged is True when an epoch went by without a mistake."""

    w: tuple[float, ...]
    b: float
    converged: bool
    epochs: int  # epochs run
    mistakes_per_epoch: list[int]
    steps: list[PerceptronStep]


def perceptron_steps(x, y, lr: float = 1.0, max_epochs: int = 100, w0=None, b0: float = 0.0,
                     ) -> Iterator[PerceptronStep]:
    """Rosenblatt's rule, one point at a time, in order, until an error-free epoch or ``max_epochs``.

    Args:
        x: N×2 points; y: N labels in {0, 1}.
        lr: α; w0, b0: starting weights (default zero).
        max_epochs: the cap, since the rule never stops on data no line separates.

    Yields:
        A PerceptronStep per point presented (the page can animate the line after each).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(int)
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise NnkitError("the perceptron needs N×d points and N labels (N ≥ 1)")
    if not set(np.unique(y).tolist()) <= {0, 1}:
        raise NnkitError("perceptron labels must be 0 or 1")
    if max_epochs < 1 or not lr > 0:
        raise NnkitError("max_epochs must be ≥ 1 and the learning rate positive")
    w = np.zeros(x.shape[1]) if w0 is None else np.array(w0, dtype=np.float64)
    b = float(b0)
    for epoch in range(1, int(max_epochs) + 1):
        mistakes = 0
        for i in range(len(x)):
            pred = int(w @ x[i] + b >= 0)
            err = y[i] - pred
            if err:
                w = w + lr * err * x[i]
                b = b + lr * err
                mistakes += 1
            yield PerceptronStep(epoch, i, tuple(x[i].tolist()), int(y[i]), pred, bool(err),
                                 tuple(w.tolist()), b)
        if mistakes == 0:
            return


def train_perceptron(x, y, lr: float = 1.0, max_epochs: int = 100, w0=None, b0: float = 0.0) -> PerceptronResult:
    """Run ``perceptron_steps`` to the end and report whether it converged.

    Returns:
        PerceptronResult (final w and b, converged, epochs run, mistakes per epoch, all steps).
    """
    steps = list(perceptron_steps(x, y, lr, max_epochs, w0, b0))
    epochs = steps[-1].epoch
    mistakes = [0] * epochs
    for s in steps:
        mistakes[s.epoch - 1] += s.mistake
    return PerceptronResult(steps[-1].w, steps[-1].b, mistakes[-1] == 0, epochs, mistakes, steps)


def decision_line(w, b: float, xlim: tuple[float, float] = (-2.0, 2.0)) -> tuple[np.ndarray, np.ndarray] | None:
    """Two end points of the line w·x + b = 0 across ``xlim`` (for a plotly line trace).

    Returns:
        (xs, ys) of length 2, a vertical line when w₂ = 0, or None when w = 0 (no line yet).
    """
    w1, w2 = float(w[0]), float(w[1])
    if w1 == 0 and w2 == 0:
        return None
    if w2 == 0:
        return np.array([-b / w1, -b / w1]), np.array(xlim, dtype=np.float64)
    xs = np.array(xlim, dtype=np.float64)
    return xs, -(w1 * xs + b) / w2


@dataclass
class NetworkFrame:
    """A snapshot of the XOR network while it learns."""

    step: int
    error: float  # E = Σ ½(y - o)² over the training points
    accuracy: float  # share of points with (o ≥ 0.5) == y
    outputs: np.ndarray  # N network outputs on the training points
    grid_x: np.ndarray  # G grid coordinates along x1
    grid_y: np.ndarray  # G grid coordinates along x2
    grid_output: np.ndarray  # G×G outputs, row i = grid_y[i] (plotly heatmap/contour z)
    net: SigmoidNet


def _grid(net: SigmoidNet, lim: tuple[float, float], size: int):
    g = np.linspace(lim[0], lim[1], size)
    xx, yy = np.meshgrid(g, g)
    z = net.predict(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(size, size)
    return g, g.copy(), z


def xor_network(x=None, y=None, hidden: int = 4, lr: float = 8.0, steps: int = 1500, every: int = 50,
                seed: int = 0, grid_size: int = 41, lim: tuple[float, float] = (-0.5, 1.5),
                ) -> Iterator[NetworkFrame]:
    """Train a 2-hidden-1 sigmoid network by full-batch backpropagation; yield snapshots.

    Args:
        x, y: points and 0/1 labels (default: the four XOR patterns).
        hidden: hidden sigmoid units (2 is the minimum for XOR; 3-4 rarely get stuck).
        lr: α for the mean gradient over the points (so the same α suits 4 points or 100).
        steps: gradient steps; every: a frame after every ``every`` steps (and at step 0 and the end).
        seed: start weights (uniform in [-1, 1]).
        grid_size, lim: the G×G grid over [lim]² on which the decision surface is evaluated.

    Yields:
        NetworkFrame (error, accuracy, the output surface on the grid, the network).
    """
    if x is None:
        x, y = BOOLEAN_X, BOOLEAN_Y["XOR"]
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    if hidden < 1 or steps < 0 or every < 1:
        raise NnkitError("hidden units and frame interval must be ≥ 1, steps ≥ 0")
    net = SigmoidNet.random((x.shape[1], int(hidden), 1), seed=seed)

    def frame(step: int, net: SigmoidNet) -> NetworkFrame:
        out = net.predict(x)
        return NetworkFrame(step, float(0.5 * np.sum((t - out) ** 2)),
                            float(np.mean((out >= 0.5) == (t >= 0.5))), out.ravel(),
                            *_grid(net, lim, grid_size), net)

    yield frame(0, net)
    for step in range(1, int(steps) + 1):
        net = backprop_step(net, x, t, lr / len(x)).after  # E sums over points: α/N gives the mean
        if step % every == 0 or step == steps:
            yield frame(step, net)
