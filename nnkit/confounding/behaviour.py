"""Behavioural tests: does the model's *output* depend on the suspected confounder?

Attribution maps show where a model looks; these tests change the confounder and watch the
predictions. The counterfactual test needs data made for it (``shapes-confounded``'s tag-agrees /
no-tag / tag-shuffled variants); the erasure test works on any images with a mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from nnkit.confounding.metrics import dilate
from nnkit.data.base import Split
from nnkit.errors import NnkitError
from nnkit.training.evaluate import predict_logits

COUNTERFACTUAL_SPLITS = ("tag-agrees", "no-tag", "tag-shuffled")


@dataclass
class CounterfactualResult:
    """Accuracy with the tag agreeing with the label, absent, and shuffled to another class."""

    accuracy: dict  # split name -> accuracy
    follows_tag: float  # tag-shuffled: share of predictions naming the tag's class (shape ignored)
    follows_label: float  # tag-shuffled: share naming the true class (= its accuracy)
    chance: float  # 1 / number of classes: follows_tag of a model that ignores the tag and guesses
    accuracy_gap: float  # accuracy(tag-agrees) - accuracy(tag-shuffled)
    n: int  # images per split

    def to_dict(self) -> dict:
        return asdict(self)


def has_counterfactual(splits: dict[str, Split]) -> bool:
    """Whether ``splits`` hold the three counterfactual variants, with their tag classes."""
    return all(name in splits and splits[name].tags is not None for name in COUNTERFACTUAL_SPLITS)


def counterfactual_test(model: torch.nn.Module, splits: dict[str, Split], num_classes: int,
                        batch_size: int = 512, limit: int | None = None) -> CounterfactualResult:
    """Counterfactual test of a planted confounder (as in Geirhos et al. 2020, "Shortcut learning in
    deep neural networks"): the same base images with the tag agreeing, absent, and shuffled.

    Args:
        model: the classifier.
        splits: at least ``tag-agrees``, ``no-tag`` and ``tag-shuffled``; ``Split.tags`` holds the tag
            class of each image (-1: none).
        num_classes: for the chance level.
        batch_size: images per forward pass.
        limit: use the first ``limit`` images of each split (the variants share their base images).

    Returns:
        CounterfactualResult.
    """
    if not has_counterfactual(splits):
        raise NnkitError(f"the counterfactual test needs the splits {', '.join(COUNTERFACTUAL_SPLITS)} with tags")
    accuracy, follows_tag, follows_label, n = {}, 0.0, 0.0, 0
    for name in COUNTERFACTUAL_SPLITS:
        split = splits[name] if limit is None else splits[name].subset(slice(0, limit))
        pred = predict_logits(model, split.images, batch_size).argmax(1)
        n = len(split)
        accuracy[name] = float((pred == split.labels).float().mean()) if n else 0.0
        if name == "tag-shuffled":
            tagged = split.tags >= 0
            follows_tag = float((pred[tagged] == split.tags[tagged]).float().mean()) if tagged.any() else 0.0
            follows_label = accuracy[name]
    return CounterfactualResult(accuracy, follows_tag, follows_label, 1.0 / num_classes,
                                accuracy["tag-agrees"] - accuracy["tag-shuffled"], n)


def erase(images: torch.Tensor, masks: torch.Tensor, ring: int = 2) -> torch.Tensor:
    """Fill each masked region with the mean colour of a ``ring``-pixel band around it (a simple
    in-painting: the region disappears without leaving a black or grey patch the model never saw).

    Shape:
        images N×C×H×W in [0, 1], masks N×H×W bool → N×C×H×W (a new tensor).
    """
    m = masks.bool().to(images.device)
    band = (dilate(m, ring) & ~m)[:, None].to(images.dtype)
    count = band.sum((2, 3)).clamp(min=1)
    fill = (images * band).sum((2, 3)) / count  # N×C mean colour of the band
    return torch.where(m[:, None], fill[:, :, None, None].expand_as(images), images)


@dataclass
class ErasureResult:
    """How much the predictions depend on the masked region: accuracy, predictions and probabilities before
    and after it is erased, and the same figures for a control region of the same size elsewhere."""

    accuracy: float
    accuracy_erased: float
    accuracy_change: float  # accuracy_erased - accuracy: either sign (erasing a misleading tag raises it)
    changed: float  # share of images whose predicted class changes
    shift: float  # mean total-variation distance 0.5·Σ|p - p'| between the class probabilities before and after
    n: int
    control: ErasureResult | None = None  # the same test on the control region (None: no control region)
    control_region: str | None = None  # how the control region was chosen, in words

    def to_dict(self) -> dict:
        return asdict(self)


def erasure_test(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor,
                 batch_size: int = 512, control: torch.Tensor | None = None,
                 control_region: str | None = None) -> ErasureResult:
    """Erase the suspected confounder (``erase``) and measure how much the predictions depend on it: the
    share of predictions that change, the accuracy change in either direction and the shift of the
    probability mass (a region-removal test in the spirit of Hooker et al. 2019, "A benchmark for
    interpretability methods in deep neural networks", without retraining). A model that ignores the
    region changes nothing; one that reads a misleading tag there may even become *more* accurate.

    Args:
        model: the classifier.
        images, labels, masks: images with a non-empty mask each.
        batch_size: images per forward pass.
        control: masks of a control region of the same size elsewhere (``nnkit.confounding.box.control_masks``):
            the same figures for it go in ``.control``, the baseline of "depends on it".
        control_region: how the control region was chosen, in words.

    Shape:
        images N×C×H×W in [0, 1], labels N, masks and control N×H×W bool.

    Returns:
        ErasureResult.
    """
    n = images.shape[0]
    if n == 0:
        raise NnkitError("the erasure test needs at least one image with a mask")
    labels = labels.cpu()
    before = predict_logits(model, images, batch_size).float().softmax(1)
    result = _erased(model, images, labels, masks, before, batch_size)
    if control is not None:
        result.control = _erased(model, images, labels, control, before, batch_size)
    result.control_region = control_region
    return result


def _erased(model, images, labels, masks, before: torch.Tensor, batch_size: int) -> ErasureResult:
    after = predict_logits(model, erase(images, masks), batch_size).float().softmax(1)
    pred, pred_erased = before.argmax(1), after.argmax(1)
    acc = float((pred == labels).float().mean())
    acc_erased = float((pred_erased == labels).float().mean())
    shift = float(0.5 * (before - after).abs().sum(1).mean())
    return ErasureResult(acc, acc_erased, acc_erased - acc, float((pred != pred_erased).float().mean()), shift,
                         images.shape[0])
