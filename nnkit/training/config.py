"""The training config: one dataclass, saved as JSON with every run so the run can be repeated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from nnkit.errors import NnkitError

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
SCHEDULES = ("none", "cosine", "step", "onecycle")
AUGMENTATIONS = ("none", "flip", "crop", "flip+crop")


@dataclass
class TrainConfig:
    """Everything that defines a training run."""

    data: str = "shapes"  # dataset name (see `nnkit datasets`) or folder:PATH
    model: str = "cnn"  # model name (see `nnkit models`)
    model_opts: dict = field(default_factory=dict)  # model options, e.g. {"activation": "tanh"}
    data_opts: dict = field(default_factory=dict)  # dataset options, e.g. {"tag_fraction": 0.95}
    data_root: str | None = None  # root for downloaded datasets (default $NNKIT_DATA or ~/.nnkit/data)
    optimizer: str = "adam"  # sgd | momentum (SGD + Nesterov-free momentum) | rmsprop | adam
    lr: float = 2e-3  # learning rate (peak rate for onecycle)
    momentum: float = 0.9  # used by momentum and rmsprop
    weight_decay: float = 0.0  # L2 penalty through the optimizer
    schedule: str = "onecycle"  # learning-rate schedule over all steps
    epochs: int = 3  # passes over the training split
    batch_size: int = 64
    augment: str = "none"  # none | flip | crop (pad 2, random crop) | flip+crop
    val_fraction: float = 0.1  # share of train held out for validation (early stopping)
    early_stopping: int = 0  # stop after this many epochs without val improvement (0: off)
    seed: int | None = None  # None: a random seed is picked and recorded
    device: str | None = None  # cpu | cuda | mps | None (auto, or $NNKIT_DEVICE)
    name: str | None = None  # a name to refer to the run by
    max_steps: int | None = None  # stop after this many optimiser steps (tests, quick demos)

    def validate(self) -> TrainConfig:
        """Raise a one-line NnkitError for a bad value; return self."""
        if self.optimizer not in OPTIMIZERS:
            raise NnkitError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise NnkitError(f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.augment not in AUGMENTATIONS:
            raise NnkitError(f"unknown augmentation {self.augment!r}: choose one of {', '.join(AUGMENTATIONS)}")
        if not self.lr > 0:
            raise NnkitError(f"lr must be positive, got {self.lr}")
        if self.epochs < 1 or self.batch_size < 1:
            raise NnkitError("epochs and batch size must be at least 1")
        if not 0 <= self.val_fraction < 1:
            raise NnkitError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.early_stopping < 0 or (self.max_steps is not None and self.max_steps < 1):
            raise NnkitError("early_stopping must be >= 0 and max_steps >= 1")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
