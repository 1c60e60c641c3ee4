"""The training config: one dataclass, saved as JSON with every run so the run can be repeated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from nnkit.errors import NnkitError
from nnkit.seeding import check_seed
from nnkit.validate import check_number, check_whole

OPTIMIZERS = ("sgd", "momentum", "rmsprop", "adam")
SCHEDULES = ("none", "cosine", "step", "onecycle")
AUGMENTATIONS = ("none", "flip", "crop", "flip+crop")
# What early stopping watches on the validation split: accuracy (higher is better) or loss (lower is better).
EARLY_STOPPING_ON = ("val_accuracy", "val_loss")
ADVERSARIAL = ("fgsm", "pgd")  # adversarial training: FGSM with a random start (Wong et al. 2020), PGD (Madry et al. 2018)
MAX_ADV_STEPS = 1000
# Bounds that no useful run reaches; they turn a typo (an extra zero or ten) into an error, not a week of work.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 1 << 16  # 65,536 images of 224×224×3 in float32 are already 39 GB
MAX_STEPS = 10_000_000


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
    # the validation number it watches, val_accuracy or val_loss; the weights of its best epoch are kept. Prechelt
    # (1998) watches the validation error; the loss shows overfitting while the accuracy can still creep up
    early_stopping_on: str = "val_accuracy"
    seed: int | None = None  # None: a random seed is picked and recorded
    device: str | None = None  # cpu | cuda | mps | None (auto, or $NNKIT_DEVICE)
    name: str | None = None  # a name to refer to the run by
    max_steps: int | None = None  # stop after this many optimiser steps (tests, quick demos)
    sync_bn: bool = False  # CUDA under torchrun: SyncBatchNorm (BatchNorm statistics over all ranks)
    adversarial: str | None = None  # None (standard training) | "fgsm" (with random start) | "pgd": train on attacks
    adv_eps: float = 8 / 255  # L∞ budget of the training attack, in [0, 1] pixel units
    adv_steps: int = 7  # PGD iterations (FGSM takes one step)
    adv_alpha: float | None = None  # step size; None: 1.25·eps for fgsm (Wong et al.), 2.5·eps/steps for pgd (Madry)
    # First epochs on clean images only (None: the first third, epochs // 3): from scratch, a cnn trained on FGSM
    # examples at 8/255 on shapes stays near chance (measured: 12% clean after 3 epochs, 18% after 10).
    adv_warmup: int | None = None

    def validate(self) -> TrainConfig:
        """Raise a one-line NnkitError for a bad value; return self.

        The one check of a training config: train() calls it before any data is built, so the CLI and the
        dashboard refuse the same values (a NaN or infinite rate would store a run of NaN weights).
        """
        if self.optimizer not in OPTIMIZERS:
            raise NnkitError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise NnkitError(f"unknown schedule {self.schedule!r}: choose one of {', '.join(SCHEDULES)}")
        if self.augment not in AUGMENTATIONS:
            raise NnkitError(f"unknown augmentation {self.augment!r}: choose one of {', '.join(AUGMENTATIONS)}")
        lr = check_number("lr", self.lr)
        if not lr > 0:
            raise NnkitError(f"lr must be positive, got {lr}")
        check_number("momentum", self.momentum, 0, 1, high_open=True)
        check_number("weight_decay", self.weight_decay, 0)
        check_number("val_fraction", self.val_fraction, 0, 1, high_open=True)
        check_whole("epochs", self.epochs, 1, MAX_EPOCHS)
        check_whole("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        check_whole("early_stopping", self.early_stopping, 0, MAX_EPOCHS)
        if self.early_stopping_on not in EARLY_STOPPING_ON:
            raise NnkitError(f"unknown early_stopping_on {self.early_stopping_on!r}: choose one of "
                             f"{', '.join(EARLY_STOPPING_ON)}")
        if self.max_steps is not None:
            check_whole("max_steps", self.max_steps, 1, MAX_STEPS)
        if self.seed is not None:
            check_seed(self.seed)
        if self.adversarial is not None and self.adversarial not in ADVERSARIAL:
            raise NnkitError(f"unknown adversarial training {self.adversarial!r}: choose one of "
                             f"{', '.join(ADVERSARIAL)} (or none)")
        eps = check_number("adv_eps (--eps)", self.adv_eps)
        if not 0 < eps <= 1:
            raise NnkitError(f"adv_eps (--eps) must be in (0, 1] (pixel values are in [0, 1]; 8/255 is usual), "
                             f"got {eps:g}")
        check_whole("adv_steps (--steps)", self.adv_steps, 1, MAX_ADV_STEPS)
        if self.adv_alpha is not None:
            alpha = check_number("adv_alpha (--alpha)", self.adv_alpha)
            if not 0 < alpha <= 1:
                raise NnkitError(f"adv_alpha (--alpha) must be in (0, 1], got {alpha:g}")
        if self.adv_warmup is not None:
            check_whole("adv_warmup (--adv-warmup)", self.adv_warmup, 0, MAX_EPOCHS)
        if self.adversarial is not None and self.adv_clean_epochs >= self.epochs:
            raise NnkitError(f"adv_warmup (--adv-warmup) leaves no epoch for adversarial training: "
                             f"{self.adv_clean_epochs} clean epochs of {self.epochs}")
        if not isinstance(self.model_opts, dict) or not isinstance(self.data_opts, dict):
            raise NnkitError("model_opts and data_opts must be KEY=VALUE mappings")
        if self.model_opts.get("dropout") is not None:
            check_number("dropout", self.model_opts["dropout"], 0, 1, high_open=True)
        # Names and dataset options too, before a folder of images is read for minutes (nnkit.data.options).
        from nnkit.data.registry import check_dataset
        from nnkit.models import list_models

        check_dataset(self.data, self.data_opts)
        models = [e.name for e in list_models()]
        if self.model not in models:
            raise NnkitError(f"unknown model {self.model!r}: choose one of {', '.join(models)}")
        return self

    @property
    def adv_clean_epochs(self) -> int:
        """Epochs trained on clean images before the attack starts: ``adv_warmup``, or ``epochs // 3`` when None."""
        return int(self.adv_warmup) if self.adv_warmup is not None else int(self.epochs) // 3

    @property
    def adv_step_size(self) -> float:
        """The training attack's step: ``adv_alpha``, or the paper's default for the method (see the field)."""
        if self.adv_alpha is not None:
            return float(self.adv_alpha)
        if self.adversarial == "pgd":
            return 2.5 * self.adv_eps / self.adv_steps
        return 1.25 * self.adv_eps

    def defence(self) -> dict | None:
        """The defence this config trains with, as recorded in the run's meta.json, or None for standard training.

        Returns:
            ``{"kind": "fgsm"|"pgd", "eps", "steps", "alpha", "norm": "linf", "random_start": True,
            "clean_epochs"}`` (``steps`` is 1 for FGSM; ``clean_epochs`` the first epochs, on clean images), or None.
        """
        if self.adversarial is None:
            return None
        return {"kind": self.adversarial, "eps": float(self.adv_eps),
                "steps": int(self.adv_steps) if self.adversarial == "pgd" else 1,
                "alpha": self.adv_step_size, "norm": "linf", "random_start": True,
                "clean_epochs": self.adv_clean_epochs}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
