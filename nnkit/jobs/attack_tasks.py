"""Job functions of the dashboard's Attack page: chosen images, sweeps over pixels and patch area, and
robust accuracy against ε of the gradient attacks (FGSM, PGD, APGD).

Each runs in a JobManager worker (see ``manager.py``), calls ``attacks.on_run`` (what the CLI
``nnkit attack`` calls, so the figures are the CLI's for the same run and seed), passes
``ctx.stop_event`` and ``ctx.device`` on, and returns plain data for the page: numbers, small uint8
images and PNG bytes of a few kilobytes. The gradient attacks store their figures as a ``robust``
evaluation of the run (``nnkit.runs.evaluations``), as the CLI does; the other attacks store nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from attacks.figures import example_views, examples_sheet, png_bytes, to_pil
from attacks.on_run import RunAttack, one_pixel_on_run, patch_area_sweep_on_run, patch_on_run, pixel_sweep_on_run
from nnkit.errors import NnkitError
from nnkit.jobs.manager import JobContext
from nnkit.seeding import seed_everything

ATTACKS = ("one-pixel", "patch")
MAX_IMAGES = 16  # chosen images per job: each gets its own figures on the page


def _report_line(done: RunAttack) -> str:
    """One line of what the attack did: its goal, what it achieved, the accuracies side by side (robust
    accuracy reads oddly beside "0 fooled" unless clean accuracy is there), and every second it took."""
    r, extra = done.report, done.extra
    target = extra.get("target")
    if target is None:
        goal = f"untargeted: {r.n_success}/{r.n_attacked} attacked images fooled"
    else:
        name = done.dataset.class_names[target]
        goal = f"targeted at {name}: {r.n_success}/{r.n_attacked} attacked images now read as {name}"
    fit = float(extra.get("fit_seconds") or 0.0)
    took = f"in {r.seconds + fit:.0f} s" + (f" ({fit:.0f} s fitting the patch)" if fit else "")
    return (f"{goal}; accuracy {r.clean_accuracy:.0%} clean, {r.robust_accuracy:.0%} under attack; {took}")


def attack_images_task(ctx: JobContext, run_id: str, indices: Sequence[int], attack: str = "one-pixel",
                       pixels: int = 1, popsize: int = 400, generations: int = 100, target: str | int | None = None,
                       patch_kind: str = "universal", area: float = 0.05, shape: str = "square",
                       steps: int | None = None, train_n: int = 2000, seed: int | None = None,
                       split: str = "test") -> dict:
    """Attack chosen images of a run's split: single-pixel (Su et al. 2019) or patch (Brown et al. 2017 /
    LaVAN, Karmon et al. 2018), with the before/after views the page draws.

    Args:
        ctx: the job context.
        run_id: the classifier run.
        indices: positions of the images in ``split`` (1 to 16, no repeats).
        attack: "one-pixel" or "patch".
        pixels, popsize, generations: single-pixel settings (paper: k = 1, 3, 5; 400; 100).
        target: target class (name or index); None: untargeted (single-pixel only; a patch needs one).
        patch_kind, area, shape, steps, train_n: patch settings (``kind``, ... of ``attacks.on_run.patch_on_run``).
        seed: the attack's seed (None: fresh, recorded in the summary).
        split: the split the images come from.

    Shape:
        each view's ``before``/``after`` is H×W×3 uint8.

    Returns:
        ``{"run_id", "attack", "summary" (the CLI's --json figures), "class_names", "views"
        (``attacks.figures.example_views``), "sheet_png" (before/after sheet), "patch_png" (universal
        patch or None)}``.
    """
    if attack not in ATTACKS:
        raise NnkitError(f"unknown attack {attack!r}: choose one-pixel or patch")
    indices = [int(i) for i in indices]
    if not indices:
        raise NnkitError("choose at least one image")
    if len(indices) > MAX_IMAGES:
        raise NnkitError(f"choose at most {MAX_IMAGES} images (use a batch for more)")
    ctx.update(0.0, "loading the model and the images")
    if attack == "one-pixel":
        def progress(done: int, total: int) -> None:
            ctx.update(message=f"k={pixels}: generation {done - 1}/{total - 1}", done=done, total=total,
                       unit="generations")

        done = one_pixel_on_run(run_id, indices=indices, pixels=pixels, target=target, popsize=popsize,
                                generations=generations, split=split, seed=seed, device=ctx.device,
                                on_progress=progress, stop_event=ctx.stop_event)
    else:
        if target is None:
            raise NnkitError("a patch attack needs a target class")
        kind = patch_kind
        fit_share = 0.8 if kind == "universal" else 0.0

        def fit_progress(done: int, total: int) -> None:
            ctx.update(fit_share * done / total, f"fitting the universal patch: step {done}/{total}")

        def progress(done: int, total: int) -> None:
            ctx.update(fit_share + (1 - fit_share) * done / total, f"{kind} patch: step {done}/{total}")

        done = patch_on_run(run_id, target=target, area=area, shape=shape, kind=kind, indices=indices,
                            train_n=train_n, steps=steps, split=split, seed=seed, device=ctx.device,
                            on_fit_progress=fit_progress, on_progress=progress, stop_event=ctx.stop_event)
    result, names = done.report.result, done.dataset.class_names
    sheet = examples_sheet(result, done.clean, names, picks=range(len(result)), mark_patches=True)
    patch = getattr(done.attack, "patch", None)
    ctx.set_summary(f"done: {_report_line(done)}")
    return {"run_id": done.info.run_id, "attack": attack, "summary": done.summary(), "class_names": list(names),
            "views": example_views(result, done.clean, indices), "sheet_png": png_bytes(sheet),
            "patch_png": png_bytes(to_pil(patch, done.attack.mask)) if patch is not None else None}


def point_label(sweep: str, value: float) -> str:
    """How a sweep point is named on the page and in downloads: "k = 3" or "patch 5%"."""
    return f"k = {int(value)}" if sweep == "pixels" else f"patch {value:.0%}" if value >= 0.01 else f"patch {value:.1%}"


def attack_sweep_task(ctx: JobContext, run_id: str, n: int = 50, pixels: Sequence[int] = (1, 3, 5),
                      areas: Sequence[float] = (), pixel_target: str | int | None = None,
                      patch_target: str | int | None = None, popsize: int = 400, generations: int = 100,
                      patch_kind: str = "universal", shape: str = "square", steps: int | None = None,
                      train_n: int = 2000,
                      seed: int | None = None, split: str = "test") -> dict:
    """Attack ``n`` images of a run's split (seeded, stratified over the classes) for every k (Su et al. 2019)
    and every patch area (Brown et al. 2017, Fig. 2), with live points for the curves of success against k
    and area.

    Args:
        ctx: the job context.
        run_id: the classifier run.
        n: images attacked, picked seeded (``seed``) and stratified over the classes (the same for every point).
        pixels: k values of the single-pixel sweep (empty: none); popsize, generations: its budget.
        areas: patch areas (fractions of the image) of the patch sweep (empty: none).
        pixel_target: target of the single-pixel attack (None: untargeted).
        patch_target: target of the patch (needed when ``areas`` is not empty).
        patch_kind, shape, steps, train_n: patch settings (``kind``, ... of ``attacks.on_run.patch_on_run``).
        seed: one seed for every point (None: fresh, recorded).
        split: the split the images come from.

    Returns:
        ``{"run_id", "n", "seed", "selection" (which images, in words), "points": [{"sweep": "pixels"|"area",
        "value", "label", **summary}],
        "sheets": {label: before/after PNG bytes}}``. The metrics history holds one record per point:
        ``{"sweep", "value", "success_rate", "robust_accuracy", "clean_accuracy"}``.
    """
    pixels, areas = [int(k) for k in pixels], [float(a) for a in areas]
    if not pixels and not areas:
        raise NnkitError("choose at least one pixel count or one patch area")
    if areas and patch_target is None:
        raise NnkitError("a patch sweep needs a target class")
    seed = seed_everything(seed)
    total = len(pixels) + len(areas)
    points: list[dict] = []
    sheets: dict[str, bytes] = {}

    def record(sweep: str, value: float, done: RunAttack) -> None:
        label = point_label(sweep, value)
        summary = done.summary()
        points.append({"sweep": sweep, "value": value, "label": label, **summary})
        sheets[label] = png_bytes(examples_sheet(done.report.result, done.clean, done.dataset.class_names,
                                                 mark_patches=True))
        ctx.log_metrics({"sweep": sweep, "value": value, "success_rate": summary["success_rate"],
                         "robust_accuracy": summary["robust_accuracy"], "clean_accuracy": summary["clean_accuracy"]})

    def progress(offset: int, label_of):
        def on_progress(i: int, count: int, done: int, steps_total: int) -> None:
            ctx.update((offset + i + done / max(steps_total, 1)) / total,
                       f"{label_of(i)} ({offset + i + 1} of {total}): step {done}/{steps_total}")
        return on_progress

    ctx.update(0.0, "loading the model and the images")
    if pixels:
        pixel_sweep_on_run(run_id, pixels=pixels, n=n, target=pixel_target, popsize=popsize, generations=generations,
                           split=split, seed=seed, device=ctx.device,
                           on_progress=progress(0, lambda i: point_label("pixels", pixels[i])),
                           on_result=lambda i, d: record("pixels", pixels[i], d), stop_event=ctx.stop_event)
    if areas:
        patch_area_sweep_on_run(run_id, target=patch_target, areas=areas, shape=shape, kind=patch_kind, n=n,
                                train_n=train_n, steps=steps, split=split, seed=seed, device=ctx.device,
                                on_progress=progress(len(pixels), lambda i: point_label("area", areas[i])),
                                on_result=lambda i, d: record("area", areas[i], d), stop_event=ctx.stop_event)
    # The bar ends full even when an attack had no correctly classified image to work on (no steps reported).
    ctx.update(1.0, "done")
    best = max(points, key=lambda p: p["success_rate"])
    ctx.set_summary(f"done: {len(points)} settings on {points[0]['n']} images; best success "
                    f"{best['success_rate']:.0%} ({best['label']})")
    return {"run_id": points[0]["run_id"], "n": points[0]["n"], "seed": seed, "selection": points[0]["selection"],
            "points": points, "sheets": sheets}


GRADIENT_ATTACKS = {"fgsm": "FGSM (Goodfellow et al. 2015)", "pgd": "PGD (Madry et al. 2018)",
                    "apgd": "APGD-CE (Croce & Hein 2020)"}


def min_eps_values(summary: dict) -> list[float] | None:
    """The per-image smallest ε of a summary with its infinities back: inf "not flipped", NaN "not attacked"."""
    if summary.get("min_eps") is None:
        return None
    back = {"not flipped": float("inf"), "not attacked": float("nan")}
    return [back.get(state, value) for value, state in zip(summary["min_eps"], summary["min_eps_state"], strict=True)]


def gradient_csv(summary: dict) -> str:
    """The robust-accuracy table of a gradient attack as CSV: one row per ε (label, value, robust accuracy,
    clean accuracy, success rate), then, with a min-ε search, one row per image (index, smallest ε, state:
    flipped, not flipped within the largest ε, not attacked)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["eps", "eps_value", "robust_accuracy", "clean_accuracy", "success_rate"])
    for row in summary["per_eps"]:
        w.writerow([row["eps_label"], row["eps"], row["robust_accuracy"], summary["clean_accuracy"],
                    row["success_rate"]])
    if summary.get("min_eps") is not None:
        w.writerow([])
        w.writerow(["image_index", "min_eps", "state"])
        for index, value, state in zip(summary["indices"], summary["min_eps"], summary["min_eps_state"], strict=True):
            w.writerow([index, "" if value is None else value, state])
    return buf.getvalue()


def gradient_attack_task(ctx: JobContext, run_id: str, attack: str = "pgd", eps: Sequence[float] | None = None,
                         norm: str = "linf", steps: int | None = None, alpha: float | None = None, n: int = 100,
                         target: str | int | None = None, min_eps: bool = False, seed: int | None = None,
                         split: str = "test") -> dict:
    """Robust accuracy against ε of a white-box attack on ``n`` images of a run's split: FGSM (Goodfellow
    et al. 2015), PGD (Madry et al. 2018) or APGD-CE (Croce & Hein 2020), optionally with each image's
    smallest flipping ε (bisection with PGD). Stored as a ``robust`` evaluation of the run, as the CLI does.

    Args:
        ctx: the job context (progress in gradient steps: one step is one forward and backward pass of the
            images still running).
        run_id: the classifier run.
        attack, eps, norm, steps, alpha, n, target, min_eps, seed, split: as in
            :func:`attacks.on_run.robust_on_run`.

    Returns:
        ``{"run_id", "summary" (the CLI's --json figures), "command" (the CLI line that repeats it),
        "class_names", "sheet_png" (examples at the largest ε), "csv"}``. The metrics history holds one
        record per ε: ``{"eps", "robust_accuracy", "clean_accuracy", "norm", "label"}``.
    """
    from attacks.on_run import robust_on_run
    from attacks.pgd import eps_label

    if attack not in GRADIENT_ATTACKS:
        raise NnkitError(f"unknown gradient attack {attack!r}: choose {', '.join(GRADIENT_ATTACKS)}")
    ctx.update(0.0, "loading the model and the images")

    def progress(done: int, total: int) -> None:
        ctx.update(message=f"{attack}: step {done}/{total}", done=done, total=total, unit="steps")

    def on_result(i: int, e: float, report) -> None:
        ctx.log_metrics({"eps": e, "robust_accuracy": report.robust_accuracy,
                         "clean_accuracy": report.clean_accuracy, "norm": norm, "label": attack})

    done = robust_on_run(run_id, attack=attack, eps=eps, norm=norm, steps=steps, alpha=alpha, n=n, seed=seed,
                         split=split, target=target, min_eps=min_eps, on_progress=progress,
                         stop_event=ctx.stop_event, record=True, device=ctx.device, on_result=on_result)
    ctx.update(1.0, "done")
    summary = done.summary()
    last = done.reports[-1]
    sheet = examples_sheet(last.result, done.clean, done.dataset.class_names)
    ctx.set_summary(f"done: robust accuracy {done.robust_accuracy[-1]:.1%} at ε {eps_label(done.eps[-1])} "
                    f"(clean {done.clean_accuracy:.1%}) on {done.n} images in {done.seconds:.0f} s")
    return {"run_id": done.info.run_id, "summary": summary,
            "command": done.evaluation.command if done.evaluation is not None else None,
            "class_names": list(done.dataset.class_names), "sheet_png": png_bytes(sheet), "csv": gradient_csv(summary)}
