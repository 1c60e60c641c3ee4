"""The explanations section: a saliency grid, the confounding check with its verdict and evidence, and the
sanity checks of the attribution methods.

The calls are the CLI's (``nnkit explain``, ``nnkit confounding``, ``nnkit sanity``): the same image draw
(``choose_images``), the same library functions and defaults, so the stored commands print the same figures.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from nnkit.confounding import cascading_randomization, check_dataset, control_masks, faithfulness, select_images
from nnkit.data.base import Dataset
from nnkit.data.select import describe_selection
from nnkit.errors import NnkitError
from nnkit.plots.explain import deletion_insertion_curves, randomisation_curves, relevance_ratio_bars
from nnkit.report.assets import Assets, plain
from nnkit.report.commands import confounding_cmd, explain_cmd, sanity_cmd
from nnkit.report.settings import ReportSettings
from nnkit.runs import RunInfo, load_run_data
from nnkit.saliency import render_grid_png
from nnkit.saliency.grid import choose_images, explain_grid

SECTION = "explanations"
CONFOUNDED_VARIANT = {"shapes": "shapes-confounded"}  # clean dataset → its variant with a planted, masked confounder
Progress = Callable[[int, int], None]


def saliency_section(info: RunInfo, dataset: Dataset, model: torch.nn.Module, s: ReportSettings, assets: Assets,
                     *, device=None, cli_device=None, on_progress: Progress | None = None,
                     stop_event: threading.Event | None = None) -> dict:
    """Saliency maps of a few test images (each method explains the predicted class), as ``nnkit explain`` draws them.

    Returns:
        Settings, the rows' ``true→predicted`` titles, the images' accuracy and the grid's image id.
    """
    chosen, idx = choose_images(dataset.split("test"), s.saliency_n, s.seed)
    selection = describe_selection(dataset.split("test").labels, idx, s.seed)
    grid = explain_grid(model, chosen.images, chosen.labels, dataset.class_names, list(s.saliency_methods),
                        "predicted", batch_size=64, device=device, seed=s.seed, on_progress=on_progress,
                        stop_event=stop_event)
    cmd = explain_cmd(info.run_id, s, cli_device)
    image = assets.image("saliency_grid", render_grid_png(grid.images, grid.maps, row_titles=grid.rows),
                         title="Saliency grid",
                         section=SECTION, cli=cmd, caption="One row per test image (first column), then where each "
                         "attribution method finds the evidence for the predicted class (bright: more relevant). "
                         "Each row is labelled true class → predicted class.")
    return {"settings": {"n": len(idx), "indices": idx, "seed": s.seed, "selection": selection,
                         "methods": grid.methods, "target": "predicted", "split": "test"},
            "rows": grid.rows, "accuracy": grid.accuracy, "cli": cmd, "images": [image]}


def confounding_data(info: RunInfo, dataset: Dataset, mask_box: str | None = None) -> tuple[Dataset | None, str | None, str]:
    """The data a confounding check of this run uses.

    Args:
        info, dataset: the run and its own data.
        mask_box: the suspected confounder named by the user (``--mask-box``), or None.

    Returns:
        ``(dataset or None, the --data name or None, why)``: the run's own data with the user's box when one
        is given; the run's own data when it carries confounder masks; its confounded variant (e.g.
        ``shapes-confounded`` for a ``shapes`` run) otherwise; None with the reason when none of these exists.
    """
    if mask_box is not None:
        return dataset, None, f"the run's own data ({dataset.name}) with the box given with --mask-box"
    if any(split.masks is not None and bool(split.masks.any()) for split in dataset.splits.values()):
        return dataset, None, f"the run's own data ({dataset.name}) carries the confounder masks"
    variant = CONFOUNDED_VARIANT.get(dataset.name)
    if variant is not None:
        try:
            other = load_run_data(info, variant)
        except NnkitError as exc:
            return None, None, f"the confounded variant {variant} does not fit this run ({exc})"
        return other, variant, (f"the run was trained on clean {dataset.name}; it is checked on the tagged images "
                                f"of {variant}, whose tags it never saw (a check of the check: expect no evidence)")
    return None, None, (f"{dataset.name} has no confounder masks and no confounded variant: name a suspected region "
                        f"with `python -m nnkit report {info.run_id} --mask-box x0,y0,x1,y1` (or `python -m nnkit "
                        f"confounding {info.run_id} --mask-box x0,y0,x1,y1`), in pixels of your images")


BOX_EXAMPLES = 4  # images on the report's picture of the box


def _box_sheet(images: torch.Tensor, masks: torch.Tensor, control: torch.Tensor | None) -> bytes:
    """A few model-input images side by side with the region outlined (and the control region in grey)."""
    from PIL import Image, ImageDraw

    from attacks.figures import ZOOM, png_bytes, to_pil
    from nnkit.confounding.box import box_of

    tiles = []
    for i in range(min(BOX_EXAMPLES, images.shape[0])):
        tile = to_pil(images[i]).convert("RGB")
        draw = ImageDraw.Draw(tile)
        for mask, colour, width in ((control, "#9a9a9a", 2), (masks, "#00CC96", 3)):
            box = box_of(mask[i]) if mask is not None else None
            if box is not None:
                x0, y0, x1, y1 = box
                draw.rectangle([x0 * ZOOM, y0 * ZOOM, x1 * ZOOM - 1, y1 * ZOOM - 1], outline=colour, width=width)
        tiles.append(tile)
    gap = 8
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for tile in tiles:
        sheet.paste(tile, (x, 0))
        x += tile.width + gap
    return png_bytes(sheet)


def confounding_section(info: RunInfo, dataset: Dataset, model: torch.nn.Module, s: ReportSettings,
                        assets: Assets, *, device=None, cli_device=None, on_progress: Progress | None = None,
                        stop_event: threading.Event | None = None) -> dict:
    """The confounding check (``nnkit.confounding.check_dataset``) with its verdict and evidence, or why it was skipped.

    Returns:
        ``{"status": "done", ...ConfoundingReport.to_dict(), "cli", "figures", "images"}`` or
        ``{"status": "skipped", "skip_reason"}``.
    """
    data, data_name, why = confounding_data(info, dataset, s.confounding_mask_box)
    if data is None:
        return {"status": "skipped", "skip_reason": why}
    images, masks, labels, chosen = select_images(data, mask_box=s.confounding_mask_box, n=s.confounding_n,
                                                  seed=s.seed)
    report = check_dataset(model, data, mask_box=s.confounding_mask_box, n=s.confounding_n, seed=s.seed,
                           methods=list(s.confounding_methods), batch_size=64, device=device, on_progress=on_progress,
                           stop_event=stop_event)
    out = plain(report.to_dict())
    cmd = confounding_cmd(info.run_id, data_name, s, cli_device)
    mask = (out["info"].get("box") or {}).get("text", out["info"].get("mask"))
    fig = assets.figure("confounding_mass", relevance_ratio_bars(out["methods"], report.thresholds.mass_ratio),
                        title="Relevance inside the suspected confounder", section=SECTION, cli=cmd,
                        caption=f"Relevance mass inside the mask ({mask}) over the mask's share "
                        "of the image, per method; 1× is what the region's size alone would get.")
    control, how = control_masks(masks)
    image = assets.image("confounding_box", _box_sheet(images, masks, control), title="The suspected confounder",
                         section=SECTION, cli=cmd, caption=f"The region checked ({mask}), outlined "
                         "in green on the first images of the check as the model sees them" +
                         (f"; grey: the control region of the erasure test ({how})." if control is not None
                          else "."))
    return {"status": "done", "data_choice": why, "cli": cmd, **out, "figures": [fig], "images": [image]}


def sanity_section(info: RunInfo, dataset: Dataset, model: torch.nn.Module, s: ReportSettings, assets: Assets,
                   *, device=None, cli_device=None, on_progress: Progress | None = None,
                   stop_event: threading.Event | None = None) -> dict:
    """Cascading randomisation (Adebayo et al. 2018) and deletion / insertion AUC (Petsiuk et al. 2018),
    as ``nnkit sanity`` computes them on the same images.

    Returns:
        ``{"randomisation": SanityReport.to_dict(), "faithfulness": FaithfulnessReport.to_dict(), "cli", "figures"}``.
    """
    chosen, _ = choose_images(dataset.split("test"), s.sanity_n, s.seed)
    methods = list(s.sanity_methods)
    half = (lambda d, t: on_progress(d, 2 * t)) if on_progress else None
    rest = (lambda d, t: on_progress(t + d, 2 * t)) if on_progress else None
    sanity = cascading_randomization(model, chosen.images, methods, batch_size=64, device=device, seed=s.seed,
                                     on_progress=half, stop_event=stop_event)
    faith = faithfulness(model, chosen.images, methods, steps=s.sanity_steps, batch_size=64, device=device,
                         seed=s.seed, on_progress=rest, stop_event=stop_event)
    rand, fai = plain(sanity.to_dict()), plain(faith.to_dict())
    cmd = sanity_cmd(info.run_id, s, cli_device)
    curves = assets.figure("sanity_randomisation", randomisation_curves(rand), title="Randomisation sanity check",
                           section=SECTION, cli=cmd, caption="Rank correlation between the maps of the trained model "
                           "and of copies with more and more layers re-initialised; a method whose maps stay similar "
                           "does not depend on what the model learned.")
    di = assets.figure("sanity_faithfulness", deletion_insertion_curves(fai), title="Deletion and insertion",
                       section=SECTION, cli=cmd, caption="Probability of the explained class as the most relevant "
                       "pixels are removed (deletion) or restored (insertion), against a random order.")
    return {"split": "test", "randomisation": rand, "faithfulness": fai, "cli": cmd, "figures": [curves, di]}
