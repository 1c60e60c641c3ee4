"""Demo 6: training tricks side by side, each a short real training through ``nnkit.training.train``.

On a deliberately small training set (600 MNIST digits by default, a quarter held out for
validation) a plain MLP overfits: its training loss goes to zero while the validation loss stops
falling. On the embedded ``shapes`` data an MLP learns nothing at all, so there the baseline is a small CNN
without dropout or batch norm, trained with Adam at a constant learning rate on 750 images and validated on 1,000
more (shapes is generated, so the validation images need not come out of the training set). Each trick changes
one thing of that baseline:

- dropout (Srivastava et al. 2014) and data augmentation (random shifts) narrow the train/val gap;
  on the CNN the dropout is spatial (whole feature maps after each conv block, Tompson et al. 2015);
- batch norm (Ioffe & Szegedy 2015) makes the training loss fall much faster;
- a learning rate 25× too small barely moves; one 10× too large diverges (the loss becomes NaN: the
  curve ends there) or, with Adam on shapes, sticks at chance;
- momentum 0.9 (Polyak 1964; Sutskever et al. 2013) reaches zero training loss in far fewer epochs
  on MNIST; on shapes the baseline's optimiser is Adam, so there this run is SGD with momentum at lr 0.02
  (with the earlier cosine schedule plain SGD stayed at chance there, and SGD with momentum at Adam's rate
  0.002 did too); at the constant rate it learns but wobbles: seed 0 ends at 94.0% training and 85.3%
  validation accuracy (loss 0.560), having swung between 62% and 88% over its last 15 epochs;
- early stopping (Prechelt 1998) ends training once the validation loss has not fallen for 5 epochs and
  keeps the weights of its lowest epoch (``TrickCurve.kept_epoch``).

Measured on shapes (750 training, 1,000 validation, 1,000 test images, 30 epochs, one thread of a busy 2-core
VM, 31-43 CPU seconds per training): training accuracy and loss, validation accuracy and loss at the last
epoch, then test accuracy. Early stopping is read off the baseline's curve (the same seed gives the same run
until it stops; the slow test checks that for seed 0): the epoch it stops at, the one it keeps, and that one's
validation accuracy and loss. Accuracies in %.

    trick           seed 0                          seed 1                          seed 2
    baseline        100  0.003 | 83.1 0.678 | 82.2  100  0.005 | 80.7 0.648 | 80.2  100  0.004 | 83.7 0.582 | 83.9
    dropout         92.7 0.215 | 84.4 0.437 | 86.1  90.1 0.287 | 85.8 0.386 | 83.0  91.6 0.241 | 81.8 0.565 | 81.4
    batch norm      100  0.002 | 90.1 0.298 | 90.6  100  0.002 | 87.9 0.372 | 88.0  100  0.002 | 86.2 0.421 | 86.7
    augmentation    89.3 0.278 | 86.9 0.401 | 86.4  89.7 0.297 | 85.4 0.382 | 84.6  91.6 0.223 | 86.1 0.364 | 85.6
    early stopping  stops 24, keeps 19: 82.5 0.566  stops 26, keeps 21: 80.3 0.552  stops 28, keeps 23: 81.0 0.541

The baseline overfits: it learns the training set perfectly while its validation loss, lowest at epoch 19/21/23
(0.566/0.552/0.541), rises again to 0.678/0.648/0.582. A cosine schedule (the earlier recipe) froze the weights
in the last epochs and kept that rise from showing (seeds 0/1: validation loss flat at 0.59/0.58); the constant
rate also ends the baseline 1.6-4.8 validation points higher than the cosine one did.

"Beats the baseline on validation" here means a lower validation loss at the end (early stopping: of the epoch
it keeps), since that is what overfitting drives up. Batch norm and augmentation also win on validation
accuracy for every seed (+2.5 to +7.2 and +2.4 to +4.7 points) and on the test images. Spatial dropout 0.1 wins
on validation loss for every seed (0.24/0.26/0.02 lower) and halves the gap or better on seeds 0/1 (8.3/4.3/9.8
points against 16.9/19.3/16.3), but its validation accuracy is noisy from epoch to epoch at this constant rate:
+1.3/+5.1 points on seeds 0/1, -1.9 on seed 2 (86.2% at its epoch 27). Spatial dropout 0.05 did not do better (seed 0:
81.9%, seed 2: 83.7%, loss 0.580/0.520). Early stopping on the validation loss, patience 5, keeps an epoch
0.11/0.10/0.04 lower in validation loss with 7-20% fewer epochs, at 0.6/0.4/2.7 points less validation accuracy:
the baseline's validation accuracy keeps creeping up to its last epoch while its loss rises (it grows more sure
of its wrong answers). Watching the accuracy instead, early stopping could not win: it never stopped on seed 2,
and with patience 3 it stopped there at epoch 15 keeping 76.9%, loss 0.610 (worse on both). On the MNIST
subset (600 digits, seed 0) it stops at epoch 24 and keeps epoch 19: validation loss 0.383 and accuracy 88.0%
against the baseline's final 0.388 and 86.7%.

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
    # The CNN's baseline trains with Adam, so there the trick is SGD with momentum; at the shapes baseline's
    # constant rate 0.05 swung it between 40% and 66% validation accuracy over its last 15 epochs (ending at 53%)
    # and 0.01 learnt slowly (70.5%), seed 0.
    Trick("momentum", "SGD with momentum 0.9 at the same lr (on shapes it replaces Adam, at lr 0.02: it learns, "
          "but its validation accuracy swings from epoch to epoch)", {"optimizer": "momentum", "momentum": 0.9},
          cnn_overrides={"optimizer": "momentum", "momentum": 0.9, "lr": 0.02}),
    # On the validation loss, which overfitting drives up while the shapes baseline's accuracy still creeps up to its
    # last epoch (so stopping on accuracy kept a worse or the same epoch: see the module docstring). Patience 5: the
    # constant rate makes the numbers wobble from epoch to epoch, and 3 stopped before the best (seed 2, accuracy).
    Trick("early stopping", "stop after 5 epochs without a lower validation loss, keep the weights of the best epoch",
          {"early_stopping": 5, "early_stopping_on": "val_loss"}),
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
    kept_val_loss: float | None = None  # early stopping's win on shapes shows in this one (see the module docstring)
    done: bool = False

    @property
    def diverged(self) -> bool:
        """True when the training loss became NaN or infinite."""
        return any(not math.isfinite(v) for v in self.train_loss)

    @property
    def gap(self) -> float:
        """Final train accuracy minus final validation accuracy (the overfitting gap)."""
        return self.train_accuracy[-1] - self.val_accuracy[-1] if self.epochs else 0.0


# The page's default on shapes. With half as many (375, seed 0) every trick stays poor: the baseline, batch norm and
# augmentation end at 51.8/57.0/52.3% validation accuracy.
SHAPES_N_TRAIN = 750
# Shapes is generated, so its validation images come on top of the training images instead of out of them: 1,000
# of them (one image is 0.1 points) can show wins that a quarter of 1,000 (250 images, 0.4 points each) could not.
SHAPES_N_VAL = 1000
SHAPES_N_TEST = 1000


def baseline_config(data: str = "mnist", data_root: str | None = None, n_train: int = 600, epochs: int = 30,
                    seed: int = 0, device: str | None = "cpu") -> TrainConfig:
    """The baseline recipe every trick modifies, batch 32.

    MNIST-like data: MLP 256-256, plain SGD (lr 0.05, cosine schedule), a quarter of the ``n_train`` images held
    out for validation. Shapes: CNN 16-32-64 (dense 128) without dropout or batch norm, Adam at a constant lr
    0.002, trained on ``n_train`` generated images and validated on ``SHAPES_N_VAL`` more (tested on
    ``SHAPES_N_TEST``). An MLP, or
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
    common = dict(data=data, data_root=data_root, epochs=int(epochs), batch_size=32, seed=seed, device=device,
                  momentum=0.9)
    if data.startswith("shapes"):
        total = int(n_train) + SHAPES_N_VAL
        # The loop holds out int(total * fraction) images: half an image more keeps float rounding from
        # making that one fewer than SHAPES_N_VAL.
        # A constant learning rate: a cosine one freezes the weights in the last epochs, so the baseline's
        # validation loss stayed flat there instead of rising while it memorises the training set.
        return TrainConfig(**common, schedule="none", val_fraction=(SHAPES_N_VAL + 0.5) / total,
                           data_opts={"n_train": total, "n_test": SHAPES_N_TEST}, model="cnn",
                           model_opts={"widths": (16, 32, 64), "hidden": 128, "dropout": 0.0, "batch_norm": False},
                           optimizer="adam", lr=0.002)
    return TrainConfig(**common, schedule="cosine", val_fraction=0.25, data_opts={"limit": int(n_train)},
                       model="mlp", model_opts={"hidden": (256, 256), "dropout": 0.0, "batch_norm": False},
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
        CNN on 750 shapes images validated on 1,000, 31-43 CPU seconds per trick (busy 2-core VM, seeds 0-2;
        it was 20-30 with a quarter of 1,000 images held out: the larger validation pass costs the difference).
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
                if result.kept_epoch in curve.epochs:  # the loop says which epoch's weights it ended with
                    kept = curve.epochs.index(result.kept_epoch)
                    curve.kept_epoch = result.kept_epoch
                    curve.kept_val_accuracy = curve.val_accuracy[kept]
                    curve.kept_val_loss = curve.val_loss[kept]
            curve.done = True
            if on_progress is not None:
                on_progress(name, curve)
            curves.append(curve)
    return curves
