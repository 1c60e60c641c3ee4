"""Dataset types shared by every dataset builder: splits of [0, 1] image tensors with labels and masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from nnkit.errors import NnkitError


@dataclass
class Split:
    """One split of a dataset, held in memory.

    Shape:
        images: N×C×H×W float32 in [0, 1]; labels: N int64; masks: N×H×W bool or None
        (the suspected-confounder mask of each image, e.g. a watermark tag; empty where absent);
        tags: N int64 or None.
    """

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None = None
    tags: torch.Tensor | None = None  # N int64: class whose confounder tag the image carries, -1 none

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor | slice) -> Split:
        """The images at ``index`` (a slice or an index tensor) as a new Split."""
        def pick(t):
            return None if t is None else t[index]

        return Split(self.images[index], self.labels[index], pick(self.masks), pick(self.tags))


@dataclass
class Dataset:
    """A named dataset: class names, splits by name ("train", "test", variants) and provenance info."""

    name: str
    class_names: list[str]
    splits: dict[str, Split]
    info: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def in_channels(self) -> int:
        return int(self.splits["train"].images.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.splits["train"].images.shape[-1])

    def split(self, name: str) -> Split:
        """The split called ``name``; a one-line NnkitError lists the available ones otherwise."""
        if name not in self.splits:
            raise NnkitError(
                f"dataset {self.name!r} has no split {name!r}: choose one of {', '.join(self.splits)}"
            )
        return self.splits[name]
