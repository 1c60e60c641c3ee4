"""LeNet-style CNN (LeCun et al. 1998) with modern options: activation, dropout, batch norm."""

from __future__ import annotations

from torch import nn

from nnkit.models.layers import activation as make_activation
from nnkit.models.registry import register


@register("cnn", "LeNet-style CNN: 3 conv-pool stages and 2 dense layers", widths=(32, 64, 128),
          hidden=256, activation="relu", dropout=0.25, batch_norm=False)
def cnn(num_classes, in_channels, image_size, widths, hidden, activation, dropout, batch_norm):
    """[3×3 conv → (BN) → act → 2×2 max-pool] per width → Flatten → dense → act → dropout → dense.

    Shape:
        N×C×S×S → N×num_classes; the last conv stage is ``features[-1]`` (Grad-CAM's layer).
    """
    stages: list[nn.Module] = []
    channels, side = in_channels, image_size
    for w in widths:
        block = [nn.Conv2d(channels, int(w), 3, padding=1, bias=not batch_norm)]
        if batch_norm:
            block.append(nn.BatchNorm2d(int(w)))
        block += [make_activation(activation), nn.MaxPool2d(2)]
        stages.append(nn.Sequential(*block))
        channels, side = int(w), side // 2
    head = [nn.Flatten(), nn.Linear(channels * side * side, int(hidden)), make_activation(activation)]
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
