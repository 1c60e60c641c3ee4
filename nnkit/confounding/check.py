"""The confounding check: does a model rely on a suspected confounder? Evidence, thresholds, verdict.

Two kinds of evidence are measured and each is compared with a stated threshold:

* attribution (where the model looks): the relevance mass inside the mask over the mask's share of
  the image area, and the pointing game;
* behaviour (what the model does): the counterfactual test where the data has tag variants, and the
  erasure test (the region filled in from its surroundings) on any masked images.

The verdict is ``relies_on_confounder`` when at least one attribution test *and* at least one
behavioural test pass (attribution alone decides when no behavioural test could be run), and
``no_evidence`` otherwise. Requiring both guards against either failure: an explanation method that
lights up a high-contrast region the model does not use, or an accuracy drop caused by covering part
of the object itself.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from nnkit.confounding.behaviour import (
    CounterfactualResult,
    ErasureResult,
    counterfactual_test,
    erasure_test,
    has_counterfactual,
)
from nnkit.confounding.metrics import area_share, box_masks, pointing_game, relevance_mass
from nnkit.data.base import Dataset
from nnkit.errors import Cancelled, NnkitError
from nnkit.saliency.maps import to_map
from nnkit.saliency.methods import METHODS, explain, parse_methods

RELIES = "relies_on_confounder"
NO_EVIDENCE = "no_evidence"
DEFAULT_METHODS = ("saliency", "gradcam", "ig")


@dataclass(frozen=True)
class Thresholds:
    """The thresholds the verdict is decided with (stated in every report)."""

    mass_ratio: float = 3.0  # relevance mass inside the mask >= 3× the mask's share of the image area
    pointing_game: float = 0.5  # the map's maximum inside the mask on >= half of the images
    follows_tag: float = 0.2  # tag-shuffled: share of predictions naming the tag's class, minus chance (1/K)
    accuracy_gap: float = 0.2  # accuracy with the tag agreeing minus with it shuffled
    erasure_drop: float = 0.1  # accuracy lost when the masked region is erased

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evidence:
    """One measured figure compared with its threshold."""

    test: str  # mass_ratio | pointing_game | follows_tag | accuracy_gap | erasure_drop
    kind: str  # attribution | behaviour
    value: float
    threshold: float
    passed: bool
    text: str  # the figure in plain words


@dataclass
class ConfoundingReport:
    """Result of ``check_confounding``: overall figures, per-method figures, tests, evidence, verdict."""

    verdict: str  # relies_on_confounder | no_evidence
    reason: str  # the verdict in plain words
    relevance_mass: float  # mean over methods of the mean per-image relevance mass inside the mask
    area_share: float  # mean share of the image covered by the mask
    mass_ratio: float  # relevance_mass / area_share (1.0: the region gets what its size alone would give)
    pointing_game: float  # mean over methods of the pointing-game hit rate
    methods: dict  # method -> {relevance_mass, mass_ratio, pointing_game, n, seconds}
    evidence: list[Evidence]
    thresholds: Thresholds
    n: int  # images attributed
    counterfactual: CounterfactualResult | None = None
    erasure: ErasureResult | None = None
    reference: ConfoundingReport | None = None  # the same check on a reference model, same images
    info: dict = field(default_factory=dict)  # provenance: data, split, mask source, tolerance, seed

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN becomes None)."""
        out = {
            "verdict": self.verdict, "reason": self.reason, "relevance_mass": self.relevance_mass,
            "area_share": self.area_share, "mass_ratio": self.mass_ratio, "pointing_game": self.pointing_game,
            "methods": self.methods, "evidence": [asdict(e) for e in self.evidence],
            "thresholds": self.thresholds.to_dict(), "n": self.n,
            "counterfactual": self.counterfactual.to_dict() if self.counterfactual else None,
            "erasure": self.erasure.to_dict() if self.erasure else None,
            "reference": self.reference.to_dict() if self.reference else None, "info": self.info,
        }
        return _clean(out)


def _clean(obj):
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _nanmean(t: torch.Tensor) -> float:
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else float("nan")


def decide(figures: dict, counterfactual: CounterfactualResult | None, erasure: ErasureResult | None,
           thresholds: Thresholds) -> tuple[str, str, list[Evidence]]:
    """The verdict from measured figures and thresholds.

    Args:
        figures: ``{"relevance_mass", "area_share", "mass_ratio", "pointing_game"}`` (overall).
        counterfactual, erasure: behavioural results, or None where not run.
        thresholds: the thresholds.

    Returns:
        ``(verdict, reason in plain words, evidence list)``.
    """
    th = thresholds
    ev: list[Evidence] = []
    ratio, share = figures["mass_ratio"], figures["area_share"]
    ratio_ok = not math.isnan(ratio) and ratio >= th.mass_ratio
    ev.append(Evidence("mass_ratio", "attribution", ratio, th.mass_ratio, ratio_ok,
                       f"{figures['relevance_mass']:.1%} of the positive relevance lies in a region covering "
                       f"{share:.1%} of the image ({ratio:.1f}× its area share; threshold {th.mass_ratio:g}×)"))
    pg = figures["pointing_game"]
    ev.append(Evidence("pointing_game", "attribution", pg, th.pointing_game, pg >= th.pointing_game,
                       f"the relevance peak falls in the region on {pg:.0%} of the images "
                       f"(threshold {th.pointing_game:.0%})"))
    if counterfactual is not None:
        excess = counterfactual.follows_tag - counterfactual.chance
        ev.append(Evidence("follows_tag", "behaviour", excess, th.follows_tag, excess >= th.follows_tag,
                           f"with the tag of another class, {counterfactual.follows_tag:.0%} of the predictions "
                           f"name the tag's class (chance {counterfactual.chance:.0%}; threshold chance + "
                           f"{th.follows_tag:.0%})"))
        gap = counterfactual.accuracy_gap
        ev.append(Evidence("accuracy_gap", "behaviour", gap, th.accuracy_gap, gap >= th.accuracy_gap,
                           f"accuracy falls from {counterfactual.accuracy['tag-agrees']:.0%} with the tag agreeing "
                           f"to {counterfactual.accuracy['tag-shuffled']:.0%} with it shuffled "
                           f"(gap {gap:.0%}; threshold {th.accuracy_gap:.0%})"))
    if erasure is not None:
        drop = erasure.accuracy_drop
        ev.append(Evidence("erasure_drop", "behaviour", drop, th.erasure_drop, drop >= th.erasure_drop,
                           f"erasing the region moves accuracy from {erasure.accuracy:.0%} to "
                           f"{erasure.accuracy_erased:.0%} and changes {erasure.changed:.0%} of the predictions "
                           f"(drop {drop:.0%}; threshold {th.erasure_drop:.0%})"))
    looks = [e for e in ev if e.kind == "attribution" and e.passed]
    behaviour = [e for e in ev if e.kind == "behaviour"]
    acts = [e for e in behaviour if e.passed]
    relies = bool(looks) and (bool(acts) or not behaviour)
    if relies:
        reason = "The model relies on the suspected confounder: " + "; ".join(e.text for e in looks + acts) + "."
    elif looks:
        reason = ("No evidence of reliance: the attributions point at the region (" + looks[0].text +
                  "), but the predictions do not depend on it (" + "; ".join(e.text for e in behaviour) + ").")
    else:
        reason = ("No evidence of reliance: " + "; ".join(e.text for e in ev if e.kind == "attribution") + ".")
    return (RELIES if relies else NO_EVIDENCE), reason, ev


def check_confounding(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor,
                      labels: torch.Tensor | None = None, *, methods=DEFAULT_METHODS,
                      method_opts: dict | None = None, counterfactual_splits: dict | None = None,
                      num_classes: int | None = None, reference: torch.nn.Module | None = None,
                      thresholds: Thresholds | None = None, tolerance: int = 1, batch_size: int = 64,
                      device: torch.device | str | None = None, seed: int = 0,
                      on_progress: Callable[[int, int], None] | None = None,
                      stop_event: threading.Event | None = None) -> ConfoundingReport:
    """Measure whether ``model`` relies on the region ``masks`` marks, and decide.

    Relevance mass (Arras et al. 2022) and the pointing game (Zhang et al. 2016) per attribution
    method, explaining each image's predicted class; the erasure test when ``labels`` are given; the
    counterfactual test when ``counterfactual_splits`` holds tag variants; the verdict from ``decide``.

    Args:
        model: the classifier to check.
        images: the images to attribute; those whose mask is empty are skipped.
        masks: the suspected confounder of each image.
        labels: true classes (enables the erasure test).
        methods: attribution method names (see ``nnkit.saliency.list_methods``).
        method_opts: ``{method: {option: value}}`` passed to ``explain``.
        counterfactual_splits: splits with ``tag-agrees``, ``no-tag``, ``tag-shuffled`` (and tags).
        num_classes: class count (chance level of the counterfactual test); default from the model's output.
        reference: another model (e.g. trained on clean data) checked on the same images, reported beside.
        thresholds: the verdict's thresholds (default ``Thresholds()``).
        tolerance: pointing-game slack in pixels.
        batch_size, device, seed: passed to ``explain``.
        on_progress: called with (steps done, total steps); one step per method and model.
        stop_event: when set, stops at the next step and raises ``nnkit.errors.Cancelled``.

    Shape:
        images N×C×H×W in [0, 1], masks N×H×W bool, labels N int64.

    Returns:
        ConfoundingReport (``.to_dict()`` for JSON).
    """
    thresholds = thresholds or Thresholds()
    names = parse_methods(methods)
    method_opts = method_opts or {}
    if masks.shape != (images.shape[0], *images.shape[-2:]):
        raise NnkitError(f"masks {tuple(masks.shape)} do not match the images {tuple(images.shape)}")
    keep = masks.flatten(1).any(1)
    if not keep.any():
        raise NnkitError("every mask is empty: nothing marks a suspected confounder")
    images, masks = images[keep], masks[keep].bool()
    labels = labels[keep] if labels is not None else None
    total = len(names) * (2 if reference is not None else 1)
    done = [0]

    def step() -> None:
        if stop_event is not None and stop_event.is_set():
            raise Cancelled("confounding check cancelled")

    def progress() -> None:
        done[0] += 1
        if on_progress is not None:
            on_progress(done[0], total)

    def one(m: torch.nn.Module) -> ConfoundingReport:
        share = float(area_share(masks).mean())
        per: dict[str, dict] = {}
        for name in names:
            step()
            t0 = time.perf_counter()
            attr = explain(m, images, None, name, batch_size=batch_size, device=device, seed=seed,
                           stop_event=stop_event, **method_opts.get(name, {}))
            maps = to_map(attr, "sum")
            mass = _nanmean(relevance_mass(maps, masks))
            per[name] = {"label": METHODS[name].label, "relevance_mass": mass, "mass_ratio": mass / share,
                         "pointing_game": float(pointing_game(maps, masks, tolerance).float().mean()),
                         "n": int(images.shape[0]), "seconds": time.perf_counter() - t0}
            progress()
        mass = _nanmean(torch.tensor([p["relevance_mass"] for p in per.values()]))
        figures = {"relevance_mass": mass, "area_share": share, "mass_ratio": mass / share,
                   "pointing_game": sum(p["pointing_game"] for p in per.values()) / len(per)}
        k = num_classes
        if k is None:
            with torch.no_grad():
                param = next(m.parameters())
                k = int(m.eval()(images[:1].to(param.device)).shape[1])
        cf = counterfactual_test(m, counterfactual_splits, k) if counterfactual_splits else None
        er = erasure_test(m, images, labels, masks) if labels is not None else None
        verdict, reason, evidence = decide(figures, cf, er, thresholds)
        return ConfoundingReport(verdict, reason, figures["relevance_mass"], share, figures["mass_ratio"],
                                 figures["pointing_game"], per, evidence, thresholds, int(images.shape[0]), cf, er)

    if counterfactual_splits is not None and not has_counterfactual(counterfactual_splits):
        counterfactual_splits = None
    report = one(model)
    report.info = {"tolerance": tolerance, "seed": seed, "methods": names}
    if reference is not None:
        report.reference = one(reference)
        for name, fig in report.methods.items():
            ref = report.reference.methods[name]["relevance_mass"]
            fig["mass_vs_reference"] = fig["relevance_mass"] / ref if ref and ref > 0 else float("nan")
    return report


def select_images(dataset: Dataset, *, split: str | None = None, mask_box=None, n: int = 200,
                  seed: int = 0):
    """The images, masks and labels a confounding check of ``dataset`` uses.

    Args:
        dataset: the data.
        split: default ``tag-agrees`` where the dataset has it (every image carries its tag), else ``test``.
        mask_box: ``(x0, y0, x1, y1)``: the same box on every image, for data without masks.
        n: images drawn (seeded, without replacement) from those with a non-empty mask.
        seed: of the draw.

    Returns:
        ``(images, masks, labels, info)`` with ``info`` saying which split and mask source were used.
    """
    name = split or ("tag-agrees" if "tag-agrees" in dataset.splits else "test")
    s = dataset.split(name)
    if mask_box is not None:
        masks = box_masks(mask_box, len(s), *s.images.shape[-2:])
        source = "box " + ",".join(str(int(v)) for v in mask_box)
    elif s.masks is not None and s.masks.any():
        masks, source = s.masks, "dataset masks"
    else:
        raise NnkitError(f"dataset {dataset.name!r} split {name!r} has no confounder masks: give a box "
                         f"with --mask-box x0,y0,x1,y1")
    idx = masks.flatten(1).any(1).nonzero().flatten()
    if n < len(idx):
        g = torch.Generator().manual_seed(seed)
        idx = idx[torch.randperm(len(idx), generator=g)[:n]].sort().values
    info = {"data": dataset.name, "split": name, "mask": source, "n_available": int(masks.flatten(1).any(1).sum())}
    return s.images[idx], masks[idx], s.labels[idx], info


def check_dataset(model: torch.nn.Module, dataset: Dataset, *, split: str | None = None, mask_box=None,
                  n: int = 200, seed: int = 0, **kwargs) -> ConfoundingReport:
    """``check_confounding`` on a dataset: images from ``select_images``, the counterfactual splits
    where the dataset has them.

    Args:
        model: the classifier.
        dataset: the data (``shapes-confounded``, or any dataset with ``mask_box``).
        split, mask_box, n, seed: see ``select_images``.
        **kwargs: passed to ``check_confounding`` (methods, reference, thresholds, device, ...).

    Returns:
        ConfoundingReport whose ``info`` names the data, split and mask source.
    """
    images, masks, labels, info = select_images(dataset, split=split, mask_box=mask_box, n=n, seed=seed)
    cf = dataset.splits if has_counterfactual(dataset.splits) else None
    report = check_confounding(model, images, masks, labels, counterfactual_splits=cf,
                               num_classes=dataset.num_classes, seed=seed, **kwargs)
    report.info.update(info)
    if report.reference is not None:
        report.reference.info = dict(report.info)
    return report
