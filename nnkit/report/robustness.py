"""The robustness section: single-pixel attack against k (Su et al. 2019) and universal patch against its
area (Brown et al. 2017), with RobustBench-style rows (threat model, clean_acc, robust_acc, queries).

Every point is ``attacks.on_run.one_pixel_on_run`` / ``patch_on_run`` through their sweeps, the same
functions ``nnkit attack one-pixel|patch`` call, so the command stored beside each point prints it again.
Under ``torchrun`` (``nnkit report`` inside :func:`nnkit.distributed.init_from_env`) every attack splits
its images over the processes and gathers them (see :mod:`attacks.base`), and the universal patch is
fitted with its gradients summed over them: the section holds the figures of one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from attacks.figures import examples_sheet, png_bytes, to_pil
from attacks.on_run import patch_area_sweep_on_run, pixel_sweep_on_run
from nnkit.plots.attack import sweep_curves
from nnkit.plots.report import per_class_success
from nnkit.report.assets import Assets, plain
from nnkit.report.commands import one_pixel_cmd, patch_cmd
from nnkit.report.settings import ReportSettings
from nnkit.runs import RunInfo

SECTION = "robustness"
PAPER_BUDGET = (400, 100)  # Su et al.: population 400, up to 100 generations
Progress = Callable[[int, int], None]


def patch_target(confusion: list[list[int]], class_names: list[str]) -> tuple[int, str]:
    """The report's default patch target: the class the model most often predicts by mistake.

    Args:
        confusion: K×K test counts, ``confusion[true][predicted]``.
        class_names: the K names.

    Returns:
        ``(class index, the reason in words)``; class 0 when the model makes no mistake.
    """
    wrong = [sum(row[p] for t, row in enumerate(confusion) if t != p) for p in range(len(class_names))]
    if max(wrong, default=0) == 0:
        return 0, "the model makes no test mistake, so the first class is the target"
    target = wrong.index(max(wrong))
    return target, f"the class the model most often predicts by mistake: {wrong[target]} test images"


def _row(attack: str, threat: str, eps: str, s: dict, cmd: str) -> dict:
    return {"attack": attack, "threat_model": threat, "eps": eps, "clean_acc": s["clean_accuracy"],
            "robust_acc": s["robust_accuracy"], "success_rate": s["success_rate"], "n_queries": s["queries_mean"],
            "n_images": s["n"], "cli": cmd}


def one_pixel_section(info: RunInfo, s: ReportSettings, assets: Assets, *, device=None, cli_device=None,
                      on_progress: Progress | None = None, stop_event: threading.Event | None = None) -> dict:
    """Single-pixel attack for each k of ``s.one_pixel_pixels`` on ``s.one_pixel_n`` test images, picked seeded
    (``s.seed``) and stratified over the classes.

    Args:
        info: the run.
        s: the report settings (budget and seed).
        assets: receives the sweep figure, the per-class figure and one before/after sheet per k.
        device: where the attack runs; cli_device: the ``--device`` of the reproducing commands.
        on_progress: (steps done, steps) over all k; stop_event: cancels.

    Returns:
        The one-pixel part of the section (settings, one result per k with the CLI's JSON, figure ids).
    """
    ks = list(s.one_pixel_pixels)
    per_k = s.one_pixel_generations + 1

    def progress(i, n, done, total):
        if on_progress is not None:
            on_progress(i * per_k + done, n * per_k)

    runs = pixel_sweep_on_run(info, pixels=ks, n=s.one_pixel_n, popsize=s.one_pixel_popsize,
                              generations=s.one_pixel_generations, seed=s.seed, device=device,
                              on_progress=progress, stop_event=stop_event)
    results, images = [], []
    for k, done in zip(ks, runs):
        summary = plain(done.summary())
        cmd = one_pixel_cmd(info.run_id, s, k, cli_device)
        results.append({"pixels": k, "threat_model": "L0", "eps": f"{k} pixel{'s' * (k != 1)}", "cli": cmd,
                        "attack": summary})
        sheet = png_bytes(examples_sheet(done.report.result, done.clean, done.dataset.class_names))
        images.append(assets.image(f"one_pixel_examples_k{k}", sheet, title=f"Before / after, k = {k}",
                                   section=SECTION, cli=cmd.replace("--json", "--out one-pixel-out"),
                                   caption=f"Up to 8 attacked test images, fooled ones first: clean (left) and "
                                   f"with {k} pixel{'s' * (k != 1)} changed (right, outlined in red)."))
    points = [{"sweep": "pixels", "value": r["pixels"], "success_rate": r["attack"]["success_rate"],
               "robust_accuracy": r["attack"]["robust_accuracy"], "clean_accuracy": r["attack"]["clean_accuracy"]}
              for r in results]
    curve = assets.figure("one_pixel_sweep", sweep_curves(points), title="Single-pixel attack against k",
                          section=SECTION, caption="Success rate on the correctly classified images and robust "
                          "accuracy on all attacked images, against the number of pixels changed.",
                          cli=results[0]["cli"])
    by_class = assets.figure("one_pixel_per_class",
                             per_class_success({f"k = {r['pixels']}": r["attack"]["per_class"] for r in results}),
                             title="Single-pixel success per class", section=SECTION,
                             caption="Share of the correctly classified images of each true class that the attack "
                             "fooled, per k.")
    pop, gens = s.one_pixel_popsize, s.one_pixel_generations
    return {
        "paper": "Su, Vargas & Sakurai, One pixel attack for fooling deep neural networks, IEEE TEVC 2019",
        "threat_model": "L0: k pixels take any colour",
        "settings": {"pixels": ks, "n": s.one_pixel_n, "split": "test", "images": runs[0].extra["selection"],
                     "popsize": pop, "generations": gens, "seed": s.seed,
                     "max_queries_per_image": pop * (gens + 1),
                     "paper_budget": {"popsize": PAPER_BUDGET[0], "generations": PAPER_BUDGET[1]},
                     "reduced_budget": (pop, gens) != PAPER_BUDGET},
        "results": results, "figures": [curve, by_class], "images": images,
    }


def patch_section(info: RunInfo, s: ReportSettings, confusion: list[list[int]], class_names: list[str],
                  assets: Assets, *, device=None, cli_device=None, on_progress: Progress | None = None,
                  stop_event: threading.Event | None = None) -> dict:
    """Universal patch for each area of ``s.patch_areas``: fitted on training images, tested on held-out ones.

    Args:
        info: the run.
        s: the report settings.
        confusion, class_names: the clean test evaluation (picks the target when ``s.patch_target`` is None).
        assets: receives the sweep figure, the example sheet and the patch of the headline area.
        device, cli_device, on_progress, stop_event: as in :func:`one_pixel_section`.

    Returns:
        The patch part of the section.
    """
    if s.patch_target is not None:
        target, why = s.patch_target, "chosen in the report settings"
    else:
        target, why = patch_target(confusion, class_names)
    areas = [float(a) for a in s.patch_areas]

    def progress(i, n, done, total):
        if on_progress is not None and total:
            on_progress(i * 1000 + min(1000, int(1000 * done / total)), n * 1000)

    runs = patch_area_sweep_on_run(info, target=target, areas=areas, shape=s.patch_shape, kind="universal",
                                   n=s.patch_n, train_n=s.patch_train_n, steps=s.patch_steps, seed=s.seed,
                                   device=device, on_progress=progress, stop_event=stop_event)
    results = []
    for area, done in zip(areas, runs):
        results.append({"area": area, "threat_model": "patch", "eps": f"{area:.0%} of the image",
                        "cli": patch_cmd(info.run_id, s, area, target, cli_device), "attack": plain(done.summary())})
    # The headline patch: the smallest area that reaches the target on half of the images, else the largest.
    best = next((i for i, r in enumerate(results) if (r["attack"]["success_rate"] or 0) >= 0.5), len(results) - 1)
    done, area = runs[best], areas[best]
    name = class_names[target] if target < len(class_names) else str(target)
    cli = results[best]["cli"].replace("--json", "--out patch-out")
    sheet = assets.image("patch_examples", png_bytes(examples_sheet(done.report.result, done.clean, class_names,
                                                                    mark_patches=True)),
                         title=f"Before / after, patch of {area:.0%}", section=SECTION, cli=cli,
                         caption=f"Held-out images with the universal patch ({area:.0%} of the image, target "
                         f"{name}) pasted at a random place (outlined in red).")
    patch = assets.image("patch", png_bytes(to_pil(done.attack.patch, done.attack.mask)),
                         title=f"The universal patch ({area:.0%})", section=SECTION, cli=cli,
                         caption=f"The patch optimised to make the model answer {name}.")
    points = [{"sweep": "area", "value": r["area"], "success_rate": r["attack"]["success_rate"],
               "robust_accuracy": r["attack"]["robust_accuracy"], "clean_accuracy": r["attack"]["clean_accuracy"]}
              for r in results]
    curve = assets.figure("patch_sweep", sweep_curves(points), title="Universal patch against its area",
                          section=SECTION, caption=f"Targeted success (the model answers {name}) on held-out images "
                          "not of the target class, and robust accuracy, against the patch area.",
                          cli=results[0]["cli"])
    return {
        "paper": "Brown, Mané, Roy, Abadi & Gilmer, Adversarial Patch, arXiv:1712.09665, 2017",
        "threat_model": "patch: a square or circle of any content pasted anywhere, rotated and scaled",
        "settings": {"kind": "universal", "areas": areas, "shape": s.patch_shape, "target": target,
                     "target_name": name, "target_reason": why, "n": s.patch_n, "train_n": s.patch_train_n,
                     "steps": s.patch_steps, "seed": s.seed, "split": "test", "images": runs[0].extra["selection"],
                     "train_images": runs[0].extra["train_selection"]},
        "results": results, "headline_area": area, "figures": [curve], "images": [sheet, patch],
    }


def leaderboard(one_pixel: dict | None, patch: dict | None) -> list[dict]:
    """RobustBench-style rows (``clean_acc``, ``robust_acc``, threat model, queries) of every attack point."""
    rows = []
    for r in (one_pixel or {}).get("results", []):
        rows.append(_row(f"one-pixel (k = {r['pixels']})", r["threat_model"], r["eps"], r["attack"], r["cli"]))
    for r in (patch or {}).get("results", []):
        rows.append(_row(f"universal patch ({r['area']:.0%})", r["threat_model"], r["eps"], r["attack"], r["cli"]))
    return rows
