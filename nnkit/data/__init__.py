"""Datasets: ``create(name, **opts)`` and ``list_datasets()`` over a registry.

Every dataset yields float images N×C×H×W in [0, 1], int64 labels and class names.
"""

from nnkit.data import confounded, shapes, torchvision_sets  # noqa: F401  (registers the builders)
from nnkit.data.base import Dataset, Split
from nnkit.data.registry import FOLDER_PREFIX, create, list_datasets

__all__ = ["Dataset", "Split", "create", "list_datasets", "FOLDER_PREFIX"]
