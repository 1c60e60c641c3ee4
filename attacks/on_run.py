"""Attack a saved run: load its model and data, pick the images, build the attack, measure it.

One place for what the CLI (`nnkit attack`), the dashboard's Attack page and the robustness report
all do, so that for the same run, images and seed they print the same figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from attacks.base import Attack
from attacks.evaluate import AttackReport, evaluate
from attacks.one_pixel import OnePixel
from attacks.patch import LocalPatch, UniversalPatch
from nnkit.data.base import Dataset
from nnkit.data.select import describe_selection, stratified_indices
from nnkit.errors import NnkitError
from nnkit.runs import RunInfo
from nnkit.seeding import seed_everything

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


def pick_images(part, n: int, indices: Sequence[int] | None = None, seed: int = 0):
    """The images an attack on a run gets: ``n`` picked seeded and stratified over the classes, or the
    ones at ``indices``.

    Args:
        part: the split (``Dataset.split(...)``).
        n: how many, picked by ``nnkit.data.select.stratified_indices`` (fewer when the split is smaller);
            ignored with ``indices``.
        indices: positions in the split, in the order wanted (no repeats).
        seed: seed of the pick (the attack's seed, so the same command attacks the same images).

    Shape:
        images N×C×H×W, labels N.

    Returns:
        ``(images, labels, chosen, selection)``: ``chosen`` is the list of positions in the split (the
        key of each image's random stream), ``selection`` says in words which images were taken.

    Raises:
        NnkitError: for no index, a repeated index or one outside the split.
    """
    if indices is None:
        chosen = stratified_indices(part.labels, n, seed)
        selection = describe_selection(part.labels, chosen, seed)
    else:
        chosen = [int(i) for i in indices]
        if not chosen:
            raise NnkitError("choose at least one image")
        bad = [i for i in chosen if not 0 <= i < len(part)]
        if bad:
            raise NnkitError(f"image index {bad[0]} is outside the split (0..{len(part) - 1})")
        if len(set(chosen)) != len(chosen):
            raise NnkitError("each image may be chosen only once")
        selection = describe_selection(part.labels, chosen, None)
    at = torch.tensor(chosen, dtype=torch.long)
    return part.images[at], part.labels[at], chosen, selection


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
                     stop_event: threading.Event | None = None, indices: Sequence[int] | None = None) -> RunAttack:
    """Single-pixel attack (Su, Vargas, Sakurai, IEEE TEVC 2019) on ``n`` images of a run's split.

    Args:
        run: the run (id, prefix, name or RunInfo).
        n: images attacked, picked seeded (by ``seed``) and stratified over the classes (see
            :func:`pick_images`; fewer when the split is smaller).
        indices: attack these images of the split instead (positions in the split).
        pixels: k, the pixels changed per image.
        target: target class (name or index) for a targeted attack; None: untargeted.
        popsize, generations: the differential-evolution budget (paper: 400, 100).
        split, seed, device, data_root: where the images come from, the attack's seed, where it runs.
        on_progress: called with (generations done, generations + 1).
        stop_event: set it to cancel (raises ``nnkit.errors.Cancelled``).

    Shape:
        images N×C×H×W in [0, 1] (as stored in the dataset).

    Returns:
        RunAttack with the AttackReport (``summary()`` is the CLI's JSON); ``extra`` holds ``selection`` (which
        images, in words) and ``indices`` (their positions in the split).
    """
    if generations < 0:
        raise NnkitError(f"generations must be >= 0, got {generations}")
    info, dataset, part, model = load_target(run, split, device=device, data_root=data_root)
    seed = seed_everything(seed)  # fixed first: it picks the images too
    images, labels, chosen, selection = pick_images(part, n, indices, seed)
    target_index = resolve_class(target, dataset.class_names) if target is not None else None
    attack = OnePixel(model, pixels=pixels, popsize=popsize, generations=generations, seed=seed)
    report = evaluate(model, attack, images, labels, target_index, class_names=dataset.class_names,
                      on_progress=on_progress, stop_event=stop_event, keys=chosen)
    extra: dict = {"pixels": pixels, "target": target_index, "selection": selection, "indices": chosen}
    return RunAttack(info, dataset, split, report, images, attack, extra)


def patch_on_run(run: str | RunInfo, *, target: str | int, area: float = 0.05, shape: str = "square",
                 kind: str = "universal", n: int = 100, train_n: int = 2000, steps: int | None = None,
                 split: str = "test", seed: int | None = None, device=None, data_root: str | None = None,
                 on_fit_progress: ProgressFn | None = None, on_progress: ProgressFn | None = None,
                 stop_event: threading.Event | None = None, indices: Sequence[int] | None = None) -> RunAttack:
    """Targeted patch attack on a run: a universal patch (Brown et al. 2017) fitted on ``train_n`` training
    images (picked seeded and stratified over the classes) and pasted at random places on held-out images,
    or one patch per image (LaVAN, Karmon et al. 2018).

    Args:
        run: the run (id, prefix, name or RunInfo).
        target: target class (name or index).
        area: patch area as a fraction of the image area; shape: "square" or "circle".
        kind: "universal" or "local".
        n: held-out images attacked; train_n: images the universal patch is optimised over (both picked
            seeded and stratified over the classes, see :func:`pick_images`).
        indices: attack these images of the split instead (positions in the split).
        steps: optimisation steps (None: the attack's default).
        split, seed, device, data_root: as in :func:`one_pixel_on_run`.
        on_fit_progress: (steps done, steps) while the universal patch is fitted.
        on_progress: (done, total) while the held-out images are attacked.
        stop_event: set it to cancel.

    Returns:
        RunAttack; ``extra`` holds kind, area, shape, target, selection, indices and (universal) the fit's
        seconds, queries and train_selection.
    """
    if kind not in ("universal", "local"):
        raise NnkitError(f"unknown patch kind {kind!r}: choose universal or local")
    info, dataset, part, model = load_target(run, split, device=device, data_root=data_root)
    target_index = resolve_class(target, dataset.class_names)
    seed = seed_everything(seed)  # fixed first: it picks the images too
    images, labels, chosen, selection = pick_images(part, n, indices, seed)
    opts = {"steps": int(steps)} if steps else {}
    extra: dict = {"kind": kind, "area": area, "shape": shape, "target": target_index, "selection": selection,
                   "indices": chosen}
    if kind == "universal":
        train = dataset.split("train")
        # Stratified like the attacked images: a class-ordered split (folder data) must not fit the patch
        # on its first classes only.
        fit_at = torch.tensor(stratified_indices(train.labels, train_n, seed), dtype=torch.long)
        attack = UniversalPatch(model, area=area, shape=shape, seed=seed, **opts)
        t0 = time.perf_counter()
        attack.fit(train.images[fit_at], train.labels[fit_at], target_index, on_progress=on_fit_progress,
                   stop_event=stop_event)
        extra.update(fit_seconds=time.perf_counter() - t0, train_images=len(fit_at),
                     train_selection=describe_selection(train.labels, fit_at.tolist(), seed),
                     fit_queries=attack.fit_info["queries"])
    else:
        attack = LocalPatch(model, area=area, shape=shape, seed=seed, **opts)
    report = evaluate(model, attack, images, labels, target_index, class_names=dataset.class_names,
                      on_progress=on_progress, stop_event=stop_event, keys=chosen)
    return RunAttack(info, dataset, split, report, images, attack, extra)


SweepProgressFn = Callable[[int, int, int, int], None]  # (value index, values, steps done, steps total)


def _sweep_values(values: Sequence, what: str) -> list:
    values = list(values)
    if not values:
        raise NnkitError(f"choose at least one {what} to sweep")
    if len(set(values)) != len(values):
        raise NnkitError(f"each {what} may appear only once in a sweep")
    return values


def pixel_sweep_on_run(run: str | RunInfo, *, pixels: Sequence[int] = (1, 3, 5), n: int = 100,
                       target: str | int | None = None, popsize: int = 400, generations: int = 100,
                       split: str = "test", seed: int | None = None, device=None, data_root: str | None = None,
                       on_progress: SweepProgressFn | None = None,
                       on_result: Callable[[int, RunAttack], None] | None = None,
                       stop_event: threading.Event | None = None) -> list[RunAttack]:
    """Success of the single-pixel attack against the number of pixels k (Su et al. 2019, Table 2: k = 1, 3, 5).

    One :func:`one_pixel_on_run` per k on the same ``n`` images (seeded, stratified) with the same seed, so each
    point is what ``nnkit attack one-pixel RUN --pixels k --seed S`` prints.

    Args:
        run: the run (id, prefix, name or RunInfo).
        pixels: the k values, in order.
        n, target, popsize, generations, split, device, data_root, stop_event: as in :func:`one_pixel_on_run`.
        seed: one seed for every k (None: a fresh one, recorded in every report).
        on_progress: called with (k's index, number of k, generations done, generations + 1).
        on_result: called with (k's index, RunAttack) as soon as that k is measured.

    Returns:
        One RunAttack per k, in order.
    """
    from nnkit.runs import RunStore

    values = _sweep_values([int(k) for k in pixels], "pixel count")
    info = run if isinstance(run, RunInfo) else RunStore().get(run)
    seed = seed_everything(seed)
    done = []
    for i, k in enumerate(values):
        progress = None if on_progress is None else (lambda d, t, i=i: on_progress(i, len(values), d, t))
        done.append(one_pixel_on_run(info, n=n, pixels=k, target=target, popsize=popsize, generations=generations,
                                     split=split, seed=seed, device=device, data_root=data_root,
                                     on_progress=progress, stop_event=stop_event))
        if on_result is not None:
            on_result(i, done[-1])
    return done


def patch_area_sweep_on_run(run: str | RunInfo, *, target: str | int,
                            areas: Sequence[float] = (0.01, 0.02, 0.05, 0.1, 0.2), shape: str = "square",
                            kind: str = "universal", n: int = 100, train_n: int = 2000, steps: int | None = None,
                            split: str = "test", seed: int | None = None, device=None,
                            data_root: str | None = None, on_progress: SweepProgressFn | None = None,
                            on_result: Callable[[int, RunAttack], None] | None = None,
                            stop_event: threading.Event | None = None) -> list[RunAttack]:
    """Targeted success of a patch against its area (Brown et al. 2017, Fig. 2; LaVAN, Karmon et al. 2018).

    One :func:`patch_on_run` per area on the same ``n`` images (seeded, stratified) with the same seed (a universal
    patch is fitted anew for every area), so each point is what ``nnkit attack patch`` prints.

    Args:
        run: the run (id, prefix, name or RunInfo).
        target: target class (name or index).
        areas: patch areas as fractions of the image area, in order.
        shape, kind, n, train_n, steps, split, device, data_root, stop_event: as in :func:`patch_on_run`.
        seed: one seed for every area (None: a fresh one, recorded in every report).
        on_progress: called with (area's index, number of areas, steps done, steps total), for the
            patch fit and then for the held-out images.
        on_result: called with (area's index, RunAttack) as soon as that area is measured.

    Returns:
        One RunAttack per area, in order.
    """
    from nnkit.runs import RunStore

    values = _sweep_values([float(a) for a in areas], "patch area")
    bad = [a for a in values if not 0 < a < 1]
    if bad:
        raise NnkitError(f"patch area must be a fraction of the image in (0, 1), got {bad[0]}")
    info = run if isinstance(run, RunInfo) else RunStore().get(run)
    seed = seed_everything(seed)
    done = []
    for i, area in enumerate(values):
        progress = None if on_progress is None else (lambda d, t, i=i: on_progress(i, len(values), d, t))
        done.append(patch_on_run(info, target=target, area=area, shape=shape, kind=kind, n=n, train_n=train_n,
                                 steps=steps, split=split, seed=seed, device=device, data_root=data_root,
                                 on_fit_progress=progress, on_progress=progress, stop_event=stop_event))
        if on_result is not None:
            on_result(i, done[-1])
    return done


def thumbnails_on_run(run: str | RunInfo, *, split: str = "test", start: int = 0, count: int = 16,
                      data_root: str | None = None) -> dict:
    """Images of a run's split to choose attack targets from (no model is loaded).

    Args:
        run: the run (id, prefix, name or RunInfo).
        split: the split.
        start: index of the first image shown; count: how many (fewer at the end of the split).
        data_root: where torchvision datasets live.

    Shape:
        ``images`` is count×H×W×3 uint8.

    Returns:
        ``{"indices", "labels", "images", "total", "class_names"}`` (``total``: images in the split).
    """
    from attacks.figures import rgb_uint8
    from nnkit.runs import RunStore, load_run_data

    info = run if isinstance(run, RunInfo) else RunStore().get(run)
    dataset = load_run_data(info, None, data_root)
    part = dataset.split(split)
    if not 0 <= int(start) < len(part):
        raise NnkitError(f"start {start} is outside the split (0..{len(part) - 1})")
    stop = min(len(part), int(start) + max(1, int(count)))
    images = np.stack([rgb_uint8(part.images[i]) for i in range(int(start), stop)])
    return {"indices": list(range(int(start), stop)), "labels": part.labels[int(start):stop].tolist(),
            "images": images, "total": len(part), "class_names": list(dataset.class_names)}


def speed_on_run(run: str | RunInfo, *, device=None, batch: int = 256) -> float:
    """Images per second the run's model classifies in gradient-free batches (what the single-pixel
    attack's queries cost), measured on ``device``; used to estimate an attack's time before it runs.

    Args:
        run: the run (id, prefix, name or RunInfo).
        device: where to measure (None: ``nnkit.device.get_device`` picks, as a job would).
        batch: images per forward pass.

    Returns:
        Images per second (the better of two timed passes after a warm-up).
    """
    from attacks.base import inference_copy
    from nnkit.device import get_device
    from nnkit.runs import RunStore, load_classifier

    info = run if isinstance(run, RunInfo) else RunStore().get(run)
    dev = get_device(device)
    model = inference_copy(load_classifier(info, dev))
    spec = info.meta["model"]
    x = torch.rand(int(batch), spec["in_channels"], spec["image_size"], spec["image_size"], device=dev)
    if any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        x = x.contiguous(memory_format=torch.channels_last)
    best = float("inf")
    with torch.no_grad():
        model(x)
        for _ in range(2):
            t0 = time.perf_counter()
            model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            best = min(best, time.perf_counter() - t0)
    return int(batch) / max(best, 1e-9)
