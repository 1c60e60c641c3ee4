"""The suspected-confounder box a user names: parsed, mapped from their image coordinates onto the model
input, and a control region of the same size elsewhere.

The box is given in the coordinates of the user's images, not of the resized model input:

* ``x0,y0,x1,y1`` whole numbers: end-exclusive pixels of the images as they are on disk (a folder's
  images before nnkit resized them; a built-in dataset's native size). This needs one image size; a
  folder whose images differ in size is refused with a pointer to the percent form.
* ``x0%,y0%,x1%,y1%``: percentages of the width and height, which fit images of every size.

On the model input the box is rounded outwards (``floor`` of the start, ``ceil`` of the end), so it
still covers the whole region after resizing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import torch

from nnkit.data.base import Dataset
from nnkit.errors import NnkitError

_FORMS = "four whole numbers x0,y0,x1,y1 (pixels of your images) or four percentages such as 75%,75%,100%,100%"


@dataclass(frozen=True)
class MaskBox:
    """A box as the user gave it: pixels of their images (``percent`` False) or percentages of width and height."""

    x0: Fraction
    y0: Fraction
    x1: Fraction
    y1: Fraction
    percent: bool = False

    @classmethod
    def parse(cls, text) -> MaskBox:
        """``"x0,y0,x1,y1"`` or ``"x0%,y0%,x1%,y1%"`` (or a MaskBox, or four whole numbers) → MaskBox.

        Returns:
            The box; a one-line NnkitError for anything else, a mix of the two forms, or a box with
            x0 >= x1, y0 >= y1, a negative value or a percentage over 100.
        """
        if isinstance(text, MaskBox):
            return text
        if isinstance(text, tuple | list):
            text = ",".join(str(v) for v in text)
        parts = [p.strip() for p in str(text).split(",")]
        percent = [p.endswith("%") for p in parts]
        values = []
        try:
            for p, pc in zip(parts, percent):
                v = Fraction(p[:-1].strip()) if pc else int(p)
                values.append(v)
        except (ValueError, ZeroDivisionError):
            values = []
        if len(values) != 4 or len(set(percent)) != 1:
            raise NnkitError(f"mask box must be {_FORMS}, got {text!r}")
        box = cls(*values, percent=percent[0])
        if box.x0 >= box.x1 or box.y0 >= box.y1:
            raise NnkitError(f"mask box {box} is empty: it needs x0 < x1 and y0 < y1 (end-exclusive)")
        if min(values) < 0 or (box.percent and max(values) > 100):
            limit = "between 0% and 100%" if box.percent else ">= 0"
            raise NnkitError(f"mask box {box} leaves the image: every value must be {limit}")
        return box

    def __str__(self) -> str:
        unit = "%" if self.percent else ""
        return ",".join(f"{_num(v)}{unit}" for v in (self.x0, self.y0, self.x1, self.y1))

    def to_model(self, model_size: tuple[int, int], image_size: tuple[int, int] | None) -> tuple[int, int, int, int]:
        """The box on the model input, rounded outwards.

        Args:
            model_size: ``(width, height)`` of the model input.
            image_size: ``(width, height)`` of the user's images; None when they differ in size (then only
                the percent form is accepted).

        Returns:
            ``(x0, y0, x1, y1)`` end-exclusive pixels of the model input; a one-line NnkitError when a
            pixel box leaves the user's images or cannot be placed.
        """
        mw, mh = model_size
        if self.percent:
            sw = sh = Fraction(100)
        elif image_size is None:
            raise NnkitError(f"mask box {self} is in pixels, but the images differ in size: give it as percentages "
                             "of the width and height instead, e.g. 75%,75%,100%,100%")
        else:
            sw, sh = (Fraction(v) for v in image_size)
            if self.x1 > sw or self.y1 > sh:
                raise NnkitError(f"mask box {self} leaves the {_num(sw)}×{_num(sh)} images: it needs 0 <= x0 < x1 <= "
                                 f"{_num(sw)} and 0 <= y0 < y1 <= {_num(sh)} (end-exclusive pixels of your images)")
        return (math.floor(self.x0 * mw / sw), math.floor(self.y0 * mh / sh),
                math.ceil(self.x1 * mw / sw), math.ceil(self.y1 * mh / sh))


def _num(v: Fraction) -> str:
    return str(int(v)) if v.denominator == 1 else f"{float(v):g}"


def image_size(dataset: Dataset) -> tuple[int, int] | None:
    """The size of the user's images before nnkit resized them: the one size of a folder's images (None
    when they differ), a built-in dataset's native size otherwise.

    Returns:
        ``(width, height)`` or None.
    """
    sizes = dataset.info.get("source_sizes")
    if sizes is None:  # built-in datasets are generated or stored at the size the model sees
        return dataset.image_size, dataset.image_size
    sizes = {tuple(int(v) for v in s) for s in sizes}
    return next(iter(sizes)) if len(sizes) == 1 else None


def place_box(box, dataset: Dataset) -> dict:
    """Map a user's box onto the model input of ``dataset`` and say which coordinates are which.

    Args:
        box: a MaskBox, its text, or four whole numbers (pixels of the user's images).
        dataset: the data the box is for.

    Returns:
        ``{"given", "unit" (pixels | percent), "image_size" ([w, h] or None), "model_box" [x0, y0, x1, y1],
        "model_size" [w, h], "text"}``: ``text`` names both boxes in words.
    """
    box = MaskBox.parse(box)
    model_size = (dataset.image_size, dataset.image_size)
    size = image_size(dataset)
    model_box = box.to_model(model_size, size)
    given = f"box {box}"
    model = ",".join(map(str, model_box))
    if box.percent:
        text = f"{given} (percent of width and height) = {model} on the {model_size[0]}×{model_size[1]} model input"
    elif size == model_size:
        text = f"{given} (pixels of the {size[0]}×{size[1]} images, the model's input size)"
    else:
        text = f"{given} on the {size[0]}×{size[1]} images = {model} on the {model_size[0]}×{model_size[1]} model input"
    return {"given": str(box), "unit": "percent" if box.percent else "pixels",
            "image_size": list(size) if size else None, "model_box": list(model_box), "model_size": list(model_size),
            "text": text}


def control_masks(masks: torch.Tensor) -> tuple[torch.Tensor | None, str]:
    """A control region for each mask: the same shape and area elsewhere, so that "erasing the region changes
    the predictions" is measured against erasing an arbitrary region of the same size.

    The mask is turned 180° about the image centre, else mirrored left-right, else top-bottom: the first
    of these that overlaps no image's own mask. A region that covers the centre has none.

    Shape:
        masks N×H×W bool → N×H×W bool, or None.

    Returns:
        ``(control masks or None, how they were made, in words)``.
    """
    m = masks.bool()
    for name, dims in (("turned 180° about the image centre", (-2, -1)), ("mirrored left-right", (-1,)),
                       ("mirrored top-bottom", (-2,))):
        other = m.flip(dims)
        if not (other & m).flatten(1).any(1).any():
            return other, f"the region {name}"
    return None, "none: every region of the same shape elsewhere overlaps it"


def box_of(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """The bounding box ``(x0, y0, x1, y1)`` (end-exclusive) of a H×W bool mask, or None when it is empty."""
    ys, xs = mask.nonzero(as_tuple=True)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
