"""Measure an attack: clean and robust accuracy, success rate, queries, confidence drop, per class; sweeps.

The success rate is measured on the images the model classifies correctly before the attack (and,
when targeted, that are not already of the target class), as in Su et al. 2019 and Brown et al. 2017.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from attacks.base import Attack, AttackResult, ProgressFn
from attacks.one_pixel import OnePixel
from attacks.patch import UniversalPatch
from nnkit.errors import NnkitError
from nnkit.jsonable import json_ready


@dataclass
class AttackReport:
    """Summary figures of one attack run on a set of images (``to_dict`` gives a JSON-ready dict)."""

    attack: str
    params: dict
    n: int  # images given
    n_attacked: int  # correctly classified (and not already the target) → attacked
    n_success: int
    clean_accuracy: float
    robust_accuracy: float  # accuracy on the returned images
    success_rate: float  # n_success / n_attacked
    queries_mean: float  # model queries per attacked image
    queries_median: float
    queries_per_success_mean: float  # over fooled images only (NaN when none)
    median_queries_per_success: float
    confidence_drop: float  # mean drop of the true-class probability over the attacked images
    seconds: float
    seconds_per_image: float  # seconds / n
    per_class: list[dict] = field(default_factory=list)  # class, n, clean/robust accuracy, success rate
    targeted: bool = False
    seed: int = 0
    result: AttackResult | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        """JSON-ready figures (NaN, e.g. queries per success with no success, becomes None)."""
        return json_ready({k: v for k, v in self.__dict__.items() if k != "result"})


def _median(x: torch.Tensor) -> float:
    """The median (mean of the two middle values for an even count), NaN for an empty tensor."""
    if x.numel() == 0:
        return float("nan")
    return float(x.double().quantile(0.5))


def _mean(x: torch.Tensor) -> float:
    return float(x.double().mean()) if x.numel() else float("nan")


def summarize(result: AttackResult, class_names: Sequence[str] | None = None) -> AttackReport:
    """Turn an AttackResult into the report figures.

    Args:
        result: what an attack returned.
        class_names: names for the per-class breakdown (default: the class indices).

    Returns:
        AttackReport (with ``result`` attached).
    """
    n = len(result)
    labels = result.labels
    clean = result.pred_before == labels
    robust = result.pred_after == labels
    att = result.attacked
    q = result.queries[att]
    q_success = result.queries[result.success]
    drop = (result.true_conf_before - result.true_conf_after)[att]
    k = result.probs_before.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    per_class = []
    for cls in range(k):
        sel = labels == cls
        if not sel.any():
            continue
        a = att & sel
        per_class.append({
            "class": names[cls] if cls < len(names) else str(cls), "index": cls, "n": int(sel.sum()),
            "clean_accuracy": float(clean[sel].float().mean()), "robust_accuracy": float(robust[sel].float().mean()),
            "n_attacked": int(a.sum()),
            "success_rate": float(result.success[a].float().mean()) if a.any() else float("nan"),
        })
    n_att = int(att.sum())
    return AttackReport(
        attack=result.attack, params=result.params, n=n, n_attacked=n_att, n_success=int(result.success.sum()),
        clean_accuracy=float(clean.float().mean()), robust_accuracy=float(robust.float().mean()),
        success_rate=result.success_rate, queries_mean=_mean(q), queries_median=_median(q),
        queries_per_success_mean=_mean(q_success), median_queries_per_success=_median(q_success),
        confidence_drop=_mean(drop), seconds=result.seconds, seconds_per_image=result.seconds / max(n, 1),
        per_class=per_class, targeted=result.targeted, seed=result.seed, result=result,
    )


def evaluate(model: torch.nn.Module, attack: Attack, images: torch.Tensor, labels, targets=None, *,
             class_names: Sequence[str] | None = None, on_progress: ProgressFn | None = None,
             stop_event: threading.Event | None = None, keys=None) -> AttackReport:
    """Run ``attack`` on ``images`` and measure it.

    Args:
        model: the classifier under attack (must be the attack's model: the figures are about it).
        attack: a constructed attack (e.g. ``OnePixel(model, pixels=1)``; a fitted ``UniversalPatch``).
        images: N×C×H×W in [0, 1]; labels: N; targets: N or one class (targeted) or None.
        class_names: names for the per-class breakdown.
        on_progress, stop_event: passed to the attack.
        keys: N keys of the images' random streams, their indices in the split (None: 0..N-1); see
            :mod:`attacks.base`.

    Returns:
        AttackReport: clean and robust accuracy, success rate on the initially-correct images, queries
        (mean/median per image and per success), true-class confidence drop, per-class breakdown.
    """
    if attack.model is not model:
        raise NnkitError("the attack was built for a different model than the one being evaluated")
    result = attack(images, labels, targets, keys=keys, on_progress=on_progress, stop_event=stop_event)
    return summarize(result, class_names)


def sweep(make_attack: Callable[[float], Attack], values: Sequence, images: torch.Tensor, labels, targets=None, *,
          class_names: Sequence[str] | None = None, on_progress: Callable[[int, int], None] | None = None,
          stop_event: threading.Event | None = None) -> list[AttackReport]:
    """Evaluate one attack per value of a hyper-parameter (e.g. pixels k, patch area).

    Args:
        make_attack: value → a ready attack (fitted, for a universal patch).
        values: the values to sweep.
        images, labels, targets, class_names, stop_event: as in :func:`evaluate`.
        on_progress: called with (values done, values) after each value.

    Returns:
        One AttackReport per value, in order; ``report.params`` holds the value's parameters.
    """
    reports = []
    for i, value in enumerate(values):
        attack = make_attack(value)
        reports.append(summarize(attack(images, labels, targets, stop_event=stop_event), class_names))
        if on_progress is not None:
            on_progress(i + 1, len(values))
    return reports


def sweep_pixels(model: torch.nn.Module, images: torch.Tensor, labels, pixels: Sequence[int] = (1, 3, 5),
                 targets=None, **attack_kwargs) -> list[AttackReport]:
    """Success of the single-pixel attack against the number of pixels k (Su et al.: 1, 3, 5).

    Args:
        model, images, labels, targets: as in :func:`evaluate`.
        pixels: the k values.
        **attack_kwargs: other :class:`attacks.one_pixel.OnePixel` arguments (popsize, generations, seed, ...).

    Returns:
        One AttackReport per k.
    """
    return sweep(lambda k: OnePixel(model, pixels=int(k), **attack_kwargs), pixels, images, labels, targets)


def sweep_patch_area(model: torch.nn.Module, train_images: torch.Tensor, train_labels, images: torch.Tensor, labels,
                     target: int | None, areas: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2), *,
                     stop_event: threading.Event | None = None,
                     on_progress: Callable[[int, int], None] | None = None, **attack_kwargs) -> list[AttackReport]:
    """Targeted success of a universal patch against its area (Brown et al. 2017, Fig. 2).

    A patch is trained on ``train_images`` for every area and evaluated on the held-out ``images``.

    Args:
        model: the classifier.
        train_images, train_labels: the images the patches are optimised over.
        images, labels: held-out images.
        target: target class (None: untargeted patches).
        areas: patch areas as fractions of the image area.
        **attack_kwargs: other :class:`attacks.patch.UniversalPatch` arguments (shape, steps, seed, ...).

    Returns:
        One AttackReport per area.
    """
    def make(area):
        return UniversalPatch(model, area=float(area), **attack_kwargs).fit(
            train_images, train_labels, target, stop_event=stop_event)

    return sweep(make, areas, images, labels, None, stop_event=stop_event, on_progress=on_progress)
