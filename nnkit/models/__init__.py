"""Models: ``create(name, num_classes, in_channels, image_size, **opts)`` and ``list_models()``.

Every model is a Classifier: it takes [0, 1] images and normalises inside.
"""

from nnkit.models import cnn, mlp, resnet  # noqa: F401  (registers the factories)
from nnkit.models.registry import ModelEntry, create, list_models
from nnkit.models.wrapper import Classifier

__all__ = ["Classifier", "ModelEntry", "create", "list_models"]
