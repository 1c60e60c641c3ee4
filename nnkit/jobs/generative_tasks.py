"""Job functions of the generative pages (GAN, style transfer) and the small readers their results need.

Like ``nnkit.jobs.tasks``: a job takes the JobContext first, passes ``ctx.stop_event`` and ``ctx.device``
on to one library call (``nnkit.gan.train_gan``, ``nnkit.style.stylise``), turns its progress events into
``ctx.update``/``ctx.log_metrics`` and returns a small dict with the run id; the result is a run in the
store (kind "gan" or "style"). Live pictures travel in the job's metrics as PNG bytes: the latest sample
grid of a GAN (``{"epoch", "grid_png"}``) and the current image of a style transfer (``{"step",
"preview_png"}``), a few seconds apart, so a job's memory stays small. Nothing here imports Streamlit.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
import tempfile
import time
import zipfile
from pathlib import Path

import torch
from PIL import Image

from nnkit.errors import NnkitError
from nnkit.jobs.manager import JobContext
from nnkit.runs import RunInfo, RunStore

MAX_CURVE_POINTS = 300  # batch records kept per job: enough for a smooth live curve
GRID_SECONDS = 5.0  # a live GAN sample grid at most this often ...
PREVIEW_SECONDS = 2.0  # ... a live style preview at most this often ...
MAX_LIVE_PICTURES = 30  # ... and more rarely in long jobs, so about this many pictures per job
PREVIEW_EVERY = 5  # style steps between the preview images the library hands out (a cheap copy)
JUDGE_SHARE = 0.1  # share of the progress bar for training the judge classifier, when one is trained
GRID_KINDS = ("samples", "interpolation", "classes")
STYLE_OUTPUT, STYLE_CONTENT, STYLE_STYLE = "output.png", "content.png", "style.png"


class _Throttle:
    """Says when a job should log its next live picture: the first and the last at once, the others at least
    ``seconds`` apart and at least 1/``MAX_LIVE_PICTURES`` of the time so far, so a long job holds about
    ``MAX_LIVE_PICTURES`` of them (a few MB) rather than one per step."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.perf_counter()
        self.last: float | None = None

    def due(self, last: bool = False) -> bool:
        now = time.perf_counter()
        wait = max(self.seconds, (now - self.start) / MAX_LIVE_PICTURES)
        if self.last is None or last or now - self.last >= wait:
            self.last = now
            return True
        return False


# -- GAN ----------------------------------------------------------------------------------------
def default_gan_dataset() -> str:
    """``mnist`` when its files are on disk (no download needed), else the generated ``shapes``."""
    from nnkit.paths import data_root

    return "mnist" if (data_root() / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file() else "shapes"


def gan_task(ctx: JobContext, config) -> dict:
    """Train a DCGAN (Radford et al. 2016) as a job: live losses, scores and sample grids, cancel within a step.

    Args:
        ctx: the job context; ``ctx.device`` overrides ``config.device``.
        config: a ``nnkit.gan.GanConfig`` (or its dict); it is copied, never changed. With ``resume`` set the
            job continues that stopped run (``nnkit.gan.train.continue_config``).

    With a time limit the progress bar is the larger of the share of steps done and the share of the limit
    used, counted from the job's start: the judge's training is inside the budget and moves the bar. The units
    reported (for the bar's measured rate and time left) are the judge's training steps while it trains, then the
    GAN steps of this run; the message says when a time limit will stop the run.

    Returns:
        ``{"run_id", "seed", "judge_run_id", "stopped_by", "epochs_run", "epochs_done", "epochs_planned",
        "steps", "frechet_distance", "inception_score", "classes_covered", "num_classes", "seconds",
        "job_seconds", "resumable", "parent", "note"}`` (``note``: ``nnkit.gan.train.stop_note``, None when the
        planned epochs were done). The metrics history holds batch records ``{"batch": True, "step", "epoch",
        "d_loss", "g_loss", "d_x", "d_g_z"}`` (at most ~300), the epoch records of ``train_gan`` (with the
        judge's scores) and, every few seconds, ``{"epoch", "step", "grid_png"}``: the fixed-noise sample grid
        after that epoch.
    """
    from nnkit.gan import GanConfig, grid_png, train_gan
    from nnkit.gan.train import continue_config
    from nnkit.jobs.eta import format_seconds
    from nnkit.training import TrainConfig, load_data

    t0 = time.perf_counter()
    if isinstance(config, dict):
        config = GanConfig.from_dict(config)
    config = dataclasses.replace(config, device=ctx.device, data_opts=dict(config.data_opts),
                                 judge_opts=dict(config.judge_opts)).validate()
    if config.resume:  # the parent's data and networks, so the grid rows below fit
        config = continue_config(RunStore().get(config.resume), epochs=config.epochs, time_limit=config.time_limit,
                                 max_steps=config.max_steps, eval_every=config.eval_every, device=config.device,
                                 name=config.name)
    ctx.update(0.0, f"preparing {config.data} data")
    # Built first (train_gan takes it from the dataset cache): a cancel during generation acts before
    # training, and the class count gives the conditional grid its row length.
    dataset = load_data(TrainConfig(data=config.data, data_opts=dict(config.data_opts), data_root=config.data_root))
    ctx.check_cancelled()
    nrow = math.ceil(config.n_samples / dataset.num_classes) if config.conditional else None
    state = {"every": None, "judged": False, "first_step": None}
    pictures = _Throttle(GRID_SECONDS)

    def used() -> float:
        """Share of the time limit used so far (0 without one): the judge and the data count too."""
        return (time.perf_counter() - t0) / config.time_limit if config.time_limit else 0.0

    def limit_left() -> str:
        """`` · time limit in 2 min 5 s``: a run with a limit may stop before the steps the bar counts."""
        if not config.time_limit:
            return ""
        return f" · time limit in {format_seconds(max(0.0, config.time_limit - (time.perf_counter() - t0)))}"

    def on_progress(p) -> None:
        if p.kind == "judge":
            state["judged"] = True
            # The judge's own steps are the unit while it trains: its rate and time left are the judge's.
            ctx.update(min(0.99, max(JUDGE_SHARE * p.step / p.total_steps, used())),
                       f"training the judge classifier (inside the time budget) · epoch {p.epoch}/{p.epochs} · "
                       f"loss {p.loss:.3f}{limit_left()}", done=p.step, total=p.total_steps, unit="judge steps")
            return
        if state["first_step"] is None:
            state["first_step"] = p.step - 1  # a continued run starts at its parent's step count
            state["every"] = max(1, p.total_steps // MAX_CURVE_POINTS)
        start = JUDGE_SHARE if state["judged"] else 0.02
        todo = max(1, p.total_steps - state["first_step"])
        done = max((p.step - state["first_step"]) / todo, used())
        m = p.metrics
        if p.kind == "batch":
            # GAN steps (one D and one G update) of this run are the unit: the bar shows steps/s and the
            # time the planned steps take at that rate; a time limit may stop the run sooner, which the
            # message says.
            ctx.update(min(0.99, start + (0.99 - start) * done),
                       f"epoch {p.epoch}/{p.epochs} · step {p.step}/{p.total_steps} · "
                       f"D loss {m['d_loss']:.3f} · G loss {m['g_loss']:.3f}{limit_left()}",
                       done=p.step - state["first_step"], total=todo, unit="GAN steps")
            if p.step % state["every"] == 0 or p.step == 1:
                ctx.log_metrics({"batch": True, "step": p.step, "epoch": p.epoch, **m})
            return
        ctx.log_metrics(m)
        if p.samples is not None and pictures.due(last=p.epoch == p.epochs or p.step >= p.total_steps):
            ctx.log_metrics({"epoch": p.epoch, "step": p.step, "grid_png": grid_png(p.samples, nrow=nrow)})
        scores = (f" · Fréchet {m['frechet_distance']:.2f} · classes {m['classes_covered']}/{len(m['class_counts'])}"
                  if "frechet_distance" in m else "")
        ctx.update(message=f"epoch {p.epoch}/{p.epochs} done{scores}")

    result = train_gan(config, on_progress=on_progress, stop_event=ctx.stop_event)
    q = result.quality
    meta = RunStore().get(result.run_id).meta
    job_seconds = time.perf_counter() - t0
    if result.note:  # stopped early: say so plainly, with what it reached and what to do
        ctx.set_summary(f"stopped: {result.note}")
    else:
        ctx.set_summary(f"done: Fréchet distance {q.frechet_distance:.2f}, {q.classes_covered}/{q.num_classes} "
                        f"classes covered, {result.history[-1]['step']} steps in {job_seconds:.0f} s")
    return {"run_id": result.run_id, "seed": result.seed, "judge_run_id": result.judge_run_id,
            "stopped_by": result.stopped_by, "epochs_run": len(result.history), "epochs_done": meta["epochs_done"],
            "epochs_planned": meta["epochs_planned"], "steps": meta["steps"],
            "frechet_distance": q.frechet_distance, "inception_score": q.inception_score,
            "classes_covered": q.classes_covered, "num_classes": q.num_classes, "seconds": result.seconds,
            "job_seconds": job_seconds, "resumable": meta["resumable"], "parent": result.parent,
            "note": result.note}


def calibrate_gan(config) -> dict:
    """A short calibration of a GAN config on this machine now: ``nnkit.gan.train.calibrate`` on its data.

    Args:
        config: a ``nnkit.gan.GanConfig`` (its data, networks and batch size are what is timed).

    Returns:
        ``{"seconds_per_step", "steps_per_epoch", "seconds_per_epoch", "steps", "device"}``.
    """
    from nnkit.device import apply_thread_policy
    from nnkit.gan.train import calibrate
    from nnkit.training import TrainConfig, load_data

    apply_thread_policy()  # the threads a job would get now, so the time is the one a job would see
    dataset = load_data(TrainConfig(data=config.data, data_opts=dict(config.data_opts), data_root=config.data_root))
    return calibrate(config.validate(), dataset)


def gan_expectation(data: str, store: RunStore | None = None, calibration: dict | None = None) -> str:
    """What to expect from a GAN on ``data`` before starting: time per epoch here, epochs a recognisable result needs.

    Args:
        data: the dataset name the page will train on.
        store: the run store (default: ``$NNKIT_HOME/runs``).
        calibration: a ``calibrate_gan`` result, used when no GAN has run on ``data`` here yet.

    Returns:
        Plain text: the seconds per epoch of the newest GAN run on ``data`` here (its network and batch settings
        named, as measured), or of the calibration, or a line saying that nothing was measured here yet; the epoch
        at which runs here first covered ``RECOGNISABLE_SHARE`` of the classes; and the epochs the defaults needed
        on ``data`` in the measurement of ``nnkit.gan.config.MEASURED`` (with its machine), when there is one.
    """
    from nnkit.gan.config import MEASURED
    from nnkit.gan.train import RECOGNISABLE_SHARE

    runs = [r for r in (store or RunStore()).list(kind="gan") if r.meta.get("dataset", {}).get("name") == data]
    reference = MEASURED.get(data)
    tail = ""
    if reference and reference.get("epochs"):
        tail = (f" With the default settings, samples on {data} were first recognisable (≥ {RECOGNISABLE_SHARE:.0%} of "
                f"the classes covered) after {reference['epochs']} epochs in our measurement "
                f"({reference['gan_cpu_seconds'] + reference['judge_cpu_seconds']:.0f} CPU-seconds with the judge's "
                f"training; {reference['machine']}).")
    elif reference:
        tail = (f" With the default settings, samples on {data} were not yet recognisable (≥ {RECOGNISABLE_SHARE:.0%} "
                f"of the classes covered) after {reference['measured_epochs']} epochs in our measurement "
                f"({reference['gan_cpu_seconds'] + reference['judge_cpu_seconds']:.0f} CPU-seconds with the judge's "
                f"training; {reference['machine']}): plan for a longer run, or continue a stopped one.")
    if not runs:
        if calibration:
            return (f"No GAN has run on {data} on this machine yet. A calibration just now ({calibration['steps']} "
                    f"steps of the default networks) measured {calibration['seconds_per_epoch']:.0f} s per epoch "
                    f"({calibration['steps_per_epoch']:,} steps; {calibration['device']}; more when other work "
                    "shares the CPU)." + tail)
        return (f"No GAN has run on {data} on this machine yet, so there is no measured time per epoch: the job "
                "shows its rate and an estimate once the first steps are done." + tail)
    newest = runs[0]
    spe = newest.meta.get("seconds_per_epoch")
    if spe is None:  # runs made before seconds_per_epoch was recorded: the mean of their epochs' wall times
        secs = [r["seconds"] for r in newest.metrics() if isinstance(r.get("seconds"), int | float)]
        spe = sum(secs) / len(secs) if secs else None
    spec = newest.meta.get("generator", {})
    text = (f"Measured here: {spe:.1f} s per epoch on {data} (newest GAN run {newest.run_id}, generator width "
            f"{spec.get('width', '?')}; {newest.meta.get('device', '?')}; the time grows when other work shares "
            "the CPU)." if spe is not None else f"The newest GAN run on {data} recorded no epoch times.")
    reached = []
    for run in runs:
        for record in run.metrics():
            coverage = record.get("class_coverage")  # share of the classes the judge finds confidently
            if isinstance(coverage, int | float) and coverage >= RECOGNISABLE_SHARE:
                reached.append(record["epoch"])
                break
    if reached:
        text += (f" Recognisable samples (≥ {RECOGNISABLE_SHARE:.0%} of the classes covered) came after "
                 f"{min(reached)}–{max(reached)} epochs in {len(reached)} of the {len(runs)} GAN runs on {data} here.")
    else:
        text += (f" None of the {len(runs)} GAN runs on {data} here reached recognisable samples "
                 f"(≥ {RECOGNISABLE_SHARE:.0%} of the classes covered) yet.")
    return text + tail


def gan_grid(run: RunInfo, what: str = "samples", n: int = 64, steps: int = 8, seed: int | None = 0,
             spherical: bool = True, device: str | None = None) -> bytes:
    """A PNG grid drawn from a trained GAN run: samples, latent interpolations or per-class rows.

    Args:
        run: a complete run of kind "gan".
        what: "samples" (``n`` images; a conditional model cycles the classes along each row),
            "interpolation" (``n`` rows of ``steps`` images between two noise vectors; Radford et al.
            2016 §6.1, slerp after White 2016 unless ``spherical`` is False) or "classes" (one row per
            class of a conditional model, ``n`` per row, each column one shared z).
        n, steps: sizes as above.
        seed: seed of the noise (None: fresh noise).
        device: where to run the generator (None: auto).

    Returns:
        PNG bytes of the grid.
    """
    from nnkit.device import get_device
    from nnkit.gan import class_rows, grid_png, interpolate, load_gan, sample_images

    if what not in GRID_KINDS:
        raise NnkitError(f"unknown grid {what!r}: choose one of {', '.join(GRID_KINDS)}")
    gen = load_gan(run, get_device(device))
    if what == "interpolation":
        return grid_png(interpolate(gen, rows=n, steps=steps, seed=seed, spherical=spherical), nrow=steps)
    if what == "classes":
        return grid_png(class_rows(gen, per_class=n, seed=seed), nrow=n)
    return grid_png(sample_images(gen, n, seed), nrow=gen.num_classes or None)


def epoch_grids(run: RunInfo) -> dict[int, Path]:
    """The per-epoch fixed-noise sample grids of a GAN run: ``{epoch: PNG path}`` in epoch order."""
    grids = {}
    for path in sorted((run.path / "samples").glob("epoch_*.png")):
        match = re.fullmatch(r"epoch_(\d+)\.png", path.name)
        if match:
            grids[int(match.group(1))] = path
    return grids


def grids_zip(run: RunInfo) -> bytes:
    """A zip of a GAN run's per-epoch sample grids (``<run id>/epoch_NNN.png``)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in epoch_grids(run).values():
            zf.write(path, f"{run.run_id}/{path.name}")
    return buf.getvalue()


def gan_report(run: RunInfo) -> dict:
    """A GAN run's quality in one JSON-ready dict: final scores, the judge and its real-image ceiling,
    and the per-epoch history (losses, D outputs, Fréchet distance, inception score, class coverage)."""
    meta = run.meta
    return {"run_id": run.run_id, "name": run.name, "dataset": meta.get("dataset", {}).get("name"),
            "conditional": meta.get("conditional"), "seed": meta.get("seed"), "steps": meta.get("steps"),
            "stopped_by": meta.get("stopped_by"), "quality": meta.get("quality"), "judge": meta.get("judge"),
            "history": run.metrics()}


# -- style transfer -----------------------------------------------------------------------------
def default_style_size(device: str | None = None) -> int:
    """The default output size: 256 px on a GPU, 128 on a CPU (a quarter of the pixels, about a quarter of the work).

    ``nnkit.style.transfer.DEFAULT_MEASURED`` holds what the CPU default took where it was measured.
    """
    from nnkit.device import get_device

    return 256 if get_device(device).type == "cuda" else 128


def style_expectation(size: int, steps: int, store: RunStore | None = None) -> str:
    """What a style transfer of ``size`` px and ``steps`` steps can expect, from what was measured.

    Args:
        size: the output's longer side the page will use.
        steps: the loss evaluations it will do.
        store: the run store (default: ``$NNKIT_HOME/runs``).

    Returns:
        Plain text: the rate of the newest style run here at the same size (and the time ``steps`` take at that
        rate), or that none ran here at this size; then the recorded measurement of the default run with its
        machine (``nnkit.style.transfer.DEFAULT_MEASURED``).
    """
    from nnkit.jobs.eta import format_seconds
    from nnkit.style.transfer import DEFAULT_MEASURED as ref

    here = [r for r in (store or RunStore()).list(kind="style")
            if max(r.meta.get("size") or [0]) == size and r.meta.get("steps") and r.meta.get("seconds")]
    if here:
        rate = here[0].meta["steps"] / here[0].meta["seconds"]
        text = (f"Measured here by the newest {size} px style run: {rate:.2g} steps/s, so {steps} steps take about "
                f"{format_seconds(steps / rate)} if the machine is as busy as it was then.")
    else:
        text = f"No {size} px style transfer has run on this machine yet: the job shows its rate once it starts."
    return text + (f" The default ({ref['size']} px, {ref['steps']} steps, random VGG-19) took "
                   f"{ref['cpu_seconds']:.0f} CPU-seconds ({ref['wall_seconds']:.0f} s) on {ref['machine']}.")


def image_label(source: str | tuple[str, bytes]) -> str:
    """A short name for an image source: ``landscape (built-in)`` or the uploaded file's name."""
    return f"{source} (built-in)" if isinstance(source, str) else Path(source[0]).name


def read_image_source(source: str | tuple[str, bytes], size: int) -> torch.Tensor:
    """A style-transfer input: a built-in image name, or an upload as ``(file name, bytes)``.

    Args:
        source: ``landscape``, ``waves``, ``mosaic``, ``strokes``, or ``(name, bytes)`` of an image file.
        size: longer side in pixels.

    Shape:
        → 1×3×H×W in [0, 1] with max(H, W) == size (uploads keep their aspect ratio).

    Raises:
        NnkitError (one line naming the file) for bytes that are not a readable image.
    """
    from nnkit.style import builtin_image, load_image

    if isinstance(source, str):
        return builtin_image(source, size)
    name, data = source
    label = Path(name).name or "upload"
    if not data:
        raise NnkitError(f"{label}: the file is empty; upload a PNG or JPEG image")
    with tempfile.TemporaryDirectory(prefix="nnkit-upload-") as tmp:
        path = Path(tmp) / "image"
        path.write_bytes(data)
        try:
            return load_image(path, size)
        except NnkitError:
            raise NnkitError(f"{label}: not a readable image; upload a PNG or JPEG image") from None
        except Image.DecompressionBombError:
            raise NnkitError(f"{label}: the image has too many pixels to load safely") from None


def style_task(ctx: JobContext, content: str | tuple[str, bytes], style: str | tuple[str, bytes], config,
               name: str | None = None) -> dict:
    """Neural style transfer (Gatys et al. 2016) as a job: live loss curve and previews, cancel within a step.

    Args:
        ctx: the job context; ``ctx.device`` overrides ``config.device``.
        content, style: built-in image names or uploads ``(file name, bytes)`` (see ``read_image_source``).
        config: a ``nnkit.style.StyleConfig`` (or its dict); without ``preview_every`` the library hands
            out an image every ``PREVIEW_EVERY`` steps, of which one every few seconds is kept as a preview.
        name: a name for the run.

    Returns:
        ``{"run_id", "feature_network", "style_loss_reduction", "steps", "seconds", "job_seconds"}``; the run
        (kind "style") holds output.png, content.png, style.png, config.json, metrics.jsonl (one record per
        step) and meta.json (the ``StyleResult.to_dict()`` summary). The metrics history holds
        ``{"step", "loss", "content", "style", "tv"}`` (at most ~300) and ``{"step", "preview_png"}`` records.
    """
    from nnkit.style import StyleConfig, png_bytes, stylise
    from nnkit.style.transfer import loss_change

    t0 = time.perf_counter()
    if isinstance(config, dict):
        config = StyleConfig(**config)
    config = dataclasses.replace(config, device=ctx.device, preview_every=config.preview_every or PREVIEW_EVERY)
    config.validate()
    RunStore().check_new_name(name)  # the run-name rule of every job that stores a run, checked before the work
    ctx.update(0.0, "loading the images and the feature network")
    content_image, style_image = read_image_source(content, config.size), read_image_source(style, config.size)
    ctx.check_cancelled()
    every = max(1, config.steps // MAX_CURVE_POINTS)
    previews = _Throttle(PREVIEW_SECONDS)

    def on_progress(p) -> None:
        ctx.update(0.02 + 0.95 * p.step / p.steps,
                   f"step {p.step}/{p.steps} · style loss {p.style_loss:.4f} · content loss {p.content_loss:.3f}",
                   done=p.step, total=p.steps, unit="steps")
        if p.step % every == 0 or p.step == 1:
            ctx.log_metrics({"step": p.step, "loss": p.loss, "content": p.content_loss, "style": p.style_loss,
                             "tv": p.tv_loss})
        if p.image is not None and previews.due(last=p.step >= p.steps):
            ctx.log_metrics({"step": p.step, "preview_png": png_bytes(p.image)})

    result = stylise(content_image, style_image, config, on_progress=on_progress, stop_event=ctx.stop_event)
    ctx.update(0.98, "saving the run")
    info = save_style_run(result, content_image, style_image, image_label(content), image_label(style), name)
    job_seconds = time.perf_counter() - t0
    ctx.set_summary(f"done: style loss {loss_change(result.style_loss_start, result.style_loss_end)} in "
                    f"{result.steps} steps, {job_seconds:.0f} s ({result.feature_network})")
    return {"run_id": info.run_id, "feature_network": result.feature_network,
            "style_loss_reduction": result.style_loss_reduction, "steps": result.steps, "seconds": result.seconds,
            "job_seconds": job_seconds}


def save_style_run(result, content: torch.Tensor, style: torch.Tensor, content_label: str, style_label: str,
                   name: str | None = None, store: RunStore | None = None) -> RunInfo:
    """Save a ``StyleResult`` as a complete run of kind "style" (written atomically, see ``RunStore``).

    Args:
        result: the StyleResult of ``nnkit.style.stylise``.
        content, style: the input images (1×3×H×W in [0, 1]), saved beside the output.
        content_label, style_label: what the inputs were (``image_label``).
        name: a name to refer to the run by.
        store: the run store (default: ``$NNKIT_HOME/runs``).

    Returns:
        The RunInfo; meta.json holds ``StyleResult.to_dict()`` plus the labels, name and versions.
    """
    from nnkit.style import png_bytes
    from nnkit.versions import library_versions

    store = store or RunStore()
    writer = store.begin("style")
    try:
        writer.save_bytes(STYLE_OUTPUT, png_bytes(result.image))
        writer.save_bytes(STYLE_CONTENT, png_bytes(content))
        writer.save_bytes(STYLE_STYLE, png_bytes(style))
        writer.save_json("config.json", result.config.to_dict())
        for record in result.history:
            writer.log_metrics(record)
        meta = {"kind": "style", "name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "content": content_label, "style": style_label, "versions": library_versions(), **result.to_dict()}
        return writer.finish(meta)
    except BaseException:
        writer.abort()
        raise
