"""Batched prediction and evaluation: accuracy, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nnkit import distributed
from nnkit.data.base import Split


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` for ``images`` in eval mode, batched, on the model's device.

    Shape:
        images N×C×H×W in [0, 1] (any device) → logits N×K float32 on CPU.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, images.shape[0], batch_size):
        out.append(model(images[i : i + batch_size].to(device, non_blocking=True)).float().cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class Evaluation:
    """Accuracy figures of a model on one split."""

    accuracy: float
    loss: float
    per_class: list[float]  # accuracy per true class (NaN-free: classes with no image get 0.0)
    confusion: list[list[int]]  # confusion[true][predicted] counts
    n: int

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "loss": self.loss, "per_class": self.per_class,
                "confusion": self.confusion, "n": self.n}


def evaluate(model: torch.nn.Module, split: Split, num_classes: int, batch_size: int = 512, *,
             sharded: bool = False) -> Evaluation:
    """Evaluate ``model`` on ``split``.

    Args:
        model: a classifier taking [0, 1] images.
        split: images and labels.
        num_classes: size of the confusion matrix.
        sharded: under torchrun, every rank predicts its share of the images (``images[rank::N]``) and
            the predictions and per-image losses are gathered, so every rank returns the figures of the
            whole split, computed as one process computes them. Every rank must call it.

    Returns:
        Evaluation with accuracy (0..1), mean cross-entropy, per-class accuracy and confusion matrix.
    """
    everyone = torch.arange(len(split))
    mine = distributed.shard(everyone) if sharded else everyone
    logits = predict_logits(model, split.images[mine], batch_size)
    labels = split.labels.cpu()
    pred = logits.argmax(1)
    losses = F.cross_entropy(logits, labels[mine], reduction="none") if len(mine) else torch.empty(0)
    if sharded and distributed.world().size > 1:
        parts = distributed.all_gather((pred, losses))
        pred = torch.tensor(distributed.unshard([p.tolist() for p, _ in parts], len(split)), dtype=torch.long)
        losses = torch.tensor(distributed.unshard([q.tolist() for _, q in parts], len(split)))
    confusion = torch.bincount(labels * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
    totals = confusion.sum(1).clamp(min=1)
    return Evaluation(
        accuracy=float((pred == labels).float().mean()) if len(labels) else 0.0,
        loss=float(losses.mean()) if len(labels) else 0.0,
        per_class=(confusion.diag() / totals).tolist(),
        confusion=confusion.tolist(),
        n=len(labels),
    )
