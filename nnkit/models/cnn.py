"""LeNet-style CNN (LeCun et al. 1998) with modern options: activation, dropout, batch norm."""

from __future__ import annotations

from torch import nn

from nnkit.errors import NnkitError
from nnkit.models.layers import activation as make_activation
from nnkit.models.registry import register


@register("cnn", "LeNet-style CNN: 3 conv-pool stages and 2 dense layers", widths=(24, 48, 96),
          hidden=192, activation="relu", dropout=0.25, batch_norm=True, pool="max", conv_dropout=0.0)
def cnn(num_classes, in_channels, image_size, widths, hidden, activation, dropout, batch_norm, pool,
        conv_dropout=0.0):
    """[3×3 conv → (BN) → act → 2×2 max-pool → (spatial dropout)] per width → pool → Flatten → dense → act
    → dropout → dense.

    ``pool`` is "max" or "avg" (global pooling over positions: the head sees what, not where, so a
    small object anywhere in the frame is learnt from few examples) or "flatten" (classic LeNet).
    ``dropout`` acts in the dense head; ``conv_dropout`` (default 0: no layer, so older checkpoints load
    unchanged) zeroes whole feature maps after each conv stage: spatial dropout (Tompson et al. 2015), since
    neighbouring pixels of one map are correlated and dropping single pixels mostly adds noise. On the
    classroom's shapes data (``nnkit.classroom.tricks``, seed 0) element-wise dropout 0.1 at the same places
    slowed training so much that validation accuracy fell to 69% (baseline 81%).

    Shape:
        N×C×S×S → N×num_classes; the last conv stage is ``features[-1]`` (Grad-CAM's layer).
    """
    if not 0 <= float(conv_dropout) < 1:
        raise NnkitError(f"cnn conv_dropout must be in [0, 1), got {conv_dropout!r}")
    stages: list[nn.Module] = []
    channels, side = in_channels, image_size
    for w in widths:
        block = [nn.Conv2d(channels, int(w), 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            block.append(nn.BatchNorm2d(int(w)))
        block += [make_activation(activation), nn.MaxPool2d(2)]
        if conv_dropout:
            block.append(nn.Dropout2d(conv_dropout))
        stages.append(nn.Sequential(*block))
        channels, side = int(w), side // 2
    if pool not in ("max", "avg", "flatten"):
        raise NnkitError(f"cnn pool must be max, avg or flatten, got {pool!r}")
    pooling = {"max": nn.AdaptiveMaxPool2d(1), "avg": nn.AdaptiveAvgPool2d(1), "flatten": nn.Identity()}[pool]
    flat = channels if pool != "flatten" else channels * side * side
    head = [pooling, nn.Flatten(), nn.Linear(flat, int(hidden)), make_activation(activation)]
    if dropout:
        head.append(nn.Dropout(dropout))
    head.append(nn.Linear(int(hidden), num_classes))
    return _CNN(nn.Sequential(*stages), nn.Sequential(*head))


class _CNN(nn.Module):
    def __init__(self, features: nn.Sequential, head: nn.Sequential):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x):
        return self.head(self.features(x))
