"""Demo 6: training tricks side by side, each a short real training through ``nnkit.training.train``.

On a deliberately small training set (600 MNIST digits by default, a quarter held out for
validation) a plain MLP overfits: its training loss goes to zero while the validation loss stops
falling. On the embedded ``shapes`` data an MLP learns nothing at all, so there the baseline is a small CNN
without dropout or batch norm, trained with Adam on 750 images and validated on 1,000 more (shapes is
generated, so the validation images need not come out of the training set). Each trick changes one thing of
that baseline:

- dropout (Srivastava et al. 2014) and data augmentation (random shifts) narrow the train/val gap;
  on the CNN the dropout is spatial (whole feature maps after each conv block, Tompson et al. 2015);
- batch norm (Ioffe & Szegedy 2015) makes the training loss fall much faster;
- a learning rate 25× too small barely moves; one 10× too large diverges (the loss becomes NaN: the
  curve ends there) or, with Adam on shapes, sticks at chance;
- momentum 0.9 (Polyak 1964; Sutskever et al. 2013) reaches zero training loss in far fewer epochs
  on MNIST; on shapes the baseline's optimiser is Adam, so there this run is SGD with momentum at lr 0.05,
  while plain SGD at that rate stays at chance and SGD with momentum at Adam's rate 0.002 does too;
- early stopping (Prechelt 1998) ends training once validation accuracy stops improving and keeps
  the best weights (``TrickCurve.kept_epoch``).

Measured on shapes (750 training, 1,000 validation, 1,000 test images, 30 epochs, one thread of a busy 2-core
VM, 32-41 CPU seconds per training): training accuracy and loss, validation accuracy and loss at the
last epoch (early stopping: of the epoch it kept), then test accuracy. Seed 2 was not measured in this setting.

    trick            seed 0                               seed 1
    baseline         99.7% 0.08 | 78.3% 0.59 | 78.4%      98.7% 0.15 | 79.1% 0.58 | 76.3%
    dropout          80.0% 0.55 | 75.4% 0.65 | 76.7%      77.2% 0.67 | 74.7% 0.69 | 74.9%
    batch norm       100%  0.01 | 87.3% 0.38 | 88.9%      100%  0.01 | 87.4% 0.38 | 85.8%
    augmentation     85.2% 0.45 | 81.2% 0.55 | 79.3%      84.3% 0.46 | 79.7% 0.57 | 77.2%
    early stopping   epoch 21 of 24: 78.8% 0.585           epoch 22 of 25: 79.9% 0.583

The baseline overfits: 20-21 points between training and validation accuracy, and over its last 10 epochs
its training loss falls by 37-43% while its best validation loss improves by only 2% (0.593 -> 0.581 and
0.596 -> 0.582; seed 0 ends at 0.594, seed 1 flat at 0.582 from epoch 25). Augmentation wins on validation
accuracy (+2.9 and +0.6 points) and loss (0.04 and 0.01 lower) and on the test images (+0.9 points), with a
gap of 4-5 points. Batch norm wins most: +8.3-9.0 validation points at a third lower validation loss. Spatial
dropout 0.1 closes the gap by underfitting: with these 750 images it leaves chance 2-3 epochs later than the
baseline and 30 cosine epochs are too few for it, so it loses 2.9-4.4 validation points (on the earlier split,
a quarter of 1,000 images held out, it had won on the test images for seeds 0-2). Early stopping, read off the
baseline's run (the same seed gives the same run until it stops), keeps an epoch 0.5-0.8 validation points above
the baseline's end, chosen on those same validation images, with 17-20% fewer epochs; its validation loss is
0.009 lower (seed 0) or 0.001 higher (seed 1) than the baseline's final one.

Every run uses the same seed, so the baseline and the variants start from the same weights and the
same validation split. The runs go to a temporary run store that is removed afterwards.
"""

from __future__ import annotations

import math
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from nnkit.classroom._threads import one_thread
from nnkit.errors import NnkitError
from nnkit.runs.store import RunStore
from nnkit.training import Progress, TrainConfig, train


@dataclass(frozen=True)
class Trick:
    """One variant of the baseline recipe."""

    name: str
    description: str
    overrides: dict  # TrainConfig fields to change; "model_opts" entries are merged into the baseline's;
    # "lr_factor" multiplies the baseline's learning rate (the baselines of MNIST and shapes differ)
    cnn_overrides: dict | None = None  # used instead of ``overrides`` on the CNN baseline (shapes), when set


TRICKS: dict[str, Trick] = {t.name: t for t in (
    Trick("baseline", "no regularisation: overfits the small training set", {}),
    Trick("dropout", "dropout 0.5 after each hidden layer (MLP); on the CNN, spatial dropout 0.1 after each conv "
          "block (whole feature maps)", {"model_opts": {"dropout": 0.5}},
          cnn_overrides={"model_opts": {"conv_dropout": 0.1}}),
    Trick("batch norm", "batch normalisation before each activation", {"model_opts": {"batch_norm": True}}),
    # No flips on digits: a mirrored digit is another symbol.
    Trick("augmentation", "random 2-pixel shifts of every training image (pad and crop; on shapes also mirror "
          "images)", {"augment": "crop"}, cnn_overrides={"augment": "flip+crop"}),
    Trick("learning rate too small", "learning rate 25× smaller: the loss barely moves", {"lr_factor": 1 / 25}),
    Trick("learning rate too large", "learning rate 10× larger: the loss blows up (NaN) or sticks at chance",
          {"lr_factor": 10.0}),
    # The CNN's baseline trains with Adam, so there the trick is SGD with momentum at the MLP's SGD rate.
    Trick("momentum", "SGD with momentum 0.9 at the same lr (on shapes it replaces Adam, at lr 0.05, where plain "
          "SGD stays at chance)", {"optimizer": "momentum", "momentum": 0.9},
          cnn_overrides={"optimizer": "momentum", "momentum": 0.9, "lr": 0.05}),
    Trick("early stopping", "stop after 3 epochs without a better validation accuracy, keep the best weights",
          {"early_stopping": 3}),
)}


@dataclass
class TrickCurve:
    """Per-epoch curves of one trick's training (lists grow while it runs)."""

    name: str
    description: str
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    test_accuracy: float | None = None  # set when the training has finished
    stopped_early: bool = False
    # The epoch whose weights the run ended with: the last one, or the best one when early stopping restored it
    # (the curve goes on for the patience epochs after it, so its last point is not what the run kept).
    kept_epoch: int | None = None
    kept_val_accuracy: float | None = None
    done: bool = False

    @property
    def diverged(self) -> bool:
        """True when the training loss became NaN or infinite."""
        return any(not math.isfinite(v) for v in self.train_loss)

    @property
    def gap(self) -> float:
        """Final train accuracy minus final validation accuracy (the overfitting gap)."""
        return self.train_accuracy[-1] - self.val_accuracy[-1] if self.epochs else 0.0


SHAPES_N_TRAIN = 750  # the page's default on shapes: fewer and even the tricks stay near 40% validation accuracy
# Shapes is generated, so its validation images come on top of the training images instead of out of them: 1,000
# of them (one image is 0.1 points) can show wins that a quarter of 1,000 (250 images, 0.4 points each) could not.
SHAPES_N_VAL = 1000
SHAPES_N_TEST = 1000


def baseline_config(data: str = "mnist", data_root: str | None = None, n_train: int = 600, epochs: int = 30,
                    seed: int = 0, device: str | None = "cpu") -> TrainConfig:
    """The baseline recipe every trick modifies, cosine schedule, batch 32.

    MNIST-like data: MLP 256-256, plain SGD (lr 0.05), a quarter of the ``n_train`` images held out for
    validation. Shapes: CNN 16-32-64 (dense 128) without dropout or batch norm, Adam (lr 0.002), trained on
    ``n_train`` generated images and validated on ``SHAPES_N_VAL`` more (tested on ``SHAPES_N_TEST``). An MLP, or
    plain SGD on this CNN, stays near chance. Dropout in the dense head alone (0.5, also with 512 hidden units)
    did not help there: the conv features are what overfit. Element-wise dropout on them was erratic (0.05: -5.2
    to +8.8 points by seed) or slowed learning more than it regularised (0.1 and 0.2 with 0.5 in the head: 69%
    and 36% validation accuracy, seed 0), hence spatial dropout 0.1 (the module docstring has every trick's
    numbers).

    Args:
        data: dataset name; mnist, fashion-mnist and cifar10 keep the first ``n_train`` images of each
            split, shapes and shapes-confounded generate them.
        data_root: where the downloaded datasets are.
        n_train: MNIST-like data: images before the validation quarter is held out; shapes: training images.
        epochs: passes over the training images; seed: the same for every trick.
    """
    if n_train < 20 or epochs < 1:
        raise NnkitError("use at least 20 training images and one epoch")
    common = dict(data=data, data_root=data_root, schedule="cosine", epochs=int(epochs), batch_size=32,
                  seed=seed, device=device, momentum=0.9)
    if data.startswith("shapes"):
        total = int(n_train) + SHAPES_N_VAL
        # The loop holds out int(total * fraction) images: half an image more keeps float rounding from
        # making that one fewer than SHAPES_N_VAL.
        return TrainConfig(**common, val_fraction=(SHAPES_N_VAL + 0.5) / total,
                           data_opts={"n_train": total, "n_test": SHAPES_N_TEST}, model="cnn",
                           model_opts={"widths": (16, 32, 64), "hidden": 128, "dropout": 0.0, "batch_norm": False},
                           optimizer="adam", lr=0.002)
    return TrainConfig(**common, val_fraction=0.25, data_opts={"limit": int(n_train)}, model="mlp",
                       model_opts={"hidden": (256, 256), "dropout": 0.0, "batch_norm": False},
                       optimizer="sgd", lr=0.05)


def trick_config(name: str, base: TrainConfig) -> TrainConfig:
    """``base`` with the trick ``name`` applied (a new TrainConfig)."""
    if name not in TRICKS:
        raise NnkitError(f"unknown trick {name!r}: choose from {', '.join(TRICKS)}")
    cfg = TrainConfig.from_dict(base.to_dict())
    trick = TRICKS[name]
    overrides = trick.cnn_overrides if base.model == "cnn" and trick.cnn_overrides is not None else trick.overrides
    for key, value in overrides.items():
        if key == "model_opts":
            cfg.model_opts = {**cfg.model_opts, **value}
        elif key == "lr_factor":
            cfg.lr = base.lr * value
        else:
            setattr(cfg, key, value)
    return cfg


def compare_tricks(names=tuple(TRICKS), data: str = "mnist", data_root: str | None = None, n_train: int = 600,
                   epochs: int = 30, seed: int = 0, device: str | None = "cpu",
                   on_progress: Callable[[str, TrickCurve], None] | None = None,
                   stop_event: threading.Event | None = None) -> list[TrickCurve]:
    """Train the baseline and each trick in turn; stream per-epoch curves.

    Args:
        names: keys of ``TRICKS`` (the baseline is not added automatically: list it to compare).
        data, data_root, n_train, epochs, seed, device: see ``baseline_config``.
        on_progress: called as ``on_progress(name, curve)`` after every epoch of every run (the page
            redraws its charts from the curves), and once more when a run is done.
        stop_event: when set, the current training stops within one batch and
            ``nnkit.errors.Cancelled`` is raised.

    Returns:
        One finished TrickCurve per name, also for a run that diverged (its curve ends with the NaN epoch;
        no test accuracy). One thread: MLP on 600 MNIST digits, 30 epochs, about 2 CPU seconds per trick;
        CNN on 750 shapes images validated on 1,000, 32-41 CPU seconds per trick (busy 2-core VM; it
        was 20-30 with a quarter of 1,000 images held out: the larger validation pass costs the difference).
    """
    base = baseline_config(data, data_root, n_train, epochs, seed, device)
    configs = [(name, trick_config(name, base)) for name in names]
    curves = []
    with tempfile.TemporaryDirectory(prefix="nnkit-tricks-") as tmp:
        store = RunStore(tmp)  # throwaway runs: the classroom does not fill the user's run store
        for name, cfg in configs:
            curve = TrickCurve(name, TRICKS[name].description)
            batches: list[tuple[float, float]] = []  # this epoch's (loss, accuracy) per batch

            def record(p: Progress, curve=curve, name=name, batches=batches):
                if p.kind == "batch":
                    batches.append((p.loss, float(p.metrics.get("accuracy", math.nan))))
                    return
                batches.clear()
                m = p.metrics
                curve.epochs.append(p.epoch)
                curve.train_loss.append(float(m["train_loss"]))
                curve.train_accuracy.append(float(m["train_accuracy"]))
                curve.val_loss.append(float(m.get("val_loss", math.nan)))
                curve.val_accuracy.append(float(m.get("val_accuracy", math.nan)))
                if on_progress is not None:
                    on_progress(name, curve)

            try:
                with one_thread():
                    result = train(cfg, on_progress=record, stop_event=stop_event, store=store)
            except NnkitError:
                # The loop refuses to go on (or store) a run whose epoch loss is NaN or infinite; for the
                # "too large" learning rate that is the lesson, so the curve ends with the diverged epoch.
                if not any(not math.isfinite(loss) for loss, _ in batches):
                    raise
                curve.epochs.append(len(curve.epochs) + 1)
                curve.train_loss.append(sum(loss for loss, _ in batches) / len(batches))
                curve.train_accuracy.append(sum(acc for _, acc in batches) / len(batches))
                curve.val_loss.append(math.nan)
                curve.val_accuracy.append(math.nan)
                if on_progress is not None:
                    on_progress(name, curve)
            else:
                curve.test_accuracy = result.test_accuracy
                curve.stopped_early = result.stopped_early
                # The loop restores the first epoch of the best validation accuracy when it stops early.
                kept = curve.val_accuracy.index(max(curve.val_accuracy)) if result.stopped_early else -1
                curve.kept_epoch = curve.epochs[kept] if curve.epochs else None
                curve.kept_val_accuracy = curve.val_accuracy[kept] if curve.epochs else None
            curve.done = True
            if on_progress is not None:
                on_progress(name, curve)
            curves.append(curve)
    return curves
