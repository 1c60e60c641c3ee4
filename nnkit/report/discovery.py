"""The shortcut discovery section: spectral relevance analysis (SpRAy; Lapuschkin et al. 2019, "Unmasking Clever
Hans predictors and assessing what machines really learn", Nat. Commun. 10, 1096) over every class of the test split.

The call is the CLI's (``nnkit discover RUN --all``): the same seeded, stratified images per class, the same
library function and defaults, so the stored command prints the same clusters, boxes and scores. A candidate
region is a suspicion, not a verdict: each one comes with the ``nnkit confounding --mask-box BOX --class C``
command that proves or clears it (the check ``nnkit discover --check`` runs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import torch

from nnkit.data.base import Dataset
from nnkit.report.assets import Assets, plain
from nnkit.report.commands import discover_cmd
from nnkit.report.settings import ReportSettings
from nnkit.runs import RunInfo

SECTION = "discovery"
PAPER = ("Spectral relevance analysis, SpRAy (Lapuschkin et al. 2019, \"Unmasking Clever Hans predictors and "
         "assessing what machines really learn\", Nature Communications 10, 1096)")
PASS_COLOUR, FAIL_COLOUR = "#00CC96", "#9a9a9a"  # a candidate's box; the best region that is not one
Progress = Callable[[int, int], None]


def eigengap(eigenvalues: list[float], k: int) -> float | None:
    """The gap ``λ_{k+1} - λ_k`` that chose k clusters (von Luxburg 2007), or None when there is no λ_{k+1}."""
    return float(eigenvalues[k] - eigenvalues[k - 1]) if 1 <= k < len(eigenvalues) else None


def _spectra_figure(found):
    """The eigenvalue spectrum of every class in one plot, the chosen k of each marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for d in found:
        ev = d.eigenvalues
        fig.add_trace(go.Scatter(x=list(range(1, len(ev) + 1)), y=ev, mode="lines+markers", name=d.class_name,
                                 hovertemplate=f"{d.class_name}: λ%{{x}} = %{{y:.4f}} (k = {d.n_clusters})"
                                               "<extra></extra>"))
    fig.update_xaxes(title="i", dtick=1)
    fig.update_yaxes(title="λ_i of the normalised Laplacian", rangemode="tozero")
    return fig.update_layout(height=360, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                             legend=dict(title="class"))


def _prototype_sheet(found) -> bytes:
    """Per class, the best-ranked cluster's prototype (mean map over its mean image) with its box drawn: green
    for a candidate confounder, grey for a region that failed the rules; the class name under each tile."""
    from PIL import Image, ImageDraw

    from attacks.figures import ZOOM, png_bytes, to_pil
    from nnkit.saliency.figures import blend

    tiles = []
    for d in found:
        best = d.candidates[0]
        region = next(r for r in d.regions if r.cluster == best.cluster)
        mean = region.mean_image if region.mean_image is not None else torch.zeros(3, *region.prototype.shape)
        tile = to_pil(blend(mean[None], region.prototype[None], 0.6)[0]).convert("RGB")
        x0, y0, x1, y1 = best.box
        label = Image.new("RGB", (tile.width, tile.height + 16), "white")
        label.paste(tile, (0, 0))
        draw = ImageDraw.Draw(label)
        draw.rectangle([x0 * ZOOM, y0 * ZOOM, x1 * ZOOM - 1, y1 * ZOOM - 1],
                       outline=PASS_COLOUR if best.passed else FAIL_COLOUR, width=3)
        draw.text((2, tile.height + 2), d.class_name[:40], fill="black")
        tiles.append(label)
    gap, cols = 8, min(5, len(tiles))
    rows = -(-len(tiles) // cols)
    w, h = tiles[0].width, tiles[0].height
    sheet = Image.new("RGB", (cols * w + gap * (cols - 1), rows * h + gap * (rows - 1)), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % cols) * (w + gap), (i // cols) * (h + gap)))
    return png_bytes(sheet)


def discovery_section(info: RunInfo, dataset: Dataset, model: torch.nn.Module, s: ReportSettings, assets: Assets,
                      *, device=None, cli_device=None, on_progress: Progress | None = None,
                      stop_event: threading.Event | None = None) -> dict:
    """SpRAy on ``s.discovery_n`` test images of every class, as ``nnkit discover RUN --all --json`` computes it.

    Args:
        info, dataset, model: the run, its data and its classifier.
        s: the report settings (``discovery_n``, ``discovery_method``, ``seed``; the pointers' check uses
            ``confounding_methods``).
        assets: where the figure and the image go.
        device, cli_device: where the maps are computed; the ``--device`` of the stored commands.
        on_progress: (maps done, total); stop_event: when set, stops before the next batch (``Cancelled``).

    Returns:
        ``{"paper", "split", "method", "n", "seed", "rules", "rules_text", "cli", "classes", "candidates",
        "figures", "images"}``; each class is ``ClassDiscovery.to_dict()`` (what the CLI prints, without its
        timing) plus ``eigengap``, ``check_box`` and ``check_cli`` (the confounding command for a candidate).
    """
    from nnkit.discover import box_for_check, discover_dataset
    from nnkit.discover.run import check_command

    found = discover_dataset(model, dataset, split="test", n=s.discovery_n, seed=s.seed, method=s.discovery_method,
                             batch_size=64, device=device, on_progress=on_progress, stop_event=stop_event)
    cmd = discover_cmd(info.run_id, s, cli_device)
    classes = []
    for d in found:
        row = {k: v for k, v in d.to_dict().items() if k != "seconds"}
        top = d.top
        box = box_for_check(top.box, dataset) if top is not None else None
        check = None
        if top is not None:
            check = check_command(info.run_id, box, [d.class_name], seed=s.seed, methods=s.confounding_methods,
                                  extra=["--device", cli_device] if cli_device else None)
        classes.append({**row, "eigengap": eigengap(d.eigenvalues, d.n_clusters), "check_box": box,
                        "check_cli": check})
    method = found[0].method
    fig = assets.figure("discovery_eigengap", _spectra_figure(found), title="Eigengap of each class", section=SECTION,
                        cli=cmd, caption="The smallest eigenvalues of each class's normalised graph Laplacian over "
                        "its attribution maps; the number of clusters k is where the largest gap λ_{k+1} − λ_k "
                        "falls (k well-separated groups of maps give k eigenvalues near 0, then a jump).")
    image = assets.image("discovery_prototypes", _prototype_sheet(found), title="Where each class's relevance "
                         "concentrates", section=SECTION, cli=cmd, caption="Per class, the best-ranked cluster's "
                         "prototype (its mean map over its mean image, bright: more relevant) with the found box: "
                         "green when it is a candidate confounder, grey when it failed the rules.")
    return plain({"paper": PAPER, "split": "test", "method": method, "n": s.discovery_n, "seed": s.seed,
                  "rules": found[0].rules.to_dict(), "rules_text": found[0].rules.describe(), "cli": cmd,
                  "classes": classes, "candidates": sum(c["top_candidate"] is not None for c in classes),
                  "figures": [fig], "images": [image]})
