"""Classifier training: ``train(config, on_progress, stop_event)`` → a complete run in the store.

Data stays on the device as tensors and batches are drawn by index (no DataLoader workers), which
keeps small-image training close to the speed of a bare PyTorch loop (see bench/train_speed.py).
On CUDA it trains in mixed precision (bf16 autocast) with channels_last memory layout.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from nnkit import data as datasets
from nnkit import models
from nnkit.data.base import Dataset, Split
from nnkit.device import describe_device, get_device
from nnkit.errors import Cancelled
from nnkit.runs.store import RunStore
from nnkit.seeding import seed_everything
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
    metrics: dict = field(default_factory=dict)  # epoch events: train/val accuracy and loss, lr, seconds


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


def train(config: TrainConfig, on_progress: Callable[[Progress], None] | None = None,
          stop_event: threading.Event | None = None, store: RunStore | None = None) -> TrainResult:
    """Train a classifier and save it as a complete run.

    Args:
        config: the TrainConfig (validated here).
        on_progress: called with a Progress after every optimiser step and every epoch.
        stop_event: when set, training stops within one batch, the partial run is deleted and
            ``nnkit.errors.Cancelled`` is raised.
        store: the run store (default: ``$NNKIT_HOME/runs``).

    Returns:
        TrainResult with the run id, seed, test evaluation and per-epoch history.
    """
    config.validate()
    t0 = time.perf_counter()
    seed = seed_everything(config.seed)
    device = get_device(config.device)
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
    amp_dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp_dtype == torch.float16)
    opt = _optimizer(config, model.parameters())
    steps_per_epoch = -(-len(y) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    sched = _scheduler(config, opt, total_steps)
    store = store or RunStore()
    writer = store.begin(f"{config.model}-{config.data.replace('folder:', 'folder-')}")
    history: list[dict] = []
    best = (-1.0, None)
    stale = 0
    step = 0
    stopped_early = False
    try:
        for epoch in range(1, config.epochs + 1):
            model.train()
            t_epoch = time.perf_counter()
            perm = torch.randperm(len(y), device=device)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            seen = 0
            for b in range(steps_per_epoch):
                if stop_event is not None and stop_event.is_set():
                    raise Cancelled("training cancelled")
                idx = perm[b * config.batch_size : (b + 1) * config.batch_size]
                xb = augment_batch(x[idx], config.augment)
                yb = y[idx]
                if cuda:
                    xb = xb.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=cuda):
                    logits = model(xb)
                    loss = F.cross_entropy(logits, yb)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
                if sched is not None:
                    sched.step()
                step += 1
                loss_d = loss.detach()
                loss_sum += loss_d * len(yb)
                correct += (logits.detach().argmax(1) == yb).sum()
                seen += len(yb)
                if on_progress is not None:
                    on_progress(Progress("batch", epoch, config.epochs, step, total_steps, float(loss_d)))
                if step >= total_steps:
                    break
            record = {"epoch": epoch, "step": step, "train_loss": float(loss_sum) / max(seen, 1),
                      "train_accuracy": float(correct) / max(seen, 1), "lr": opt.param_groups[0]["lr"]}
            if val_split is not None:
                val = evaluate(model, val_split, dataset.num_classes)
                record.update(val_loss=val.loss, val_accuracy=val.accuracy)
            record["seconds"] = time.perf_counter() - t_epoch
            history.append(record)
            writer.log_metrics(record)
            if on_progress is not None:
                on_progress(Progress("epoch", epoch, config.epochs, step, total_steps, record["train_loss"],
                                     dict(record)))
            if step >= total_steps:
                break
            if config.early_stopping and val_split is not None:
                if record["val_accuracy"] > best[0]:
                    best, stale = (record["val_accuracy"], copy.deepcopy(model.state_dict())), 0
                else:
                    stale += 1
                    if stale >= config.early_stopping:
                        stopped_early = True
                        break
        if stopped_early and best[1] is not None:
            model.load_state_dict(best[1])
        model = model.to(memory_format=torch.contiguous_format).eval()
        test = evaluate(model, dataset.split("test"), dataset.num_classes)
        seconds = time.perf_counter() - t0
        writer.save_weights(model)
        writer.save_json("config.json", config.to_dict())
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
            "stopped_early": stopped_early,
        }
        info = writer.finish(meta)
    except BaseException:
        writer.abort()
        raise
    return TrainResult(info.run_id, seed, seconds, test, history, stopped_early, model)
