"""Demo 10: brittleness and confounding, one screen each.

One pixel: for a small digit classifier, the lab's single-pixel attack (``attacks.OnePixel``,
differential evolution as in Su, Vargas & Sakurai 2019, "One pixel attack for fooling deep neural
networks") finds digits whose decision one changed pixel flips; ``one_pixel_search`` does the same for
one image by trying every pixel in black and in white (exact for those values).

Confounding: a model trained on ``shapes-confounded`` learns the class-specific corner tag (a
shortcut, Geirhos et al. 2020). Moving the tag to another class's corner and colour moves the
prediction with it, and the saliency map (vanilla gradient, Simonyan et al. 2014) puts its weight on
the tag rather than on the shape.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from nnkit import data as datasets
from nnkit.classroom._threads import one_thread
from nnkit.confounding.behaviour import counterfactual_test
from nnkit.confounding.metrics import relevance_mass
from nnkit.data.base import Dataset
from nnkit.errors import NnkitError
from nnkit.runs.store import RunStore
from nnkit.saliency import explain, to_map
from nnkit.training import Progress, TrainConfig, predict_logits, train


def _hw(image: torch.Tensor) -> np.ndarray:
    """C×H×W tensor → H×W (grey) or H×W×C (colour) numpy array for plotly's imshow."""
    a = image.detach().float().cpu().numpy()
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


@dataclass
class PixelFlip:
    """A single pixel change that changes the model's decision."""

    index: int  # which of the searched images
    image: np.ndarray  # H×W or H×W×C, in [0, 1]
    flipped: np.ndarray  # the same image with one pixel changed
    row: int
    col: int
    old_value: np.ndarray  # the pixel's C values before
    new_value: np.ndarray  # ... and after
    label: int  # true class
    prediction_before: int
    prediction_after: int
    probabilities_before: np.ndarray  # K softmax probabilities
    probabilities_after: np.ndarray
    queries: int  # images the model evaluated in the search for this image
    search: str  # "differential evolution" (attacks.OnePixel) or "exhaustive"


def one_pixel_search(model: torch.nn.Module, image: torch.Tensor, label: int | None = None,
                     values=(0.0, 1.0), batch_size: int = 1024) -> PixelFlip | None:
    """Exhaustive search: every pixel set to each of ``values``; the change that flips the decision most surely.

    Exact for the values tried (the page can say "no single black or white pixel changes this
    digit"), and cheap for small images: 28×28×2 candidates are a few batched forward passes.

    Args:
        model: a classifier taking [0, 1] images.
        image: one C×H×W image in [0, 1].
        label: its true class (default: the model's prediction, so "flip" means "change").
        values: the values tried (written into all channels of the pixel: black and white by default).
        batch_size: candidate images per forward pass.

    Shape:
        image C×H×W → H·W·len(values) candidates.

    Returns:
        The PixelFlip whose new class gets the highest probability, or None when no single pixel
        changes the prediction.
    """
    if image.dim() != 3:
        raise NnkitError(f"expected one C×H×W image, got shape {tuple(image.shape)}")
    with one_thread(), torch.no_grad():
        return _one_pixel_search(model, image.detach().cpu(), label, values, batch_size)


def _one_pixel_search(model, image, label, values, batch_size) -> PixelFlip | None:
    c, h, w = image.shape
    before = torch.softmax(predict_logits(model, image[None]), 1)[0]
    pred0 = int(before.argmax())
    label = pred0 if label is None else int(label)
    pos = torch.arange(h * w)
    best, best_p = None, -1.0
    for value in values:
        for start in range(0, h * w, batch_size):
            idx = pos[start:start + batch_size]
            cand = image[None].repeat(len(idx), 1, 1, 1)
            cand[torch.arange(len(idx)), :, idx // w, idx % w] = float(value)
            prob = torch.softmax(predict_logits(model, cand, batch_size), 1)
            changed = (prob.argmax(1) != pred0).nonzero().flatten()
            if changed.numel():
                top = changed[prob[changed].max(1).values.argmax()]
                if float(prob[top].max()) > best_p:
                    best_p = float(prob[top].max())
                    best = (int(idx[top]), cand[top], prob[top])
    if best is None:
        return None
    p, flipped, prob = best
    r, col = divmod(p, w)
    return PixelFlip(0, _hw(image), _hw(flipped), r, col, image[:, r, col].numpy(), flipped[:, r, col].numpy(), label,
                     pred0, int(prob.argmax()), before.numpy(), prob.numpy(), h * w * len(values) + 1, "exhaustive")


def find_one_pixel_flip(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, max_images: int = 30,
                        popsize: int = 100, generations: int = 20, seed: int = 0,
                        on_progress: Callable[[int, int], None] | None = None,
                        stop_event: threading.Event | None = None) -> PixelFlip | None:
    """Search correctly classified images, least confident first, for one that a single pixel flips.

    The search is the lab's single-pixel attack (``attacks.OnePixel``, differential evolution as in
    Su et al. 2019) with a classroom budget: ``popsize`` × (``generations`` + 1) queries per image at
    most, all images searched at once.

    Args:
        model: a classifier; images: N×C×H×W in [0, 1]; labels: N true classes.
        max_images: the least confident correctly classified images searched.
        popsize, generations: the attack's budget; seed: its random numbers.
        on_progress: called with (generations done, total) as the search goes (a job's progress bar).
        stop_event: when set, the search stops within one model call and ``Cancelled`` is raised.

    Returns:
        The PixelFlip of the least confident image that was flipped (``index`` is its position in
        ``images``), or None when none was.
    """
    from attacks import OnePixel

    with one_thread():
        logits = predict_logits(model, images)
        correct = (logits.argmax(1) == labels.cpu()).nonzero().flatten()
        if correct.numel() == 0:
            return None
        top2 = logits[correct].topk(2, dim=1).values
        order = correct[(top2[:, 0] - top2[:, 1]).argsort()][:max_images]  # smallest logit margin first
        result = OnePixel(model, pixels=1, popsize=popsize, generations=generations, seed=seed)(
            images[order], labels[order], on_progress=on_progress, stop_event=stop_event)
    hits = result.success.nonzero().flatten()
    if hits.numel() == 0:
        return None
    j = int(hits[0])
    i = int(order[j])
    row, col = (int(v) for v in result.perturbation["pixels"][j, 0])
    original = images[i].detach().cpu()
    return PixelFlip(i, _hw(original), _hw(result.images[j]), row, col, original[:, row, col].numpy(),
                     result.images[j][:, row, col].numpy(), int(labels[i]), int(result.pred_before[j]),
                     int(result.pred_after[j]), result.probs_before[j].numpy(), result.probs_after[j].numpy(),
                     int(result.queries[j]), "differential evolution")


def train_digit_model(data_root: str | None = None, n_train: int = 1000, epochs: int = 10, seed: int = 0,
                      device: str | None = "cpu", on_progress: Callable[[Progress], None] | None = None,
                      stop_event: threading.Event | None = None) -> torch.nn.Module:
    """A small MNIST classifier (MLP 784-128-10, a few seconds on a CPU) for the one-pixel screen.

    It is trained with ``nnkit.training.train`` into a throwaway run store; a page may instead load a
    trained MNIST run from the user's store.

    Args:
        data_root: where MNIST is; n_train: training digits; epochs, seed, device: the training's.
        on_progress, stop_event: passed on to ``nnkit.training.train`` (a job's progress and cancel).

    Returns:
        The Classifier in eval mode.
    """
    cfg = TrainConfig(data="mnist", data_root=data_root, data_opts={"limit": int(n_train)}, model="mlp",
                      model_opts={"hidden": (128,)}, optimizer="adam", lr=2e-3, schedule="onecycle",
                      epochs=int(epochs), batch_size=64, val_fraction=0.0, seed=seed, device=device)
    with tempfile.TemporaryDirectory(prefix="nnkit-digits-") as tmp, one_thread():
        return train(cfg, on_progress=on_progress, stop_event=stop_event, store=RunStore(tmp)).model.eval()


@dataclass
class TagExample:
    """One base image shown with its own tag and with another class's tag."""

    index: int
    label: int  # the shape's class
    tag_class: int  # the class whose tag it carries in the "moved" version
    image_tagged: np.ndarray  # H×W×C: its own class's tag
    image_moved: np.ndarray  # the tag of ``tag_class`` instead
    prediction_tagged: int
    prediction_moved: int
    saliency_tagged: np.ndarray  # H×W gradient magnitude
    saliency_moved: np.ndarray
    tag_share_tagged: float  # share of the saliency inside the tag's box
    tag_share_moved: float
    tag_area: float  # share of the image the tag covers (what a map that ignores it would give)


@dataclass
class TagMovedReport:
    """Accuracy with the tag agreeing / absent / moved, and a few examples with saliency maps."""

    accuracy: dict  # "tag-agrees", "no-tag", "tag-shuffled" -> accuracy
    follows_tag: float  # tag-shuffled: share of predictions naming the tag's class
    chance: float
    n: int
    class_names: list[str]
    examples: list[TagExample]


def tag_moved_test(model: torch.nn.Module, dataset: Dataset | None = None, n: int = 200, examples: int = 4,
                   method: str = "saliency") -> TagMovedReport:
    """The tag-moved test on a model trained on ``shapes-confounded``.

    Args:
        model: the classifier.
        dataset: a ``shapes-confounded`` Dataset (default: ``datasets.create("shapes-confounded",
            n_train=100, n_test=n)``; the test variants are what matter).
        n: test images per variant.
        examples: base images to show (the first ones the model gets right with their own tag).
        method: the saliency method (``nnkit.saliency.explain``).

    Returns:
        TagMovedReport: a model that reads the tag scores well on tag-agrees, badly on tag-shuffled,
        and its follows_tag is far above chance.
    """
    if dataset is None:
        dataset = datasets.create("shapes-confounded", n_train=100, n_test=int(n))
    with one_thread():
        return _tag_moved_test(model, dataset, int(n), int(examples), method)


def _tag_moved_test(model, dataset: Dataset, n: int, examples: int, method: str) -> TagMovedReport:
    cf = counterfactual_test(model, dataset.splits, dataset.num_classes, limit=n)
    agrees, moved = dataset.split("tag-agrees"), dataset.split("tag-shuffled")
    pred_a = predict_logits(model, agrees.images[:n]).argmax(1)
    pred_m = predict_logits(model, moved.images[:n]).argmax(1)
    picks = (pred_a == agrees.labels[:n]).nonzero().flatten()[:examples]
    out = []
    if picks.numel():
        both = torch.cat([agrees.images[picks], moved.images[picks]])
        masks = torch.cat([agrees.masks[picks], moved.masks[picks]])
        maps = to_map(explain(model, both, method=method), reduce="abs")
        share = relevance_mass(maps, masks)
        k = len(picks)
        for j, i in enumerate(picks.tolist()):
            out.append(TagExample(i, int(agrees.labels[i]), int(moved.tags[i]), _hw(agrees.images[i]),
                                  _hw(moved.images[i]), int(pred_a[i]), int(pred_m[i]), maps[j].cpu().numpy(),
                                  maps[k + j].cpu().numpy(), float(share[j]), float(share[k + j]),
                                  float(agrees.masks[i].float().mean())))
    return TagMovedReport(cf.accuracy, cf.follows_tag, cf.chance, cf.n, list(dataset.class_names), out)
