"""Multi-layer perceptron on flattened pixels (Rumelhart, Hinton & Williams 1986)."""

from __future__ import annotations

from torch import nn

from nnkit.models.layers import activation as make_activation
from nnkit.models.registry import register


@register("mlp", "multi-layer perceptron on flattened pixels", hidden=(256, 128), activation="relu",
          dropout=0.0, batch_norm=False)
def mlp(num_classes, in_channels, image_size, hidden, activation: str, dropout, batch_norm):
    """Flatten → [Linear → (BatchNorm) → act → (Dropout)] per hidden width → Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_channels * image_size * image_size
    for h in hidden:
        layers.append(nn.Linear(width, int(h)))
        if batch_norm:
            layers.append(nn.BatchNorm1d(int(h)))
        layers.append(make_activation(activation))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


