"""Sanity check for saliency methods: cascading model-parameter randomisation (Adebayo et al. 2018).

Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim 2018, "Sanity checks for saliency maps": re-initialise
the model's layers one by one from the output down and compare each method's maps with those of the
trained model. A method whose maps barely change does not explain what the model learned (it acts
like an edge detector of the input); Guided Backprop is the paper's known failure.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nnkit.errors import Cancelled, NnkitError
from nnkit.saliency.maps import to_map
from nnkit.saliency.methods import METHODS, explain, parse_methods

SANITY_METHODS = ("saliency", "guided_backprop", "gradcam", "ig")


def spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between the maps of each image (ties get average ranks).

    Shape:
        a, b N×H×W → N float32 in [-1, 1]; 0 where either map is constant (its ranks carry no order).
    """
    if a.shape != b.shape:
        raise NnkitError(f"maps of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    from scipy.stats import rankdata  # here: scipy.stats takes a second or two to import

    ra = rankdata(a.detach().float().flatten(1).cpu().numpy(), axis=1)
    rb = rankdata(b.detach().float().flatten(1).cpu().numpy(), axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    den = np.sqrt((ra ** 2).sum(1) * (rb ** 2).sum(1))
    rho = np.where(den > 0, (ra * rb).sum(1) / np.where(den > 0, den, 1.0), 0.0)
    return torch.from_numpy(rho.astype(np.float32))


def cascade_layers(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The modules holding parameters, in the reverse of the order the forward pass runs them
    (output layer first: the cascade's order).

    Args:
        model: the classifier.
        example: one input batch on the model's device (a forward pass gives the order).

    Returns:
        ``[(dotted name, module), ...]`` from the logits layer down to the first layer.
    """
    owners = {m: n for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))}
    order: list[nn.Module] = []

    def hook(mod, _inp, _out):
        if mod not in order:
            order.append(mod)

    handles = [m.register_forward_hook(hook) for m in owners]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    if not order:
        raise NnkitError("the model has no parameters to randomise")
    return [(owners[m], m) for m in reversed(order)]


def _reinitialise(module: nn.Module) -> None:
    """Fresh random weights with the layer's own initialiser (its state at construction)."""
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    else:
        for p in module.parameters(recurse=False):
            nn.init.normal_(p, std=0.02)
    if hasattr(module, "reset_running_stats"):
        module.reset_running_stats()


@dataclass
class SanityReport:
    """Rank correlation between the trained and the cascade-randomised model's maps, per method."""

    layers: list[str]  # the cascade: layers randomised cumulatively, output layer first
    methods: dict  # method -> {label, spearman: [one per cascade step], similarity, flagged}
    threshold: float  # similarity >= threshold: the method's maps barely change (flagged)
    ranking: list[str]  # methods from most to least sensitive to randomisation
    absolute: bool  # maps compared as magnitudes (True) or signed (False)
    n: int
    seed: int

    def to_dict(self) -> dict:
        return {"layers": self.layers, "methods": self.methods, "threshold": self.threshold,
                "ranking": self.ranking, "flagged": [m for m, v in self.methods.items() if v["flagged"]],
                "absolute": self.absolute, "n": self.n, "seed": self.seed}


def cascading_randomization(model: nn.Module, images: torch.Tensor, methods=SANITY_METHODS, target=None, *,
                            threshold: float = 0.5, absolute: bool = False, method_opts: dict | None = None,
                            batch_size: int = 64,
                            device: torch.device | str | None = None, seed: int = 0,
                            on_progress: Callable[[int, int], None] | None = None,
                            stop_event: threading.Event | None = None) -> SanityReport:
    """Adebayo et al. (2018)'s cascading model-parameter randomisation test.

    The model is copied (the caller's is untouched); its layers are re-initialised cumulatively from
    the logits down; after each layer every method explains the same images and the same classes
    (the trained model's predictions), and its maps are compared with the trained model's by
    Spearman rank correlation. A method's *similarity* is the mean correlation over the cascade; it
    is flagged when the similarity stays at or above ``threshold``.

    The paper reports rank correlations of both signed and absolute-value maps. Signed maps are the
    default here: magnitude maps of almost any network, random ones included, trace the input's
    edges (the paper's own caveat), which keeps their correlation high for every method on small,
    clean images and hides the difference the test is for.

    Args:
        model: the trained classifier.
        images: a few images (16–64 suffice).
        methods: method names.
        target: classes to explain (default: the trained model's predictions).
        threshold: similarity at which a method's maps count as barely changing.
        absolute: compare absolute-value maps (and take |gradient| in saliency and SmoothGrad)
            instead of signed ones.
        method_opts: ``{method: {option: value}}``.
        batch_size, device: passed to ``explain``.
        seed: the re-initialisation's and SmoothGrad's seed.
        on_progress: called with (steps done, total); one step per cascade layer (plus the trained model).
        stop_event: when set, stops at the next step and raises ``nnkit.errors.Cancelled``.

    Shape:
        images N×C×H×W in [0, 1].

    Returns:
        SanityReport.
    """
    names = parse_methods(methods)
    opts = {name: dict((method_opts or {}).get(name, {})) for name in names}
    for name in names:
        if "abs" in METHODS[name].options:  # saliency and SmoothGrad take |gradient| unless told otherwise
            opts[name].setdefault("abs", absolute)
    reduce = "abs" if absolute else "sum"
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    rand = copy.deepcopy(model).to(dev).eval()
    if target is None:
        with torch.no_grad():
            target = torch.cat([rand(images[i:i + batch_size].to(dev)).argmax(1).cpu()
                                for i in range(0, images.shape[0], batch_size)])
    layers = cascade_layers(rand, images[:1].to(dev))
    total = len(layers) + 1

    def maps_of(m: nn.Module) -> dict[str, torch.Tensor]:
        if stop_event is not None and stop_event.is_set():
            raise Cancelled("sanity check cancelled")
        return {name: to_map(explain(m, images, target, name, batch_size=batch_size, device=dev, seed=seed,
                                     **opts[name]), reduce) for name in names}

    base = maps_of(rand)
    if on_progress is not None:
        on_progress(1, total)
    curves: dict[str, list[float]] = {name: [] for name in names}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        for k, (_, module) in enumerate(layers):
            _reinitialise(module)
            now = maps_of(rand)
            for name in names:
                curves[name].append(float(spearman_per_image(base[name], now[name]).mean()))
            if on_progress is not None:
                on_progress(k + 2, total)
    result = {}
    for name in names:
        sim = float(np.mean(curves[name]))
        result[name] = {"label": METHODS[name].label, "spearman": curves[name], "similarity": sim,
                        "flagged": sim >= threshold}
    ranking = sorted(names, key=lambda m: result[m]["similarity"])
    return SanityReport([n for n, _ in layers], result, threshold, ranking, absolute, int(images.shape[0]), seed)
