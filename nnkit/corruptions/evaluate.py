"""Common-corruption robustness of a stored run: accuracy per corruption and severity, and mCE.

One place for what ``nnkit corrupt``, the dashboard's jobs and ``nnkit compare`` compute, so that for the
same run, images and seed they show the same numbers. The evaluation is stored in the run's folder as a
``corruptions`` evaluation (``nnkit.runs.evaluations``) with the command that reproduces it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from nnkit.corruptions.registry import check_corruptions, check_severities, corrupt
from nnkit.errors import Cancelled, NnkitError
from nnkit.runs import RunInfo

ProgressFn = Callable[[int, int], None]
KIND = "corruptions"


@dataclass
class CorruptionEval:
    """One corruption evaluation of a run: what is stored, and the images it was measured on."""

    info: RunInfo
    params: dict  # the stored params: n, split, seed, corruptions, severities (and reference)
    result: dict  # the stored result: clean_accuracy, accuracy, mean_accuracy, mce, ce, reference, n
    command: str  # the `nnkit corrupt ...` command that reproduces it
    seconds: float
    selection: str  # which images, in words
    images: torch.Tensor = field(repr=False)  # N×C×H×W clean images on the CPU
    labels: torch.Tensor = field(repr=False)  # N
    indices: list[int] = field(default_factory=list)  # their positions in the split (the corruption keys)
    class_names: list[str] = field(default_factory=list)
    reused_reference: bool = False  # the reference's accuracies came from its stored evaluation

    def summary(self) -> dict:
        """The JSON-ready figures (what ``nnkit corrupt ... --json`` prints as its last line)."""
        return {"run_id": self.info.run_id, "data": self.info.meta.get("dataset", {}).get("name"),
                "split": self.params["split"], "seed": self.params["seed"], "corruptions": self.params["corruptions"],
                "severities": self.params["severities"], **self.result, "selection": self.selection,
                "command": self.command, "seconds": self.seconds}


def corruption_errors(accuracy: dict[str, Sequence[float]],
                      reference: dict[str, Sequence[float]]) -> tuple[dict[str, float | None], float | None]:
    """Corruption error per corruption and their mean (Hendrycks & Dietterich 2019, eq. 1).

    ``CE_c = Σ_s E_{s,c}(model) / Σ_s E_{s,c}(reference)``, E = 1 - accuracy, summed over the severities
    measured; ``mCE`` is the mean of CE_c over the corruptions. A corruption on which the reference makes no
    error at any severity has no CE (None) and is left out of the mean.

    Args:
        accuracy: the model's accuracy per corruption, one value per severity.
        reference: the reference's, same keys and lengths.

    Returns:
        ``(ce, mce)``; ``mce`` is None when no corruption has a CE.
    """
    ce: dict[str, float | None] = {}
    for name, accs in accuracy.items():
        ref_err = sum(1.0 - a for a in reference[name])
        ce[name] = sum(1.0 - a for a in accs) / ref_err if ref_err > 1e-12 else None
    defined = [v for v in ce.values() if v is not None]
    return ce, (sum(defined) / len(defined) if defined else None)


def _accuracies(model, images, labels, keys, names, severities, seed, batch_size, device, tick, stop_event):
    """Clean accuracy and accuracy per (corruption, severity) of ``model`` on the images; ``tick(k)`` after
    every k images."""
    def correct(batch: torch.Tensor, truth: torch.Tensor) -> int:
        with torch.no_grad():
            return int((model(batch).argmax(1).cpu() == truth).sum())

    def check_stop() -> None:
        if stop_event is not None and stop_event.is_set():
            raise Cancelled("corruption evaluation cancelled")

    n = len(labels)
    chunks = [(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
    hits = 0
    for a, b in chunks:
        check_stop()
        hits += correct(images[a:b].to(device), labels[a:b])
        tick(b - a)
    clean = hits / n
    accuracy: dict[str, list[float]] = {}
    for name in names:
        accuracy[name] = []
        for s in severities:
            hits = 0
            for a, b in chunks:
                check_stop()
                batch = corrupt(images[a:b].to(device), name, s, seed=seed, keys=keys[a:b])
                hits += correct(batch, labels[a:b])
                tick(b - a)
            accuracy[name].append(hits / n)
    return clean, accuracy


def _same_data(a: RunInfo, b: RunInfo) -> bool:
    da, db = a.meta.get("dataset", {}), b.meta.get("dataset", {})
    return (da.get("name"), da.get("opts") or {}) == (db.get("name"), db.get("opts") or {})


def _check_fits(info: RunInfo, ref: RunInfo) -> None:
    ma, mb = info.meta.get("model", {}), ref.meta.get("model", {})
    for key, what in (("in_channels", "channels"), ("image_size", "image size"), ("num_classes", "classes")):
        if ma.get(key) != mb.get(key):
            raise NnkitError(f"reference {ref.run_id} does not fit run {info.run_id}: {what} "
                             f"{mb.get(key)} vs {ma.get(key)}")


def corrupt_command(run_id: str, n: int, split: str, seed: int, names: Sequence[str], severities: Sequence[int],
                    reference: str | None = None) -> str:
    """The ``nnkit corrupt`` command that reproduces an evaluation (stored with it).

    Args:
        run_id: the evaluated run; n, split, seed, names, severities: the evaluation's params;
            reference: the reference run's id, or None.

    Returns:
        A shell-quoted command line, e.g. ``nnkit corrupt RUN --n 200 --seed 0 --corruptions ... --severities ...``.
    """
    from nnkit.runs.evaluations import command_line

    argv = ["corrupt", run_id, "--n", n]
    if split != "test":
        argv += ["--split", split]
    argv += ["--seed", seed, "--corruptions", ",".join(names), "--severities", ",".join(map(str, severities))]
    if reference:
        argv += ["--reference", reference]
    return command_line(argv)


def corruption_eval_on_run(run: str | RunInfo, *, n: int = 200, seed: int | None = None, split: str = "test",
                           corruptions: Sequence[str] | str | None = None,
                           severities: Sequence[int] | str = (1, 2, 3, 4, 5),
                           reference: str | RunInfo | None = None, batch_size: int = 256,
                           on_progress: ProgressFn | None = None, stop_event: threading.Event | None = None,
                           record: bool = True, device=None, data_root: str | None = None) -> CorruptionEval:
    """Accuracy of a run under common corruptions, per corruption and severity, and its mean corruption error
    against a reference run (Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
    Corruptions and Perturbations", ICLR 2019; CIFAR-10-C parameters, see ``nnkit.corruptions``).

    The images are ``n`` of the run's split picked seeded and stratified over the classes
    (``attacks.on_run.pick_images``, as the attacks pick them); image i of the split is corrupted with the
    random stream of (seed, i), so the same seed gives the same corrupted images to every run.

    Args:
        run: the run (id, unique prefix, name or RunInfo).
        n: images (fewer when the split is smaller).
        seed: seed of the pick and of the corruptions (None: a fresh one, recorded).
        split: the split the images come from.
        corruptions: names (a list or "a,b"); None: all of ``CORRUPTIONS``.
        severities: 1..5 (a list or "1,3,5").
        reference: a run (id, prefix, name or RunInfo) for CE and mCE. Its errors are those on the same
            images with the same seed: read from its stored evaluation with the same params when it was trained
            on the same data, else measured now (and stored when ``record`` and the data is the same).
            The run itself as reference gives mCE 1.0 (when it makes any error).
        batch_size: images per forward pass.
        on_progress: called with (images done, images total), every image counted once per corruption and
            severity (plus the clean pass, plus the reference's passes when they are measured).
        stop_event: set it to cancel (raises ``nnkit.errors.Cancelled``; nothing is stored).
        record: store the evaluation in the run's folder (``nnkit.runs.evaluations``, kind "corruptions").
        device: "cpu", "cuda", ... (None: ``nnkit.device.get_device`` picks).
        data_root: where torchvision datasets live.

    Shape:
        images N×C×H×W in [0, 1], as stored in the dataset.

    Returns:
        :class:`CorruptionEval`: ``params`` = {"n", "split", "seed", "corruptions", "severities"[, "reference"]}
        and ``result`` = {"clean_accuracy", "accuracy": {name: [accuracy per severity]}, "mean_accuracy" (over
        every corruption and severity), "mce" (float or None), "ce" ({name: float or None} or None),
        "reference" (run id or None), "n" (images used)}, accuracies in 0..1, as stored.

    Raises:
        NnkitError: a bad name, severity, n, split, batch size or seed, an unknown run, a reference whose
            model does not take the run's images.
    """
    from attacks.on_run import load_target, pick_images
    from nnkit.device import get_device
    from nnkit.runs import RunStore, load_classifier
    from nnkit.runs.evaluations import find_evaluation, record_evaluation
    from nnkit.seeding import check_seed, seed_everything

    names = check_corruptions(corruptions)
    sevs = check_severities(severities)
    n, batch_size = (int(v) if isinstance(v, np.integer) else v for v in (n, batch_size))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise NnkitError(f"the number of images must be a whole number >= 1, got {n!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise NnkitError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    if seed is not None:
        check_seed(seed)
    store = RunStore()
    info = run if isinstance(run, RunInfo) else store.get(run)
    ref = None if reference is None else reference if isinstance(reference, RunInfo) else store.get(reference)
    if ref is not None:
        if ref.kind != "classifier":
            raise NnkitError(f"reference {ref.run_id} is a {ref.kind} run, not a classifier")
        _check_fits(info, ref)
    dev = get_device(device)
    info, dataset, part, model = load_target(info, split, device=str(dev), data_root=data_root)
    seed = seed_everything(seed)  # fixed first: it picks the images too
    images, labels, chosen, selection = pick_images(part, n, None, seed)
    base = {"n": n, "split": split, "seed": seed, "corruptions": names, "severities": sevs}
    params = {**base, "reference": ref.run_id} if ref is not None else dict(base)

    ref_accuracy = None
    reused = False
    measure_ref = False
    if ref is not None and ref.run_id != info.run_id:
        stored = find_evaluation(ref, KIND, base) if _same_data(info, ref) else None
        accs = stored.result.get("accuracy") if stored is not None else None
        if isinstance(accs, dict) and sorted(accs) == sorted(names) and all(len(accs[k]) == len(sevs) for k in names):
            ref_accuracy, reused = {k: [float(a) for a in accs[k]] for k in names}, True
        else:
            measure_ref = True
    per_pass = len(labels) * (1 + len(names) * len(sevs))
    total = per_pass * (2 if measure_ref else 1)
    done = 0

    def tick(k: int) -> None:
        nonlocal done
        done += k
        if on_progress is not None:
            on_progress(done, total)

    if on_progress is not None:
        on_progress(0, total)
    t0 = time.perf_counter()
    clean, accuracy = _accuracies(model, images, labels, chosen, names, sevs, seed, batch_size, dev, tick, stop_event)
    seconds = time.perf_counter() - t0
    if ref is not None and ref.run_id == info.run_id:
        ref_accuracy = accuracy
    elif measure_ref:
        t1 = time.perf_counter()
        ref_model = load_classifier(ref, dev)
        ref_clean, ref_accuracy = _accuracies(ref_model, images, labels, chosen, names, sevs, seed, batch_size,
                                              dev, tick, stop_event)
        if record and _same_data(info, ref):
            ref_result = _result(ref_clean, ref_accuracy, None, None, len(labels))
            record_evaluation(ref, KIND, base, ref_result,
                              corrupt_command(ref.run_id, n, split, seed, names, sevs), time.perf_counter() - t1)
    ce, mce = corruption_errors(accuracy, ref_accuracy) if ref_accuracy is not None else (None, None)
    result = _result(clean, accuracy, ce, mce, len(labels), ref.run_id if ref is not None else None)
    command = corrupt_command(info.run_id, n, split, seed, names, sevs, ref.run_id if ref is not None else None)
    if record:
        record_evaluation(info, KIND, params, result, command, seconds)
    return CorruptionEval(info=info, params=params, result=result, command=command, seconds=seconds,
                          selection=selection, images=images, labels=labels, indices=list(chosen),
                          class_names=list(dataset.class_names), reused_reference=reused)


def _result(clean: float, accuracy: dict[str, list[float]], ce, mce, n: int, reference: str | None = None) -> dict:
    values = [a for accs in accuracy.values() for a in accs]
    return {"clean_accuracy": clean, "accuracy": accuracy, "mean_accuracy": sum(values) / len(values),
            "mce": mce, "ce": ce, "reference": reference, "n": n}


def corruption_examples(image: torch.Tensor, names: Sequence[str] | None = None,
                        severities: Sequence[int] = (1, 2, 3, 4, 5), *, seed: int = 0, key: int = 0) -> torch.Tensor:
    """One image under every corruption and severity, for the example grid (``nnkit corrupt --out``, plots).

    Args:
        image: one image in [0, 1].
        names: corruptions (None: all); severities: 1..5.
        seed, key: the corruption's seed and the image's key (its index in the split), so the grid shows the
            very images the evaluation measured.

    Shape:
        image C×H×W → len(names)×(1 + len(severities))×C×H×W; column 0 is the clean image.

    Returns:
        The grid as a tensor on the CPU.
    """
    names = check_corruptions(names)
    sevs = check_severities(severities)
    x = image.detach().cpu()[None]
    rows = [torch.cat([x] + [corrupt(x, name, s, seed=seed, keys=[key]) for s in sevs]) for name in names]
    return torch.stack(rows)
