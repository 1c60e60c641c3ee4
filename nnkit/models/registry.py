"""Model registry (timm-style): ``@register`` a factory; ``create(name, ...)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from nnkit.errors import NnkitError
from nnkit.models.wrapper import Classifier


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    factory: Callable[..., nn.Module]
    options: dict  # option name -> default, shown in the CLI and the dashboard


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, description: str, **options):
    """Decorator: register ``factory(num_classes, in_channels, image_size, **options) -> nn.Module``."""

    def deco(factory):
        _REGISTRY[name] = ModelEntry(name, description, factory, options)
        return factory

    return deco


def list_models() -> list[ModelEntry]:
    """Registered models with their options and defaults."""
    return list(_REGISTRY.values())


def create(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
           mean=None, std=None, **opts) -> Classifier:
    """Build a registered model wrapped as a Classifier that takes [0, 1] images.

    Args:
        name: registry name (``mlp``, ``cnn``, ``resnet``, ``resnet18``).
        num_classes, in_channels, image_size: the data's shape.
        mean, std: per-channel normalisation applied inside the model (default 0.5 / 0.5).
        **opts: model options (see ``list_models()``); unknown ones are an error.

    Shape:
        the model maps N×in_channels×image_size×image_size in [0, 1] to N×num_classes logits.

    Returns:
        A Classifier whose ``spec`` rebuilds it: ``create(**model.spec)``.
    """
    if name not in _REGISTRY:
        raise NnkitError(f"unknown model {name!r}: choose one of {', '.join(_REGISTRY)}")
    entry = _REGISTRY[name]
    unknown = set(opts) - set(entry.options)
    if unknown:
        raise NnkitError(f"model {name!r} has no option {', '.join(sorted(unknown))}; "
                         f"options: {', '.join(entry.options) or 'none'}")
    full = {**entry.options, **opts}
    net = entry.factory(num_classes=num_classes, in_channels=in_channels, image_size=image_size, **full)
    mean = [0.5] * in_channels if mean is None else [float(m) for m in mean]
    std = [0.5] * in_channels if std is None else [float(s) for s in std]
    spec = {"name": name, "num_classes": num_classes, "in_channels": in_channels,
            "image_size": image_size, "mean": mean, "std": std, **full}
    return Classifier(net, mean, std, spec)
