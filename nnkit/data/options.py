"""Dataset options: one schema per dataset (keys, types, bounds), checked before any data is built.

``--data-opt n_train=-5`` or ``size=100000`` must end as a one-line error, not a traceback after
minutes of work or an out-of-memory kill, so every size and count is bounded here. The bounds are far
above what a lab run on a laptop uses and well below what exhausts its memory; each says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from nnkit.errors import NnkitError
from nnkit.validate import check_number, check_whole

# A dataset's seed is combined with offsets (e.g. 1000·seed + 7) before it seeds a generator, which
# takes at most 2**64 - 1: 2**32 - 1 leaves room for that.
MAX_DATA_SEED = 2**32 - 1


@dataclass(frozen=True)
class Option:
    """One dataset option: its type, bounds and meaning."""

    kind: str  # "int", "float", "bool" or "str"
    help: str  # one line for `nnkit datasets` and the README
    low: float | None = None  # inclusive lower bound of a number
    high: float | None = None  # inclusive upper bound of a number
    choices: tuple = ()  # the allowed values, when only a few are
    open_low: bool = False  # exclude ``low`` itself (e.g. a fraction that must be > 0)
    open_high: bool = False  # exclude ``high`` itself

    def check(self, key: str, value):
        """The value, converted to the option's type, or a one-line NnkitError naming the key."""
        if self.kind == "int":
            value = check_whole(key, value, int(self.low), int(self.high))
        elif self.kind == "float":
            value = check_number(key, value, self.low, self.high, high_open=self.open_high)
            if self.open_low and value == self.low:
                raise NnkitError(f"{key} must be greater than {self.low:g}, got {value:g}")
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise NnkitError(f"{key} must be true or false, got {value!r}")
        elif not isinstance(value, str) or not value:
            raise NnkitError(f"{key} must be a non-empty text, got {value!r}")
        if self.choices and value not in self.choices:
            raise NnkitError(f"{key} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value

    def describe(self) -> str:
        """``int in [1, 100000]``-style summary of the allowed values."""
        if self.choices:
            return f"{self.kind}: {' or '.join(map(str, self.choices))}"
        if self.low is None:
            return self.kind
        lo = "(" if self.open_low else "["
        hi = ")" if self.open_high else "]"
        fmt = (lambda v: f"{int(v):,}") if self.kind == "int" else (lambda v: f"{v:g}")
        return f"{self.kind} in {lo}{fmt(self.low)}, {fmt(self.high)}{hi}"


Schema = Mapping[str, Option]

SEED = Option("int", "dataset seed (which images are generated or held out)", 0, MAX_DATA_SEED)
# shapes: 100,000 images of 3×32×32 float32 are 1.2 GB, the most a 2-core laptop lab should hold.
SHAPES_OPTIONS: dict[str, Option] = {
    "seed": SEED,
    "n_train": Option("int", "training images", 1, 100_000),
    "n_test": Option("int", "test images", 1, 20_000),
}
CONFOUNDED_OPTIONS: dict[str, Option] = {
    **SHAPES_OPTIONS,
    "tag_fraction": Option("float", "share of train and test images that carry their class's tag", 0.0, 1.0),
}
TORCHVISION_OPTIONS: dict[str, Option] = {
    "seed": SEED,
    "root": Option("str", "folder of the downloaded files (same as --data-root)"),
    "download": Option("bool", "allow a download when the files are missing"),
    "limit": Option("int", "keep only the first N images of each split", 1, 1_000_000),
}


def check_options(name: str, opts: Mapping, schema: Schema) -> dict:
    """Check builder options against a dataset's schema, before any data is built.

    Args:
        name: the dataset's name (goes into the message).
        opts: the options given (``--data-opt KEY=VALUE``, a run's stored options, ...).
        schema: the dataset's allowed options.

    Returns:
        The options with their values converted (e.g. ``28.0`` → ``28`` for a whole number).

    Raises:
        NnkitError: one line for an unknown key (listing the known ones) or a value of the wrong type or
        out of bounds.
    """
    if not isinstance(opts, Mapping):
        raise NnkitError(f"dataset options must be KEY=VALUE pairs, got {opts!r}")
    unknown = sorted(set(opts) - set(schema))
    if unknown:
        known = ", ".join(schema) or "none"
        raise NnkitError(f"dataset {name!r} has no option {', '.join(map(str, unknown))}; its options: {known}")
    return {key: schema[key].check(key, value) for key, value in opts.items()}


def describe_options(schema: Schema) -> dict[str, str]:
    """``{key: "int in [1, 100000]: training images"}`` for listings."""
    return {key: f"{opt.describe()}: {opt.help}" for key, opt in schema.items()}
