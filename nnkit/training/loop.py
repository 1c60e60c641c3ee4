"""Classifier training: ``train(config, on_progress, stop_event)`` → a complete run in the store.

Data stays on the device as tensors and batches are drawn by index (no DataLoader workers), which
keeps small-image training close to the speed of a bare PyTorch loop (see bench/train_speed.py).
On CUDA it trains in mixed precision (bf16 autocast) with channels_last memory layout.

The same code trains on one process or, under ``torchrun`` (see :mod:`nnkit.distributed`), data-parallel
on N: ``batch_size`` stays the global batch; every rank draws the same seeded permutation and the same
augmentation for the whole batch and keeps its share (``batch[rank::N]``), and DistributedDataParallel
sums the gradients, so N ranks take the steps of one process with the same seed (up to float rounding).
Logged losses and accuracies, validation, test evaluation and early stopping are reduced over all
ranks; rank 0 alone writes the run.

With ``config.adversarial`` set, every training batch is replaced by an attack on it made against the current
model (:mod:`nnkit.training.adversarial`: FGSM with a random start or PGD); the logged training loss and accuracy
are then those of the adversarial batches, and validation and test stay on clean images. A step costs about
(attack steps + 1) forward-backward passes; the progress unit stays the optimiser step, so a measured rate
(and ETA) includes the attack.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from nnkit import data as datasets
from nnkit import distributed, models
from nnkit.data.base import Dataset, Split
from nnkit.device import describe_device
from nnkit.errors import Cancelled, NnkitError
from nnkit.runs.store import RunStore
from nnkit.seeding import item_seed, seed_everything
from nnkit.training.adversarial import AdversarialTraining, epoch_seed
from nnkit.training.augment import augment_batch
from nnkit.training.config import TrainConfig
from nnkit.training.evaluate import Evaluation, evaluate
from nnkit.versions import library_versions


@dataclass
class Progress:
    """One progress event: ``kind`` is "batch" (every optimiser step) or "epoch" (after validation)."""

    kind: str
    epoch: int  # 1-based
    epochs: int
    step: int  # optimiser steps done so far
    total_steps: int
    loss: float  # batch loss ("batch") or mean train loss over the epoch ("epoch")
    metrics: dict = field(default_factory=dict)  # epoch: train/val accuracy and loss, lr, seconds; batch: accuracy


@dataclass
class TrainResult:
    """What a finished training returns (the run itself is in the store)."""

    run_id: str
    seed: int
    seconds: float
    test: Evaluation
    history: list[dict]
    stopped_early: bool
    model: torch.nn.Module
    kept_epoch: int | None = None  # the epoch whose weights ``model`` has: the last, or early stopping's best

    @property
    def test_accuracy(self) -> float:
        return self.test.accuracy


def load_data(config: TrainConfig) -> Dataset:
    """The config's dataset (root passed only to the datasets that download)."""
    opts = dict(config.data_opts)
    if config.data_root and config.data in ("mnist", "fashion-mnist", "cifar10"):
        opts["root"] = config.data_root
    return datasets.create(config.data, **opts)


def _split_train_val(split: Split, fraction: float, seed: int) -> tuple[Split, Split | None]:
    if fraction <= 0:
        return split, None
    perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    n_val = max(1, int(len(split) * fraction))
    return split.subset(perm[n_val:]), split.subset(perm[:n_val])


def _optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    wd = config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=wd)
    if config.optimizer == "momentum":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=config.lr, momentum=0.0, weight_decay=wd)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=wd)


def _scheduler(config: TrainConfig, opt, total_steps: int):
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, total_steps // 3), gamma=0.1)
    if config.schedule == "onecycle" and total_steps >= 10:  # shorter runs (max_steps demos) keep a flat rate
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total_steps,
                                                   pct_start=0.25)
    return None


def check_finite_loss(loss: float, epoch: int, step: int, what: str = "training loss") -> None:
    """Raise a one-line NnkitError when ``loss`` is NaN or infinite (the caller then aborts the run).

    Args:
        loss: the epoch's mean loss (a non-finite batch makes it non-finite too).
        epoch, step: where training stood when the loss was checked (1-based epoch, steps done).
        what: the loss's name in the message.
    """
    if not math.isfinite(loss):
        raise NnkitError(f"{what} became {loss} in epoch {epoch} (by step {step}): the run is not saved; "
                         "lower the learning rate (--lr), or check the data for NaN values")


def train(config: TrainConfig, on_progress: Callable[[Progress], None] | None = None,
          stop_event: threading.Event | None = None, store: RunStore | None = None) -> TrainResult:
    """Train a classifier and save it as a complete run.

    Args:
        config: the TrainConfig (validated here).
        on_progress: called with a Progress after every optimiser step and every epoch.
        stop_event: when set, training stops within one batch, the partial run is deleted and
            ``nnkit.errors.Cancelled`` is raised.
        store: the run store (default: ``$NNKIT_HOME/runs``).

    Under a launcher (RANK / WORLD_SIZE set, e.g. ``torchrun``) every rank calls this; see the module
    docstring. A rank that dies or hangs makes the others raise one NnkitError, and no run is saved.

    Returns:
        TrainResult with the run id, seed, test evaluation and per-epoch history.
    """
    config.validate()
    store = store or RunStore()
    store.check_new_name(config.name)  # before any work: control characters, a name shadowing a run id
    # torch's optimizers import torch._dynamo when the first one is built (about 4 CPU-seconds on a 2-core VM): a
    # one-time cost of the process, loaded here so that a run's measured seconds are its training's.
    import torch._dynamo  # noqa: F401

    with distributed.init_from_env(config.device) as world:
        return _train(config, world, on_progress, stop_event, store)


class _NoWriter:
    """What ranks other than 0 write the run with: nothing (rank 0 alone writes the run)."""

    def log_metrics(self, record: dict) -> None:
        pass

    def save_weights(self, model) -> None:
        pass

    def save_json(self, filename: str, obj) -> None:
        pass

    def finish(self, meta: dict) -> None:
        return None

    def abort(self) -> None:
        pass


def _train(config: TrainConfig, world: distributed.World, on_progress, stop_event, store) -> TrainResult:
    """:func:`train` on this rank of ``world`` (a world of one without a launcher)."""
    t0 = time.perf_counter()
    if config.batch_size < world.size:
        raise NnkitError(f"the global batch of {config.batch_size} cannot be shared by {world.size} processes")
    # All ranks train with one seed: a seed drawn at random is rank 0's, sent to the others.
    seed = seed_everything(distributed.broadcast_from_master(seed_everything(config.seed)))
    device = world.device
    dataset = load_data(config)
    train_split, val_split = _split_train_val(dataset.split("train"), config.val_fraction, seed)
    x = train_split.images.to(device)
    y = train_split.labels.to(device)
    mean = x.mean(dim=(0, 2, 3)).tolist()
    std = x.std(dim=(0, 2, 3)).clamp(min=1e-3).tolist()
    model = models.create(config.model, dataset.num_classes, dataset.in_channels, dataset.image_size,
                          mean=mean, std=std, **config.model_opts).to(device)
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    if config.sync_bn:
        if not cuda:
            raise NnkitError("--sync-bn needs CUDA (SyncBatchNorm does not run on the CPU; there each rank "
                             "keeps plain BatchNorm statistics)")
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # DDP sums the ranks' gradients during backward; a world of one trains the module itself.
    net = model if world.size == 1 else torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if cuda else None)
    # Dropout draws from the global generator: one stream per rank, so ranks do not share masks.
    torch.manual_seed(item_seed(seed, world.rank))
    # The data order and augmentation draw from their own generator, the same on every rank.
    data_gen = torch.Generator(device=device).manual_seed(seed)
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp_dtype == torch.float16)
    opt = _optimizer(config, model.parameters())
    steps_per_epoch = -(-len(y) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    sched = _scheduler(config, opt, total_steps)
    adversarial = AdversarialTraining.from_config(config)
    label = f"{config.model}-{config.data.replace('folder:', 'folder-')}"
    writer = store.begin(label) if world.master else _NoWriter()
    history: list[dict] = []
    best = (-math.inf, None, None)  # (score of the best epoch so far, its weights, its epoch)
    stale = 0
    step = 0
    stopped_early = False
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            t_epoch = time.perf_counter()
            perm = torch.randperm(len(y), generator=data_gen, device=device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            attack_seed = epoch_seed(seed, epoch)
            for b in range(steps_per_epoch):
                idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
                # Each rank augments the whole global batch (same draws everywhere) and keeps its share.
                xb = distributed.shard(augment_batch(x[idx], config.augment, generator=data_gen), world)
                yb = distributed.shard(y[idx], world)
                if cuda:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                if adversarial is not None and epoch > config.adv_clean_epochs:
                    # Against the inner module (never ``net``): DDP's gradient sync belongs to the step below.
                    xb = adversarial.perturb(model, xb, yb, distributed.shard(idx, world), attack_seed,
                                             autocast_dtype=amp_dtype if cuda else None)
                    if cuda:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=cuda):
                    logits = net(xb)
                    # Sum over the share / global batch, times N because DDP averages the ranks' gradients:
                    # the gradient of the global batch's mean loss, however unevenly the batch is shared.
                    loss = F.cross_entropy(logits, yb, reduction="sum") * (world.size / len(idx))
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if sched is not None:
                    sched.step()
                step += 1
                loss_d = loss.detach().float()
                loss_sum += loss_d * (len(idx) / world.size)
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += len(yb)
                # One small all-reduce per step: the global batch loss, and a stop set on any rank (a job's
                # cancel) reaches every rank within one batch.
                # The batch's correct count rides along, so a live chart has accuracy from the first step.
                stopping = 1.0 if stop_event is not None and stop_event.is_set() else 0.0
                batch_correct = (logits.detach().argmax(1) == yb).sum().to(loss_d.dtype)
                shared = distributed.all_reduce_sum(torch.stack([loss_d, loss_d.new_tensor(stopping), batch_correct,
                                                                 loss_d.new_tensor(float(len(yb)))]))
                if float(shared[1]) > 0:
                    raise Cancelled("training cancelled")
                if on_progress is not None and world.master:
                    on_progress(Progress("batch", epoch, config.epochs, step, total_steps,
                                         float(shared[0]) / world.size,
                                         {"accuracy": float(shared[2]) / max(float(shared[3]), 1.0)}))
                if step >= total_steps:
                    break
            totals = distributed.all_reduce_sum(torch.stack([loss_sum.double(), correct.double(),
                                                             loss_sum.new_tensor(seen, dtype=torch.float64)]))
            loss_total, correct_total, seen_total = totals.tolist()
            record = {"epoch": epoch, "step": step, "train_loss": loss_total / max(seen_total, 1),
                      "train_accuracy": correct_total / max(seen_total, 1), "lr": opt.param_groups[0]["lr"]}
            # Checked once per epoch on the summed loss (one sync, which the line above makes anyway): a NaN or
            # infinite batch loss makes the sum non-finite, and a run of NaN weights must not be stored.
            check_finite_loss(record["train_loss"], epoch, step)
            if val_split is not None:
                val = evaluate(model, val_split, dataset.num_classes, sharded=True)
                record.update(val_loss=val.loss, val_accuracy=val.accuracy)
            record["seconds"] = time.perf_counter() - t_epoch
            history.append(record)
            writer.log_metrics(record)
            if on_progress is not None and world.master:
                on_progress(Progress("epoch", epoch, config.epochs, step, total_steps, record["train_loss"],
                                     dict(record)))
            if step >= total_steps:
                break
            if config.early_stopping and val_split is not None:
                # Higher is better: the loss enters negated. A NaN loss never counts as an improvement.
                score = -record["val_loss"] if config.early_stopping_on == "val_loss" else record["val_accuracy"]
                if score > best[0]:
                    best, stale = (score, copy.deepcopy(model.state_dict()), epoch), 0
                else:
                    stale += 1
                    if stale >= config.early_stopping:
                        stopped_early = True
                        break
        kept_epoch = history[-1]["epoch"] if history else None
        if stopped_early and best[1] is not None:
            model.load_state_dict(best[1])
            kept_epoch = best[2]
        model = model.to(memory_format=torch.contiguous_format).eval()
        test = evaluate(model, dataset.split("test"), dataset.num_classes, sharded=True)
        seconds = time.perf_counter() - t0
        writer.save_weights(model)
        writer.save_json("config.json", {**config.to_dict(), "distributed": world.describe()})
        writer.save_json("eval_test.json", test.to_dict())
        meta = {
            "kind": "classifier", "name": config.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seed": seed, "device": describe_device(device), "versions": library_versions(),
            "dataset": {"name": dataset.name, "opts": config.data_opts, "root": config.data_root,
                        "class_names": dataset.class_names, "info": dataset.info,
                        "n_train": len(train_split), "n_val": len(val_split) if val_split else 0,
                        "n_test": len(dataset.split("test"))},
            "model": model.spec, "parameters": sum(p.numel() for p in model.parameters()),
            "test_accuracy": test.accuracy, "seconds": seconds, "epochs_run": len(history),
            "stopped_early": stopped_early, "distributed": world.describe(),
            # What the run was trained to resist (None: standard training), for run lists, cards and reports.
            "defence": config.defence(),
        }
        info = writer.finish(meta)
    except BaseException:
        writer.abort()
        raise
    run_id = distributed.broadcast_from_master(info.run_id if info is not None else None)
    return TrainResult(run_id, seed, seconds, test, history, stopped_early, model, kept_epoch)
