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
from nnkit.runs.evaluations import Evaluation
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
    evaluation: Evaluation | None = None  # the stored evaluation (``record=True``), else None

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
                     stop_event: threading.Event | None = None, indices: Sequence[int] | None = None,
                     record: bool = False) -> RunAttack:
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
        record: store the figures as a ``one-pixel`` evaluation of the run with the command that repeats them
            (:mod:`nnkit.runs.evaluations`; the process that writes under ``torchrun`` is rank 0; not with
            ``indices``, which no command line repeats).

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
    evaluation = None
    if record and indices is None:
        from nnkit.cli.attack import one_pixel_argv

        params = {"pixels": int(pixels), "n": int(n), "popsize": int(popsize), "generations": int(generations),
                  "split": split, "seed": seed, "target": target_index}
        result = {"success_rate": report.success_rate, "robust_accuracy": report.robust_accuracy,
                  "clean_accuracy": report.clean_accuracy, "n": report.n, "mean_queries": report.queries_mean}
        argv = one_pixel_argv(info.run_id, n=n, pixels=pixels, popsize=popsize, generations=generations, seed=seed,
                              target=target_index) + _split_argv(split)
        evaluation = _record(info, "one-pixel", params, result, argv, report.seconds)
    return RunAttack(info, dataset, split, report, images, attack, extra, evaluation)


def patch_on_run(run: str | RunInfo, *, target: str | int, area: float = 0.05, shape: str = "square",
                 kind: str = "universal", n: int = 100, train_n: int = 2000, steps: int | None = None,
                 split: str = "test", seed: int | None = None, device=None, data_root: str | None = None,
                 on_fit_progress: ProgressFn | None = None, on_progress: ProgressFn | None = None,
                 stop_event: threading.Event | None = None, indices: Sequence[int] | None = None,
                 record: bool = False) -> RunAttack:
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
        record: store the figures as a ``patch`` evaluation of the run with the command that repeats them
            (as :func:`one_pixel_on_run` does).

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
    evaluation = None
    if record and indices is None:
        from nnkit.cli.attack import patch_argv

        params = {"kind": kind, "area": float(area), "shape": shape, "target": target_index, "n": int(n),
                  "train_n": int(train_n), "steps": int(attack.steps), "split": split, "seed": seed}
        result = {"success_rate": report.success_rate, "robust_accuracy": report.robust_accuracy,
                  "clean_accuracy": report.clean_accuracy, "n": report.n, "area": float(area),
                  "target": target_index}
        argv = patch_argv(info.run_id, target=target_index, area=area, shape=shape, kind=kind, n=n, train_n=train_n,
                          steps=int(attack.steps), seed=seed) + _split_argv(split)
        evaluation = _record(info, "patch", params, result, argv,
                                      report.seconds + extra.get("fit_seconds", 0.0))
    return RunAttack(info, dataset, split, report, images, attack, extra, evaluation)


def _split_argv(split: str) -> list[str]:
    return [] if split == "test" else ["--split", split]


def _record(info: RunInfo, kind: str, params: dict, result: dict, argv: list[str], seconds: float):
    """Store an evaluation (rank 0 alone under ``torchrun``); returns it, or None on the other ranks."""
    from nnkit import distributed
    from nnkit.runs.evaluations import command_line, record_evaluation

    if not distributed.is_master():
        return None
    return record_evaluation(info, kind, params, result, command_line(argv), seconds=seconds)


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


GRADIENT_ATTACKS = ("fgsm", "pgd", "apgd")
# The ε sweep when none is given: up to the usual CIFAR-10 budgets (L∞ 8/255, L2 0.5) and one step beyond.
DEFAULT_EPS = {"linf": (1 / 255, 2 / 255, 4 / 255, 8 / 255), "l2": (0.125, 0.25, 0.5, 1.0)}


@dataclass
class RobustRun:
    """Robust accuracy against ε of one gradient attack on a saved run (what ``nnkit attack pgd`` prints)."""

    info: RunInfo
    dataset: Dataset
    split: str
    attack: str  # "fgsm", "pgd" or "apgd"
    norm: str  # "linf" or "l2"
    eps: list[float]  # the budgets, increasing
    steps: int
    alpha: float | None  # the step size given (None: each attack's default, scaled with ε for PGD)
    n: int  # images attacked
    n_requested: int
    seed: int
    target: int | None
    clean_accuracy: float
    robust_accuracy: list[float]  # per ε
    reports: list[AttackReport]  # per ε
    clean: torch.Tensor  # N×C×H×W attacked images (CPU)
    labels: torch.Tensor  # N
    selection: str
    indices: list[int]
    min_eps: list[float] | None = None  # per image: smallest flipping ε (inf: never within max ε; nan: misclassified)
    min_eps_median: float | None = None  # over correctly classified images, inf counted (None: not finite / not run)
    min_eps_result: object = None  # the bisection's AttackResult
    seconds: float = 0.0
    evaluation: Evaluation | None = None

    @property
    def eps_labels(self) -> list[str]:
        from attacks.pgd import eps_label

        return [eps_label(e) for e in self.eps]

    def record_params(self) -> dict:
        """The evaluation's params (:mod:`nnkit.runs.evaluations`, kind ``robust``)."""
        params = {"attack": self.attack, "norm": self.norm, "eps": [float(e) for e in self.eps], "steps": self.steps,
                  "n": self.n_requested, "split": self.split, "seed": self.seed, "target": self.target}
        if self.alpha is not None:
            params["alpha"] = float(self.alpha)  # only when given: the default sweep keeps the documented params
        return params

    def record_result(self) -> dict:
        """The evaluation's result: clean accuracy, robust accuracy per ε label, the ε list, min-ε median, n."""
        return {"clean_accuracy": self.clean_accuracy,
                "robust_accuracy": dict(zip(self.eps_labels, self.robust_accuracy, strict=True)),
                "eps": [float(e) for e in self.eps], "min_eps_median": self.min_eps_median, "n": self.n}

    def min_eps_states(self) -> list[str] | None:
        """Per image, what its min ε means (JSON has no infinity, so ``summary()`` writes both cases as null):
        "flipped", "not flipped" (robust up to the largest ε) or "not attacked" (misclassified already)."""
        if self.min_eps is None:
            return None
        return ["not attacked" if v != v else "not flipped" if v == float("inf") else "flipped" for v in self.min_eps]

    def summary(self) -> dict:
        """JSON-ready figures (the CLI's ``--json`` line): settings, clean and per-ε robust accuracy, min ε."""
        from nnkit.jsonable import json_ready

        rows = [{"eps": e, "eps_label": lab, "robust_accuracy": acc, "success_rate": r.success_rate,
                 "n_success": r.n_success, "queries_mean": r.queries_mean, "seconds": r.seconds}
                for e, lab, acc, r in zip(self.eps, self.eps_labels, self.robust_accuracy, self.reports, strict=True)]
        return json_ready({
            "run_id": self.info.run_id, "data": self.dataset.name, "split": self.split, "attack": self.attack,
            "norm": self.norm, "eps": self.eps, "eps_labels": self.eps_labels, "steps": self.steps,
            "alpha": self.alpha, "n": self.n, "seed": self.seed, "target": self.target, "targeted": self.target is not None,
            "clean_accuracy": self.clean_accuracy,
            "robust_accuracy": dict(zip(self.eps_labels, self.robust_accuracy, strict=True)), "per_eps": rows,
            "min_eps": self.min_eps, "min_eps_state": self.min_eps_states(), "min_eps_median": self.min_eps_median,
            "selection": self.selection,
            "indices": self.indices, "seconds": self.seconds,
            "params": self.reports[0].params if self.reports else {},
        })


def check_eps_list(eps: Sequence[float] | float, norm: str) -> list[float]:
    """Check the budgets of an ε sweep (before any data is loaded).

    Args:
        eps: one budget or several; norm: "linf" (each at most 1) or "l2".
    Returns:
        The ε values as floats, sorted increasing; a one-line NnkitError for none, repeats, or a bad value.
    """
    values = [eps] if isinstance(eps, (int, float)) else list(eps)
    if not values:
        raise NnkitError("choose at least one eps")
    out = []
    for e in values:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < float(e) < float("inf"):
            raise NnkitError(f"eps must be a number > 0, got {e!r}")
        if norm == "linf" and float(e) > 1:
            raise NnkitError(f"an L∞ eps is at most 1 (pixel values are in [0, 1]), got {e}")
        out.append(float(e))
    if len(set(out)) != len(out):
        raise NnkitError("each eps may appear only once")
    return sorted(out)


def make_gradient_attack(model, attack: str, *, eps: float, norm: str = "linf", steps: int | None = None,
                         alpha: float | None = None, seed: int | None = None) -> Attack:
    """The attack object for one ε: FGSM (Goodfellow et al. 2015), PGD (Madry et al. 2018) or APGD-CE
    (Croce & Hein 2020).

    Without ``alpha``, PGD's step is scaled with ε at torchattacks' ratio (2/255 at 8/255 for L∞, 0.1 at
    0.5 for L2), so that a sweep over small ε does not step past its ball; FGSM steps ε; APGD sets its own.

    Returns:
        An :class:`attacks.base.Attack`.
    """
    from attacks.apgd import APGD
    from attacks.apgd import DEFAULT_STEPS as APGD_STEPS
    from attacks.fgsm import FGSM
    from attacks.pgd import DEFAULT_STEPS, DEFAULTS, PGD, check_norm

    check_norm(norm)
    if attack == "fgsm":
        if norm != "linf":
            raise NnkitError("FGSM is an L∞ attack: use --norm linf (or pgd/apgd for L2)")
        return FGSM(model, eps=eps, alpha=alpha, seed=seed)
    if attack == "pgd":
        if alpha is None:
            alpha = eps * DEFAULTS[norm]["alpha"] / DEFAULTS[norm]["eps"]
        return PGD(model, eps=eps, alpha=alpha, steps=DEFAULT_STEPS if steps is None else steps, norm=norm, seed=seed)
    if attack == "apgd":
        if alpha is not None:
            raise NnkitError("APGD sets its own step size (2·eps, halved as it goes): leave alpha out")
        return APGD(model, eps=eps, steps=APGD_STEPS if steps is None else steps, norm=norm, seed=seed)
    raise NnkitError(f"unknown gradient attack {attack!r}: choose {', '.join(GRADIENT_ATTACKS)}")


def robust_on_run(run: str | RunInfo, *, attack: str = "pgd", eps: Sequence[float] | float | None = None,
                  norm: str = "linf", steps: int | None = None, alpha: float | None = None, n: int = 100,
                  seed: int | None = None, split: str = "test", target: str | int | None = None, min_eps: bool = False,
                  bisections: int = 8, on_progress: ProgressFn | None = None,
                  stop_event: threading.Event | None = None, record: bool = True, device=None,
                  data_root: str | None = None,
                  on_result: Callable[[int, float, AttackReport], None] | None = None) -> RobustRun:
    """Robust accuracy against the budget ε of a white-box attack on ``n`` images of a run's split, and
    optionally the smallest ε that flips each image (bisection with PGD, :class:`attacks.min_eps.MinEps`).

    Attacks: FGSM (Goodfellow et al. 2015), PGD (Madry et al. 2018), APGD-CE (Croce & Hein 2020).
    Every ε attacks the same images with the same seed (each image's random start from its own
    stream, keyed by its index in the split), so the curve is what ``nnkit attack ATTACK RUN --eps E
    --seed S`` prints for each ε alone.

    Args:
        run: the run (id, prefix, name or RunInfo).
        attack: "fgsm", "pgd" or "apgd".
        eps: one budget or several (default: 1/255, 2/255, 4/255, 8/255 for L∞; 0.125 … 1 for L2).
        norm: "linf" or "l2" (FGSM: L∞ only).
        steps: gradient steps (default: PGD 10, APGD 100; FGSM takes one).
        alpha: step size (default: PGD ε/4 for L∞, ε/5 for L2; FGSM ε; APGD its own schedule).
        n: images attacked, picked seeded and stratified over the classes (:func:`pick_images`).
        seed: seed of the pick and of the random starts (None: a fresh one, recorded).
        split: the split the images come from.
        target: target class (name or index) for a targeted attack; None: untargeted.
        min_eps: also find each image's smallest flipping ε up to the largest ε (PGD: with ``steps`` when the
            attack is PGD, else PGD's default 10 steps).
        bisections: halvings in the min-ε search.
        on_progress: called with (steps done, steps in all) over every ε and the bisection.
        stop_event: set it to cancel (raises ``nnkit.errors.Cancelled``).
        record: store a ``robust`` evaluation with the command that repeats it (rank 0 under ``torchrun``).
        device, data_root: where the attack runs, where torchvision datasets live.
        on_result: called with (ε's index, ε, AttackReport) as soon as that ε is measured (a live curve).

    Shape:
        images N×C×H×W in [0, 1] (as stored in the dataset).

    Returns:
        :class:`RobustRun` (``summary()`` is the CLI's JSON; ``evaluation`` the stored record).
    """
    from attacks.min_eps import MinEps
    from attacks.pgd import DEFAULT_STEPS as PGD_STEPS
    from attacks.pgd import check_norm

    if attack not in GRADIENT_ATTACKS:
        raise NnkitError(f"unknown gradient attack {attack!r}: choose {', '.join(GRADIENT_ATTACKS)}")
    check_norm(norm)
    eps_list = check_eps_list(DEFAULT_EPS[norm] if eps is None else eps, norm)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise NnkitError(f"n must be a whole number >= 1, got {n!r}")
    # Every attack object is built (and so checked) before any data is loaded or image attacked.
    first = make_gradient_attack(torch.nn.Linear(1, 1), attack, eps=eps_list[-1], norm=norm, steps=steps,
                                 alpha=alpha, seed=0)
    steps_used = int(first.params().get("steps", 1))
    t0 = time.perf_counter()
    info, dataset, part, model = load_target(run, split, device=device, data_root=data_root)
    seed = seed_everything(seed)  # fixed first: it picks the images too
    images, labels, chosen, selection = pick_images(part, n, None, seed)
    target_index = resolve_class(target, dataset.class_names) if target is not None else None
    per_eps = steps_used + (1 if attack == "apgd" else 0)
    # The min-ε search is PGD's: with the sweep's steps for PGD, PGD's default steps after FGSM or APGD.
    search_steps = steps_used if attack == "pgd" else PGD_STEPS
    total = per_eps * len(eps_list) + (max(search_steps, 1) * (bisections + 1) if min_eps else 0)
    reports = []
    for i, e in enumerate(eps_list):
        att = make_gradient_attack(model, attack, eps=e, norm=norm, steps=steps, alpha=alpha, seed=seed)
        progress = None if on_progress is None else (lambda d, _t, _b=i * per_eps: on_progress(_b + d, total))
        reports.append(evaluate(model, att, images, labels, target_index, class_names=dataset.class_names,
                                on_progress=progress, stop_event=stop_event, keys=chosen))
        if on_result is not None:
            on_result(i, e, reports[-1])
    clean_accuracy = reports[0].clean_accuracy
    min_list, median, min_result = None, None, None
    if min_eps:
        search = MinEps(model, eps_max=eps_list[-1], steps=search_steps, norm=norm, bisections=bisections, seed=seed)
        base = per_eps * len(eps_list)
        progress = None if on_progress is None else (lambda d, _t: on_progress(base + d, total))
        min_result = search(images, labels, target_index, keys=chosen, on_progress=progress, stop_event=stop_event)
        # No correctly classified image: nothing was attacked and no search ran.
        found = min_result.perturbation.get("min_eps", torch.full((len(chosen),), float("nan")))
        # Only the model's verdict on the returned image counts: a bisection "success" it does not confirm is ∞.
        values = torch.where(min_result.success, found, torch.full_like(found, float("inf")))
        values = torch.where(min_result.attacked, values, torch.full_like(found, float("nan")))
        min_list = values.tolist()
        attacked = values[min_result.attacked]
        if attacked.numel():
            med = float(attacked.median())  # the lower middle value for an even count; ∞ when most never flip
            median = med if med < float("inf") else None
    done = RobustRun(
        info=info, dataset=dataset, split=split, attack=attack, norm=norm, eps=eps_list, steps=steps_used,
        alpha=None if alpha is None else float(alpha), n=len(chosen), n_requested=n, seed=seed, target=target_index,
        clean_accuracy=clean_accuracy, robust_accuracy=[r.robust_accuracy for r in reports], reports=reports,
        clean=images, labels=labels, selection=selection, indices=chosen, min_eps=min_list, min_eps_median=median,
        min_eps_result=min_result, seconds=time.perf_counter() - t0)
    if record:
        from nnkit.cli.attack import robust_argv

        argv = robust_argv(info.run_id, attack=attack, eps=eps_list, norm=norm, steps=steps_used, alpha=alpha, n=n,
                           seed=seed, target=target_index, min_eps=min_eps, split=split)
        done.evaluation = _record(info, "robust", done.record_params(), done.record_result(), argv, done.seconds)
    return done
