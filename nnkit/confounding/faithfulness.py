"""Faithfulness of attribution maps: deletion and insertion curves (Petsiuk, Das & Saenko 2018, RISE).

Deletion removes the most relevant pixels first (set to black, as in RISE) and watches the class
probability fall: a faithful map makes it fall fast (low AUC). Insertion starts from a blurred copy
and puts the most relevant pixels back first: a faithful map makes the probability rise fast (high
AUC). A random pixel order is measured beside the methods as the chance level.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nnkit.errors import Cancelled, NnkitError
from nnkit.saliency.maps import to_map
from nnkit.saliency.methods import METHODS, explain, parse_methods

FAITHFULNESS_METHODS = ("saliency", "gradcam", "ig", "guided_backprop")


def _blurred(images: torch.Tensor) -> torch.Tensor:
    side = min(images.shape[-2:])
    k = min(11, side - (1 - side % 2))  # odd and no larger than the image
    # Imported here: importing torchvision loads torch._dynamo (seconds), which nnkit's start-up does not need.
    from torchvision.transforms.functional import gaussian_blur

    return gaussian_blur(images, kernel_size=[k, k], sigma=[5.0, 5.0])


@torch.no_grad()
def deletion_insertion(model: torch.nn.Module, images: torch.Tensor, maps: torch.Tensor, target: torch.Tensor,
                       steps: int = 16, batch_size: int = 256) -> dict:
    """Deletion and insertion curves of one set of maps (Petsiuk et al. 2018).

    Args:
        model: the classifier.
        images: the images the maps explain.
        maps: relevance per pixel; higher = more relevant (ties keep pixel order).
        target: the class whose probability is followed.
        steps: curve points after the start (pixels change in ``steps`` equal shares).
        batch_size: images per forward pass.

    Shape:
        images N×C×H×W in [0, 1], maps N×H×W, target N.

    Returns:
        ``{"fractions": [steps+1], "deletion": [steps+1], "insertion": [steps+1], "deletion_auc",
        "insertion_auc"}``: mean probability of the target per step and the trapezoid areas over
        the fraction of pixels changed (0..1).
    """
    if maps.shape != (images.shape[0], *images.shape[-2:]):
        raise NnkitError(f"maps {tuple(maps.shape)} do not match the images {tuple(images.shape)}")
    if steps < 1:
        raise NnkitError(f"steps must be at least 1, got {steps}")
    dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    n, hw = images.shape[0], images.shape[-2] * images.shape[-1]
    # rank[i, p] = position of pixel p in image i's relevance order (0 = most relevant)
    order = torch.argsort(maps.detach().float().flatten(1).cpu(), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(hw).expand(n, -1).contiguous())
    counts = [round(k * hw / steps) for k in range(steps + 1)]
    target = torch.as_tensor(target, dtype=torch.long).cpu()
    deletion = torch.zeros(steps + 1)
    insertion = torch.zeros(steps + 1)
    try:
        for i in range(0, n, batch_size):
            x = images[i:i + batch_size].to(dev, torch.float32)
            blur = _blurred(x)
            r = rank[i:i + batch_size].to(dev).view(x.shape[0], 1, *x.shape[-2:])
            t = target[i:i + batch_size].to(dev)
            for k, c in enumerate(counts):
                changed = r < c
                for curve, xs in ((deletion, torch.where(changed, torch.zeros_like(x), x)),
                                  (insertion, torch.where(changed, x, blur))):
                    p = model(xs).float().softmax(1).gather(1, t[:, None])[:, 0]
                    curve[k] += float(p.sum())
    finally:
        model.train(was_training)
    deletion /= n
    insertion /= n
    dx = 1.0 / steps
    return {"fractions": [c / hw for c in counts], "deletion": deletion.tolist(), "insertion": insertion.tolist(),
            "deletion_auc": float(torch.trapezoid(deletion, dx=dx)),
            "insertion_auc": float(torch.trapezoid(insertion, dx=dx))}


@dataclass
class FaithfulnessReport:
    """Deletion / insertion curves and AUC per method, with a random pixel order as the chance level."""

    methods: dict  # method (and "random") -> deletion_insertion() result plus label
    steps: int
    n: int
    seed: int

    def to_dict(self) -> dict:
        return {"methods": self.methods, "steps": self.steps, "n": self.n, "seed": self.seed}


def faithfulness(model: torch.nn.Module, images: torch.Tensor, methods=FAITHFULNESS_METHODS, target=None, *,
                 steps: int = 16, method_opts: dict | None = None, batch_size: int = 64,
                 device: torch.device | str | None = None, seed: int = 0,
                 on_progress: Callable[[int, int], None] | None = None,
                 stop_event: threading.Event | None = None) -> FaithfulnessReport:
    """Deletion and insertion AUC per attribution method (Petsiuk et al. 2018), plus a random order.

    Args:
        model: the classifier.
        images: the images (a few dozen suffice).
        methods: method names.
        target: classes to explain (default: the predictions).
        steps: curve points.
        method_opts: ``{method: {option: value}}``.
        batch_size, device: passed to ``explain``.
        seed: of SmoothGrad's noise and of the random order.
        on_progress: called with (methods done, total).
        stop_event: when set, stops before the next method and raises ``nnkit.errors.Cancelled``.

    Shape:
        images N×C×H×W in [0, 1].

    Returns:
        FaithfulnessReport (lower deletion AUC and higher insertion AUC are more faithful).
    """
    names = parse_methods(methods)
    method_opts = method_opts or {}
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if target is None:
        with torch.no_grad():
            model.eval()
            target = torch.cat([model(images[i:i + batch_size].to(dev)).argmax(1).cpu()
                                for i in range(0, images.shape[0], batch_size)])
    out = {}
    total = len(names) + 1
    for j, name in enumerate(names):
        if stop_event is not None and stop_event.is_set():
            raise Cancelled("faithfulness check cancelled")
        # Signed channel sum: for IG and DeepLift the most *positive* evidence goes first.
        maps = to_map(explain(model, images, target, name, batch_size=batch_size, device=dev, seed=seed,
                              **method_opts.get(name, {})), "sum")
        out[name] = {"label": METHODS[name].label, **deletion_insertion(model, images, maps, target, steps)}
        if on_progress is not None:
            on_progress(j + 1, total)
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(images.shape[0], *images.shape[-2:], generator=g)
    out["random"] = {"label": "random order", **deletion_insertion(model, images, noise, target, steps)}
    if on_progress is not None:
        on_progress(total, total)
    return FaithfulnessReport(out, steps, int(images.shape[0]), seed)
