"""Plotly figure builders for the generative pages (GAN, style transfer): records in, figure out.

The same conventions as ``nnkit.plots``: plain dicts or numbers in, a figure returned, never shown,
nothing Streamlit. They read both the live metrics of a job (``nnkit.jobs.generative_tasks``) and
the ``metrics.jsonl`` of a finished run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from nnkit.plots.theme import LAYOUT, empty_figure

D_COLOUR = "#636EFA"  # the discriminator's curves
G_COLOUR = "#EF553B"  # the generator's curves
REAL_COLOUR = "#00CC96"  # D(x) and the real images' reference lines
FAKE_COLOUR = "#AB63FA"  # D(G(z))
_FAINT = 0.35  # opacity of per-batch lines under the per-epoch means


def gan_curves(metrics: Sequence[Mapping], height: int = 320) -> go.Figure:
    """The adversarial game of one GAN training: losses and the discriminator's outputs.

    Args:
        metrics: records in time order. Batch records (``{"batch": True, "step", "d_loss", "g_loss",
            "d_x", "d_g_z"}``, as ``gan_task`` logs them) draw faint lines; epoch records (those keys
            without ``batch``, as in a GAN run's metrics.jsonl) draw the per-epoch means with markers.
            Other records (sample grids, scores only) are ignored.

    Returns:
        Two panels over GAN steps: D and G loss (left; Goodfellow et al. 2014's non-saturating
        G loss), mean D(x) on real and D(G(z)) on generated images (right, in [0, 1]). At the game's
        equilibrium D(x) = D(G(z)) = 1/2 (Goodfellow et al. 2014, Prop. 2).
    """
    batches = [m for m in metrics if m.get("batch") and "d_loss" in m]
    epochs = [m for m in metrics if not m.get("batch") and "d_loss" in m]
    if not batches and not epochs:
        return empty_figure("waiting for the first GAN steps…", height)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "discriminator output"), horizontal_spacing=0.08)
    series = (("d_loss", "D loss", D_COLOUR, 1), ("g_loss", "G loss", G_COLOUR, 1),
              ("d_x", "D(x) real", REAL_COLOUR, 2), ("d_g_z", "D(G(z)) generated", FAKE_COLOUR, 2))
    for key, name, colour, col in series:
        if batches:
            fig.add_trace(go.Scatter(x=[m["step"] for m in batches], y=[m.get(key) for m in batches], mode="lines",
                                     name=f"{name} (batch)", line=dict(color=colour, width=1), opacity=_FAINT,
                                     showlegend=not epochs), row=1, col=col)
        if epochs:
            fig.add_trace(go.Scatter(x=[m.get("step", m.get("epoch")) for m in epochs], y=[m.get(key) for m in epochs],
                                     mode="lines+markers", name=name, line=dict(color=colour)), row=1, col=col)
    fig.add_hline(y=0.5, line=dict(color="grey", dash="dot", width=1), row=1, col=2)
    fig.update_xaxes(title_text="step")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    return fig.update_layout(height=height, **LAYOUT)


def gan_quality(metrics: Sequence[Mapping], reference: Mapping | None = None, height: int = 300) -> go.Figure:
    """Sample quality per epoch, in the judge classifier's feature space (see ``nnkit.gan.metrics``).

    Args:
        metrics: records; those with ``frechet_distance`` (scored epochs: ``epoch``, ``inception_score``,
            ``class_coverage``, ``confident_share``, ``class_counts``) are drawn, others ignored.
        reference: the judge's scores of the real test images (a GAN run's ``meta["judge"]["real_images"]``:
            ``inception_score``, ``classes_covered``, ``confident_share``), drawn as dashed lines: the
            ceiling a perfect generator reaches.

    Returns:
        Three panels over epochs: Fréchet distance (Heusel et al. 2017; lower is better), inception
        score (Salimans et al. 2016; higher is better), class coverage and confident share (0..1).
    """
    scored = [m for m in metrics if "frechet_distance" in m]
    if not scored:
        return empty_figure("waiting for the first scored epoch…", height)
    x = [m.get("epoch") for m in scored]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07,
                        subplot_titles=("Fréchet distance ↓", "inception score ↑", "class coverage ↑"))
    fig.add_trace(go.Scatter(x=x, y=[m["frechet_distance"] for m in scored], mode="lines+markers",
                             name="Fréchet distance", line=dict(color=G_COLOUR)), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[m.get("inception_score") for m in scored], mode="lines+markers",
                             name="inception score", line=dict(color=D_COLOUR)), row=1, col=2)
    fig.add_trace(go.Scatter(x=x, y=[m.get("class_coverage") for m in scored], mode="lines+markers",
                             name="classes covered", line=dict(color=FAKE_COLOUR)), row=1, col=3)
    fig.add_trace(go.Scatter(x=x, y=[m.get("confident_share") for m in scored], mode="lines+markers",
                             name="confidently labelled", line=dict(color=FAKE_COLOUR, dash="dot")), row=1, col=3)
    if reference:
        real = dict(color=REAL_COLOUR, dash="dash", width=1)
        if "inception_score" in reference:
            fig.add_hline(y=reference["inception_score"], line=real, row=1, col=2,
                          annotation_text="real images", annotation_position="bottom right")
        num_classes = len(scored[-1].get("class_counts") or [])
        if "classes_covered" in reference and num_classes:
            fig.add_hline(y=reference["classes_covered"] / num_classes, line=real, row=1, col=3)
        if "confident_share" in reference:
            fig.add_hline(y=reference["confident_share"], line=dict(real, dash="dot"), row=1, col=3,
                          annotation_text="real images", annotation_position="bottom right")
    fig.update_xaxes(title_text="epoch", dtick=1 if len(x) <= 12 else None)  # no "epoch 1.5" ticks
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=3)
    return fig.update_layout(height=height, **LAYOUT)


def style_curves(metrics: Sequence[Mapping], height: int = 300) -> go.Figure:
    """The losses of one style transfer (Gatys et al. 2016) over loss evaluations, on a log scale.

    Args:
        metrics: records ``{"step", "loss", "content", "style", "tv"}`` (a style job's live metrics or a
            style run's metrics.jsonl); others (preview images) are ignored.

    Returns:
        One panel: the weighted total and the unweighted, normalised content, style and TV losses.
    """
    records = [m for m in metrics if "loss" in m and "step" in m]
    if not records:
        return empty_figure("waiting for the first optimisation steps…", height)
    fig = go.Figure()
    x = [m["step"] for m in records]
    for key, name, colour, dash in (("loss", "total (weighted)", "black", "solid"),
                                    ("content", "content", D_COLOUR, "solid"), ("style", "style", G_COLOUR, "solid"),
                                    ("tv", "total variation", REAL_COLOUR, "dot")):
        ys = [m.get(key) for m in records]
        if any(y is not None and y > 0 for y in ys):  # a log axis cannot show an all-zero curve
            fig.add_trace(go.Scatter(x=x, y=ys, mode="lines", name=name, line=dict(color=colour, dash=dash)))
    fig.update_xaxes(title_text="step (loss evaluations)")
    fig.update_yaxes(type="log", title_text="loss")
    return fig.update_layout(height=height, **LAYOUT)
