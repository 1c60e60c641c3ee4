"""Attack a saved run: load its model and data, pick the images, build the attack, measure it.

One place for what the CLI (`nnkit attack`), the dashboard's Attack page and the robustness report
all do, so that for the same run, images and seed they print the same figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from attacks.base import Attack
from attacks.evaluate import AttackReport, evaluate
from attacks.one_pixel import OnePixel
from attacks.patch import LocalPatch, UniversalPatch
from nnkit.data.base import Dataset
from nnkit.errors import NnkitError
from nnkit.runs import RunInfo

ProgressFn = Callable[[int, int], None]


@dataclass
class RunAttack:
    """One attack on a saved run: the figures, the images attacked and the attack itself."""

    info: RunInfo
    dataset: Dataset
    split: str
    report: AttackReport
    clean: torch.Tensor  # N×C×H×W, the images given to the attack (on the CPU)
    attack: Attack
    extra: dict = field(default_factory=dict)  # attack settings and patch-fit figures

    def summary(self) -> dict:
        """The JSON-ready figures (what ``nnkit attack ... --json`` prints as its last line)."""
        return {"run_id": self.info.run_id, "data": self.dataset.name, "split": self.split, **self.extra,
                **self.report.to_dict()}


def resolve_class(text: str | int, class_names: list[str]) -> int:
    """A class given by name (case-insensitive) or index → its index.

    Raises:
        NnkitError: for an unknown name or an index out of range.
    """
    names = [c.lower() for c in class_names]
    if isinstance(text, str) and text.strip().lower() in names:
        return names.index(text.strip().lower())
    try:
        index = int(text)
    except (TypeError, ValueError):
        raise NnkitError(f"unknown class {text!r}: choose one of {', '.join(class_names)}") from None
    if not 0 <= index < len(class_names):
        raise NnkitError(f"class index {index} out of range 0..{len(class_names) - 1}")
    return index


def load_target(run: str | RunInfo, split: str = "test", *, device=None, data_root: str | None = None):
    """The run's info, dataset, split and classifier on ``device``.

    Args:
        run: run id, unique prefix, name, or a RunInfo.
        split: the split the images come from.
        device: "cpu", "cuda", ... (None: ``nnkit.device.get_device`` picks).
        data_root: where torchvision datasets live.

    Returns:
        ``(info, dataset, split_obj, model)``.
    """
    from nnkit.device import get_device
    from nnkit.runs import RunStore, load_classifier, load_run_data

    info = run if isinstance(run, RunInfo) else RunStore().get(run)
    dataset = load_run_data(info, None, data_root)
    part = dataset.split(split)
    model = load_classifier(info, get_device(device))
    return info, dataset, part, model


def one_pixel_on_run(run: str | RunInfo, *, n: int = 100, pixels: int = 1, target: str | int | None = None,
                     popsize: int = 400, generations: int = 100, split: str = "test", seed: int | None = None,
                     device=None, data_root: str | None = None, on_progress: ProgressFn | None = None,
                     stop_event: threading.Event | None = None) -> RunAttack:
    """Single-pixel attack (Su, Vargas, Sakurai, IEEE TEVC 2019) on the first ``n`` images of a run's split.

    Args:
        run: the run (id, prefix, name or RunInfo).
        n: images attacked (the first n of the split; fewer when the split is smaller).
        pixels: k, the pixels changed per image.
        target: target class (name or index) for a targeted attack; None: untargeted.
        popsize, generations: the differential-evolution budget (paper: 400, 100).
        split, seed, device, data_root: where the images come from, the attack's seed, where it runs.
        on_progress: called with (generations done, generations + 1).
        stop_event: set it to cancel (raises ``nnkit.errors.Cancelled``).

    Shape:
        images N×C×H×W in [0, 1] (as stored in the dataset).

    Returns:
        RunAttack with the AttackReport (``summary()`` is the CLI's JSON).
    """
    if generations < 0:
        raise NnkitError(f"generations must be >= 0, got {generations}")
    info, dataset, part, model = load_target(run, split, device=device, data_root=data_root)
    count = min(int(n), len(part))
    target_index = resolve_class(target, dataset.class_names) if target is not None else None
    attack = OnePixel(model, pixels=pixels, popsize=popsize, generations=generations, seed=seed)
    images, labels = part.images[:count], part.labels[:count]
    report = evaluate(model, attack, images, labels, target_index, class_names=dataset.class_names,
                      on_progress=on_progress, stop_event=stop_event)
    return RunAttack(info, dataset, split, report, images, attack, {"pixels": pixels, "target": target_index})


def patch_on_run(run: str | RunInfo, *, target: str | int, area: float = 0.05, shape: str = "square",
                 kind: str = "universal", n: int = 100, train_n: int = 2000, steps: int | None = None,
                 split: str = "test", seed: int | None = None, device=None, data_root: str | None = None,
                 on_fit_progress: ProgressFn | None = None, on_progress: ProgressFn | None = None,
                 stop_event: threading.Event | None = None) -> RunAttack:
    """Targeted patch attack on a run: a universal patch (Brown et al. 2017) fitted on the first ``train_n``
    training images and pasted at random places on held-out images, or one patch per image (LaVAN,
    Karmon et al. 2018).

    Args:
        run: the run (id, prefix, name or RunInfo).
        target: target class (name or index).
        area: patch area as a fraction of the image area; shape: "square" or "circle".
        kind: "universal" or "local".
        n: held-out images attacked; train_n: images the universal patch is optimised over.
        steps: optimisation steps (None: the attack's default).
        split, seed, device, data_root: as in :func:`one_pixel_on_run`.
        on_fit_progress: (steps done, steps) while the universal patch is fitted.
        on_progress: (done, total) while the held-out images are attacked.
        stop_event: set it to cancel.

    Returns:
        RunAttack; ``extra`` holds kind, area, shape, target and (universal) the fit's seconds and queries.
    """
    if kind not in ("universal", "local"):
        raise NnkitError(f"unknown patch kind {kind!r}: choose universal or local")
    info, dataset, part, model = load_target(run, split, device=device, data_root=data_root)
    target_index = resolve_class(target, dataset.class_names)
    count = min(int(n), len(part))
    opts = {"steps": int(steps)} if steps else {}
    extra: dict = {"kind": kind, "area": area, "shape": shape, "target": target_index}
    if kind == "universal":
        train = dataset.split("train")
        m = min(int(train_n), len(train))
        attack = UniversalPatch(model, area=area, shape=shape, seed=seed, **opts)
        t0 = time.perf_counter()
        attack.fit(train.images[:m], train.labels[:m], target_index, on_progress=on_fit_progress,
                   stop_event=stop_event)
        extra.update(fit_seconds=time.perf_counter() - t0, train_images=m, fit_queries=attack.fit_info["queries"])
    else:
        attack = LocalPatch(model, area=area, shape=shape, seed=seed, **opts)
    images, labels = part.images[:count], part.labels[:count]
    report = evaluate(model, attack, images, labels, target_index, class_names=dataset.class_names,
                      on_progress=on_progress, stop_event=stop_event)
    return RunAttack(info, dataset, split, report, images, attack, extra)
