"""Demo 1: the McCulloch-Pitts threshold unit (McCulloch & Pitts 1943).

A unit fires (outputs 1) when the weighted sum of its binary inputs reaches its threshold θ. The
truth table is written the way lecture notes do it, with the threshold moved to the left-hand side:
``1 + 1 - 1.5 = 0.5 -> 1`` for AND on inputs (1, 1) with weights (1, 1) and θ = 1.5.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from nnkit.errors import NnkitError


@dataclass(frozen=True)
class ThresholdUnit:
    """A McCulloch-Pitts unit: output 1 when Σ wᵢxᵢ ≥ θ, else 0."""

    weights: tuple[float, ...]  # one weight per binary input
    threshold: float  # θ

    def fire(self, inputs) -> int:
        """The unit's output (0 or 1) for one row of binary inputs."""
        return int(self.net(inputs) >= 0)

    def net(self, inputs) -> float:
        """Σ wᵢxᵢ - θ: the unit fires when this is ≥ 0."""
        if len(inputs) != len(self.weights):
            raise NnkitError(f"the unit has {len(self.weights)} inputs, got {len(inputs)} values")
        return float(sum(w * x for w, x in zip(self.weights, inputs)) - self.threshold)


# Textbook settings (e.g. Russell & Norvig, ch. 18; any lecture on McCulloch-Pitts units).
GATES: dict[str, ThresholdUnit] = {
    "AND": ThresholdUnit((1.0, 1.0), 1.5),
    "OR": ThresholdUnit((1.0, 1.0), 0.5),
    "NOT": ThresholdUnit((-1.0,), -0.5),
}

# The Boolean function each gate name stands for, used to tell whether edited weights still compute it.
GATE_FUNCTIONS = {
    "AND": lambda *x: int(all(x)),
    "OR": lambda *x: int(any(x)),
    "NOT": lambda x: 1 - x,
    "NAND": lambda *x: 1 - int(all(x)),
    "NOR": lambda *x: 1 - int(any(x)),
    "XOR": lambda a, b: a ^ b,
    "XNOR": lambda a, b: 1 - (a ^ b),
}


@dataclass(frozen=True)
class TruthRow:
    """One row of a threshold unit's truth table."""

    inputs: tuple[int, ...]
    products: tuple[float, ...]  # wᵢ·xᵢ per input
    weighted_sum: float  # Σ wᵢxᵢ - θ
    output: int  # 1 when weighted_sum ≥ 0
    expression: str  # e.g. "1 + 1 - 1.5 = 0.5 -> 1"


def _num(v: float) -> str:
    """A number as a lecture slide writes it: 1, 1.5, -0.5 (no trailing .0, no float noise)."""
    v = round(float(v), 10)
    return f"{v:g}" if v != 0 else "0"


def _expression(products, threshold: float, total: float, output: int) -> str:
    terms = [_num(products[0])]
    for p in products[1:]:
        terms.append(f"- {_num(-p)}" if p < 0 else f"+ {_num(p)}")
    terms.append(f"+ {_num(-threshold)}" if threshold < 0 else f"- {_num(threshold)}")
    return f"{' '.join(terms)} = {_num(total)} -> {output}"


def truth_table(unit: ThresholdUnit) -> list[TruthRow]:
    """Every input combination of ``unit`` in binary counting order, with the sum written out.

    Args:
        unit: the threshold unit (weights and θ, e.g. ``GATES["AND"]`` or user-edited values).

    Returns:
        2ⁿ TruthRows for n inputs, rows (0, 0), (0, 1), (1, 0), (1, 1) for two inputs.
    """
    if not 1 <= len(unit.weights) <= 4:
        raise NnkitError(f"a threshold unit here takes 1 to 4 inputs, got {len(unit.weights)}")
    rows = []
    for inputs in itertools.product((0, 1), repeat=len(unit.weights)):
        products = tuple(float(w * x) for w, x in zip(unit.weights, inputs))
        total = unit.net(inputs)
        out = int(total >= 0)
        rows.append(TruthRow(inputs, products, total, out, _expression(products, unit.threshold, total, out)))
    return rows


def computes(unit: ThresholdUnit) -> list[str]:
    """Names of the known gates (AND, OR, NOT, NAND, NOR, XOR, XNOR) that ``unit`` computes exactly.

    Returns:
        The matching gate names (empty when the edited weights compute none of them).
    """
    table = truth_table(unit)
    n = len(unit.weights)
    names = []
    for name, fn in GATE_FUNCTIONS.items():
        arity = 1 if name == "NOT" else 2
        if arity == n and all(fn(*row.inputs) == row.output for row in table):
            names.append(name)
    return names
