"""DCGAN training: ``train_gan(config, on_progress, stop_event)`` → a complete "gan" run in the store.

The loop is Radford et al. (2016) with the non-saturating generator loss of Goodfellow et al. (2014):
per step one discriminator update on a real and a generated batch (binary cross-entropy on logits),
then one generator update that maximises log D(G(z)) instead of minimising log(1 − D(G(z))), whose
gradient vanishes early in training when D rejects every sample. Both use Adam(2e-4, betas (0.5, 0.999)).

After every epoch the generator draws a fixed noise batch into a sample grid (the same z every epoch,
so the grids show the generator's progress) and a fixed evaluation batch is scored by the judge
classifier (see ``nnkit.gan.metrics``). Data stays on the device and batches are drawn by index, as in
``nnkit.training.train``.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from safetensors.torch import save as save_tensors
from torch import nn

from nnkit.data.base import Dataset
from nnkit.device import describe_device, get_device
from nnkit.errors import Cancelled, NnkitError
from nnkit.gan.config import GanConfig, judge_epochs_for
from nnkit.gan.metrics import Judge, Quality
from nnkit.gan.models import Discriminator, Generator
from nnkit.gan.sample import DISCRIMINATOR, GENERATOR, grid_png
from nnkit.runs.load import load_classifier
from nnkit.runs.store import RunInfo, RunStore, load_weights
from nnkit.seeding import seed_everything
from nnkit.training import Progress, TrainConfig, load_data, train
from nnkit.training.loop import check_finite_loss
from nnkit.versions import library_versions

FIXED_NOISE = "fixed_noise.safetensors"
JUDGE_PREFIX = "gan-judge-"


@dataclass
class GanProgress(Progress):
    """A GAN progress event.

    ``kind`` is "judge" (a step of the automatic judge's training), "batch" (every GAN step: ``loss`` is
    the generator loss, ``metrics`` holds d_loss, g_loss, d_x, d_g_z) or "epoch" (``metrics`` is the
    epoch record, with the judge's scores when scored; ``samples`` is the fixed-noise grid batch).
    """

    samples: torch.Tensor | None = field(default=None, repr=False)  # N×C×H×W in [0, 1] on CPU (epoch events)


@dataclass
class GanResult:
    """What a finished GAN training returns (the run itself is in the store)."""

    run_id: str
    seed: int
    seconds: float  # everything, judge training included
    train_seconds: float  # the GAN loop with its per-epoch scoring
    history: list[dict]  # one record per epoch (also in metrics.jsonl)
    quality: Quality  # the final generator's scores
    judge_run_id: str
    judge_reference: dict  # the judge's scores of the real test images: the ceiling for quality
    stopped_by: str  # "epochs", "time_limit" or "max_steps"
    generator: Generator
    discriminator: Discriminator
    config: GanConfig
    parent: str | None = None  # the run this one continued
    note: str | None = None  # stop_note: what a run stopped early reached and what to do, else None

    @property
    def frechet_distances(self) -> list[float]:
        """Judge-feature Fréchet distance of every scored epoch, in order."""
        return [r["frechet_distance"] for r in self.history if "frechet_distance" in r]


def generator_spec(config: GanConfig, dataset: Dataset) -> dict:
    """Keyword arguments that rebuild the run's Generator (saved in meta.json)."""
    return {"latent_dim": config.latent_dim, "channels": dataset.in_channels, "image_size": dataset.image_size,
            "width": config.g_width, "num_classes": dataset.num_classes if config.conditional else 0,
            "embed_dim": config.embed_dim}


def discriminator_spec(config: GanConfig, dataset: Dataset) -> dict:
    """Keyword arguments that rebuild the run's Discriminator (saved in meta.json)."""
    return {"channels": dataset.in_channels, "image_size": dataset.image_size, "width": config.d_width,
            "num_classes": dataset.num_classes if config.conditional else 0}


def _fits(info: RunInfo, dataset: Dataset) -> bool:
    spec = info.meta.get("model", {})
    return (spec.get("num_classes"), spec.get("in_channels"), spec.get("image_size")) == (
        dataset.num_classes, dataset.in_channels, dataset.image_size)


def _same_model(spec: dict, config: GanConfig) -> bool:
    """Whether a classifier spec is the automatic judge's model with its options (values compared as JSON)."""
    return spec.get("name") == config.judge_model and all(
        json.dumps(spec.get(k)) == json.dumps(v) for k, v in config.judge_opts.items())


def _judge(config: GanConfig, dataset: Dataset, seed: int, device: torch.device, store: RunStore,
           on_progress: Callable[[Progress], None] | None, stop_event: threading.Event | None
           ) -> tuple[RunInfo, torch.nn.Module, bool]:
    """The judge classifier's run, the classifier on ``device``, and whether it was trained just now.

    A given ``config.judge`` must be a classifier run whose classes and image shape fit the data.
    Without one, an earlier automatic judge for the same dataset (same options, model and epochs) that
    still loads is reused, else a new one is trained with ``nnkit.training.train`` (``gan-judge-<data>``).
    """
    if config.judge:
        info = store.get(config.judge)
        if info.kind != "classifier":
            raise NnkitError(f"judge {config.judge!r} is a {info.kind} run, not a classifier")
        if not _fits(info, dataset):
            raise NnkitError(f"judge {info.run_id} was trained for other classes or image shapes than {dataset.name}")
        return info, load_classifier(info, device), False
    name = JUDGE_PREFIX + config.data.replace("folder:", "folder-")
    epochs = judge_epochs_for(config, len(dataset.split("train")))
    for info in store.list(kind="classifier"):
        ds = info.meta.get("dataset", {})
        if (info.name == name and ds.get("name") == dataset.name and (ds.get("opts") or {}) == config.data_opts
                and ds.get("root") == config.data_root and _same_model(info.meta.get("model", {}), config)
                and info.meta.get("epochs_run") == epochs and _fits(info, dataset)):
            try:
                return info, load_classifier(info, device), False
            except NnkitError:
                continue  # made by an older version of the model code: train a fresh judge

    def forward(p: Progress) -> None:
        if on_progress is not None and p.kind == "batch":
            on_progress(GanProgress("judge", p.epoch, p.epochs, p.step, p.total_steps, p.loss))

    result = train(TrainConfig(data=config.data, data_opts=dict(config.data_opts), data_root=config.data_root,
                               model=config.judge_model, model_opts=dict(config.judge_opts),
                               epochs=epochs, seed=seed, device=config.device, name=name),
                   on_progress=forward, stop_event=stop_event, store=store)
    return store.get(result.run_id), result.model.to(device).eval(), True


def _fixed_labels(n: int, num_classes: int, conditional: bool, device) -> torch.Tensor | None:
    """Labels 0..K-1 cycled (conditional), so every class is drawn equally often; None otherwise."""
    return torch.arange(n, device=device) % num_classes if conditional else None


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1 - decay)·model for the weights; batch-norm statistics are copied."""
    for e, m in zip(ema.parameters(), model.parameters()):
        e.lerp_(m, 1.0 - decay)
    for e, m in zip(ema.buffers(), model.buffers()):
        e.copy_(m)


# Files a run stopped before its planned epochs keeps so that it can be continued (safetensors and JSON only,
# read back weights-only): the raw and averaged generators, the discriminator, both Adam states, the data order
# of the epoch in progress and the RNG state.
RESUME_TENSORS = "resume_state.safetensors"
RESUME_JSON = "resume_state.json"
# What "recognisable" means on the page and in the CLI: the judge confidently finds this share of the classes
# among the samples (issue 17: >= 8 of 10 classes covered).
RECOGNISABLE_SHARE = 0.8
# A continued run keeps these settings of its parent: they define the networks, the data and the game.
_INHERITED = ("data", "data_opts", "data_root", "conditional", "latent_dim", "g_width", "d_width", "embed_dim",
              "lr", "beta1", "beta2", "ema_decay", "batch_size", "n_samples", "n_eval", "confidence",
              "judge_model", "judge_opts", "judge_epochs")
# ... and takes these from the request (how long to go on, where, under which name).
_CHANGEABLE = ("epochs", "time_limit", "max_steps", "eval_every", "device", "name")


def is_judge_run(info: RunInfo) -> bool:
    """Whether a classifier run is an automatically trained GAN judge: an auxiliary model, never the Active one."""
    return info.kind == "classifier" and (info.name or "").startswith(JUDGE_PREFIX)


def can_continue(info: RunInfo) -> bool:
    """Whether a GAN run stopped before its planned epochs and kept the state to continue from."""
    return (info.kind == "gan" and bool(info.meta.get("resumable"))
            and (info.path / RESUME_TENSORS).is_file() and (info.path / RESUME_JSON).is_file())


def continue_config(parent: RunInfo, **changes) -> GanConfig:
    """The GanConfig that continues a stopped GAN run.

    Args:
        parent: a GAN run for which ``can_continue`` holds.
        changes: any of epochs (the planned total, default the parent's), time_limit, max_steps (both for the
            new run's own work), eval_every, device, name. Everything else (data, networks, optimiser, judge,
            seed) is the parent's.

    Returns:
        The validated config, with ``resume`` set to the parent's id.
    """
    if parent.kind != "gan":
        raise NnkitError(f"run {parent.run_id} is a {parent.kind} run, not a gan")
    if not can_continue(parent):
        raise NnkitError(f"run {parent.run_id} cannot be continued: it "
                         + ("finished its planned epochs" if parent.meta.get("stopped_by") == "epochs"
                            else "kept no training state (made by an older nnkit)"))
    unknown = set(changes) - set(_CHANGEABLE)
    if unknown:
        raise NnkitError(f"a continued run keeps its parent's {', '.join(sorted(unknown))}; only "
                         f"{', '.join(_CHANGEABLE)} can change")
    base = GanConfig.from_dict(parent.read_json("config.json"))
    kept = {k: getattr(base, k) for k in _INHERITED}
    given = {k: v for k, v in changes.items() if v is not None or k in ("time_limit", "max_steps")}
    given.setdefault("epochs", parent.meta.get("epochs_planned", base.epochs))
    config = GanConfig(**kept, **given, seed=parent.meta.get("seed"), judge=parent.meta["judge"]["run_id"],
                       resume=parent.run_id).validate()
    reached = _read_resume_json(parent)["epoch"]
    if config.epochs < reached:
        raise NnkitError(f"run {parent.run_id} already reached epoch {reached}: plan at least {reached} epochs")
    return config


def _read_resume_json(info: RunInfo) -> dict:
    state = info.read_json(RESUME_JSON)
    for key in ("epoch", "batch", "step", "seen"):
        if not isinstance(state.get(key), int) or state[key] < 0:
            raise NnkitError(f"run {info.run_id}: {RESUME_JSON} is broken ({key!r} is missing or not a count)")
    return state


def _flat_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict) -> list:
    """Put an optimiser's per-parameter tensors into ``tensors`` (``prefix.i.name``); return its param groups."""
    state = opt.state_dict()
    for index, values in state["state"].items():
        for key, value in values.items():
            tensors[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    return state["param_groups"]


def _load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            index, name = key[len(prefix) + 1:].split(".", 1)
            per_param.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": per_param, "param_groups": groups})


def stop_note(meta: dict) -> str | None:
    """One plain sentence for a GAN run that stopped before its planned epochs, with what it reached and what to do.

    Args:
        meta: a GAN run's meta.json (or a job result with the same keys).

    Returns:
        e.g. "2 of 20 epochs in 180 s (time limit 180 s, judge training included); samples are not yet
        recognisable (0/10 classes covered, Fréchet distance 2915) — raise the limit or continue training",
        or None when the run did its planned epochs.
    """
    stopped_by = meta.get("stopped_by")
    if stopped_by not in ("time_limit", "max_steps"):
        return None
    quality = meta.get("quality") or {}
    covered, classes = quality.get("classes_covered"), len(quality.get("class_counts") or [])
    limit = (f"time limit {meta.get('time_limit'):g} s, judge training included" if stopped_by == "time_limit"
             else f"step limit of {meta.get('max_steps')}")
    text = (f"{meta.get('epochs_done', 0)} of {meta.get('epochs_planned', '?')} epochs in "
            f"{meta.get('seconds', 0):.0f} s ({limit})")
    if isinstance(covered, int) and classes:
        fd = quality.get("frechet_distance")
        scores = f"{covered}/{classes} classes covered" + (f", Fréchet distance {fd:.0f}" if fd is not None else "")
        if covered >= RECOGNISABLE_SHARE * classes:
            return f"{text}; samples are recognisable ({scores}) — continue training to refine them"
        what = "raise the limit or continue training" if stopped_by == "time_limit" else "continue training"
        return f"{text}; samples are not yet recognisable ({scores}) — {what}"
    return f"{text} — continue training to finish the planned epochs"


def calibrate(config: GanConfig, dataset: Dataset, steps: int = 6, device: str | torch.device | None = None
              ) -> dict:
    """Time a few steps of ``config``'s networks on ``dataset`` here and now: the seconds per epoch to expect.

    The steps are the training loop's (one discriminator and one generator update on a real and a generated
    batch, Radford et al. 2016) on fresh networks, after one untimed warm-up step; nothing is saved. The time is
    wall-clock, so it includes what other work on the machine takes from this process at the moment.

    Args:
        config: the GanConfig to be run (networks, batch size, Adam settings).
        dataset: its data (image shape and training-set size).
        steps: steps timed (each costs about as much as a training step).
        device: where to run (None: ``config.device`` or auto).

    Returns:
        ``{"seconds_per_step", "steps_per_epoch", "seconds_per_epoch", "steps", "device"}``.
    """
    dev = get_device(device or config.device)
    x = dataset.split("train").images
    batch = min(config.batch_size, len(x))
    gen = Generator(**{**generator_spec(config, dataset), "num_classes": 0}).to(dev)
    disc = Discriminator(**{**discriminator_spec(config, dataset), "num_classes": 0}).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    real = x[:batch].to(dev).mul(2).sub(1)
    ones, zeros = torch.ones(batch, device=dev), torch.zeros(batch, device=dev)

    def step() -> None:
        fake = gen(torch.randn(batch, config.latent_dim, device=dev))
        loss_d = (F.binary_cross_entropy_with_logits(disc(real), ones)
                  + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        loss_g = F.binary_cross_entropy_with_logits(disc(fake), ones)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()

    step()  # first-call costs (allocation, kernel choice) are not a training step's
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(max(1, int(steps))):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    per_step = (time.perf_counter() - t0) / max(1, int(steps))
    steps_per_epoch = max(1, len(x) // batch)
    return {"seconds_per_step": per_step, "steps_per_epoch": steps_per_epoch,
            "seconds_per_epoch": per_step * steps_per_epoch, "steps": max(1, int(steps)),
            "device": describe_device(dev)}


def train_gan(config: GanConfig, on_progress: Callable[[Progress], None] | None = None,
              stop_event: threading.Event | None = None, store: RunStore | None = None) -> GanResult:
    """Train a DCGAN (Radford et al. 2016) and save it as a complete run of kind "gan".

    Args:
        config: the GanConfig (validated here). With ``config.resume`` set, training continues that stopped
            run (see ``continue_config``: its data, networks and judge are kept) as a new run whose meta
            names it as ``parent``; the history and sample grids so far are carried over.
        on_progress: called with a GanProgress for every judge step, GAN step and epoch.
        stop_event: when set, training stops within one step, the partial run is deleted and
            ``nnkit.errors.Cancelled`` is raised.
        store: the run store (default: ``$NNKIT_HOME/runs``).

    Shape:
        trains on the dataset's train split (N×C×S×S in [0, 1], mapped to [-1, 1] for the networks).

    ``config.time_limit`` counts from the call, so it includes loading the data and training the judge;
    ``config.max_steps`` counts the steps of this call. A run that stops on either keeps its training state
    (``RESUME_TENSORS``, ``RESUME_JSON``) and ``meta["resumable"]`` is true.

    Returns:
        GanResult with the run id, per-epoch history (losses, D(x), D(G(z)), Fréchet distance, inception
        score, class coverage, confident share) and the final scores. The run holds generator.safetensors,
        discriminator.safetensors, config.json, fixed_noise.safetensors, samples/epoch_NNN.png,
        metrics.jsonl and meta.json (kind "gan", specs, judge run id, epochs planned and done, parent).
    """
    t0 = time.perf_counter()
    store = store or RunStore()
    parent = None
    if config.resume:
        parent = store.get(config.resume)
        config = continue_config(parent, **{k: getattr(config, k) for k in _CHANGEABLE})
    config.validate()
    seed = seed_everything(config.seed)
    device = get_device(config.device)
    store.check_new_name(config.name)  # the same rule as classifier training (RunStore.check_new_name)
    dataset = load_data(TrainConfig(data=config.data, data_opts=dict(config.data_opts), data_root=config.data_root))
    train_split = dataset.split("train")
    if len(train_split) < 2:
        raise NnkitError(f"dataset {dataset.name!r} has fewer than 2 training images")
    judge_info, judge_net, judge_trained_now = _judge(config, dataset, seed, device, store, on_progress, stop_event)
    judge = Judge(judge_net, dataset.split("test").images, config.confidence)
    judge_seconds = time.perf_counter() - t0
    seed_everything(seed)  # the GAN's draws do not depend on whether a judge was trained first

    x = train_split.images.to(device).mul(2).sub(1)  # tanh range
    y = train_split.labels.to(device)
    num_classes = dataset.num_classes
    gen = Generator(**generator_spec(config, dataset)).to(device)
    disc = Discriminator(**discriminator_spec(config, dataset)).to(device)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
    # The generator that is sampled, scored and saved: with ema_decay > 0 an exponential moving average of the
    # trained one (Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN training"), which smooths out
    # the oscillation of adversarial training late in long runs; with 0 (the default, see GanConfig.ema_decay:
    # within minutes of CPU the average lags behind) the trained generator itself.
    gen_ema = copy.deepcopy(gen).requires_grad_(False) if config.ema_decay else gen
    # the networks a stopped run keeps to go on from (the averaged generator only when it is a network of its own)
    networks = [("gen", gen), ("disc", disc)] + ([("gen_ema", gen_ema)] if gen_ema is not gen else [])
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))

    rng = torch.Generator().manual_seed(seed)
    if config.conditional:  # one row per class in the grid
        cols = math.ceil(config.n_samples / num_classes)
        grid_labels = torch.arange(num_classes).repeat_interleave(cols).to(device)
        grid_nrow = cols
    else:
        grid_labels, grid_nrow = None, max(1, math.isqrt(config.n_samples - 1) + 1)
    n_grid = num_classes * grid_nrow if config.conditional else config.n_samples
    grid_noise = torch.randn(n_grid, config.latent_dim, generator=rng).to(device)
    eval_noise = torch.randn(config.n_eval, config.latent_dim, generator=rng).to(device)
    eval_labels = _fixed_labels(config.n_eval, num_classes, config.conditional, device)

    batch = min(config.batch_size, len(y))
    steps_per_epoch = max(1, len(y) // batch)  # whole batches only: batch norm wants no 1-image tail
    planned_steps = steps_per_epoch * config.epochs

    # Where to start: the beginning, or exactly where the parent stopped (mid-epoch included).
    start_epoch, start_batch, step, resume_perm = 1, 0, 0, None
    sums0, seen0, cpu_before, train_before = None, 0, 0.0, 0.0
    history: list[dict] = []
    if parent is not None:
        state = _read_resume_json(parent)
        tensors = load_weights(parent.path / RESUME_TENSORS)
        try:
            for prefix, net in networks:
                net.load_state_dict({k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})
            _load_optimizer("opt_g", opt_g, tensors, state["opt_g"])
            _load_optimizer("opt_d", opt_d, tensors, state["opt_d"])
            torch.set_rng_state(tensors["rng_cpu"])
            if device.type == "cuda" and "rng_cuda" in tensors:
                torch.cuda.set_rng_state(tensors["rng_cuda"], device)
            noise = load_weights(parent.path / FIXED_NOISE)
            grid_noise, eval_noise = noise["grid_noise"].to(device), noise["eval_noise"].to(device)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise NnkitError(f"run {parent.run_id}: its training state does not fit its networks "
                             f"({str(exc).splitlines()[0][:100]})") from None
        step, start_epoch, start_batch = state["step"], state["epoch"], state["batch"]
        cpu_before, train_before = float(state.get("cpu_seconds", 0)), float(state.get("train_seconds", 0))
        if start_batch >= steps_per_epoch:  # the parent stopped at an epoch's end: begin the next one
            start_epoch, start_batch = start_epoch + 1, 0
        else:
            resume_perm = tensors["perm"].to(device)
            sums0, seen0 = tensors["sums"].to(device), state["seen"]
        # The parent's epochs so far stay in this run's history; a partial epoch is redone from its saved sums.
        history = [r for r in parent.metrics() if isinstance(r.get("epoch"), int) and r["epoch"] < start_epoch]
    total_steps = planned_steps if config.max_steps is None else min(planned_steps, step + config.max_steps)
    first_step = step
    ones = torch.ones(batch, device=device)
    zeros = torch.zeros(batch, device=device)

    label = "gan-cond-" if config.conditional else "gan-"
    writer = store.begin(label + config.data.replace("folder:", "folder-"))
    stopped_by = "epochs"
    quality: Quality | None = None
    epoch, b = start_epoch, start_batch - 1
    perm = resume_perm
    sums = sums0
    seen = seen0
    t_train, cpu_train = time.perf_counter(), time.process_time()
    try:
        for record in history:
            writer.log_metrics(record)
        if parent is not None:
            for old in sorted((parent.path / "samples").glob("epoch_*.png")):
                if old.stem[6:].isdigit() and int(old.stem[6:]) < start_epoch:
                    writer.save_bytes(f"samples/{old.name}", old.read_bytes())
        for epoch in range(start_epoch, config.epochs + 1):
            gen.train()
            disc.train()
            t_epoch = time.perf_counter()
            first = 0
            if epoch == start_epoch and resume_perm is not None:
                first = start_batch
            else:
                perm = torch.randperm(len(y), device=device)
                sums = torch.zeros(4, device=device)  # d_loss, g_loss, D(x), D(G(z))
                seen = 0
            for b in range(first, steps_per_epoch):
                if stop_event is not None and stop_event.is_set():
                    raise Cancelled("GAN training cancelled")
                idx = perm[b * batch : (b + 1) * batch]
                real = x[idx]
                # The generated batch reuses the real batch's labels, so labels are drawn like the data's
                # and D cannot tell real from generated by the label alone.
                labels = y[idx] if config.conditional else None
                fake = gen(torch.randn(batch, config.latent_dim, device=device), labels)

                d_real = disc(real, labels)
                d_fake = disc(fake.detach(), labels)
                loss_d = (F.binary_cross_entropy_with_logits(d_real, ones)
                          + F.binary_cross_entropy_with_logits(d_fake, zeros))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()

                # Non-saturating loss: label the fakes "real" and minimise the cross-entropy.
                loss_g = F.binary_cross_entropy_with_logits(disc(fake, labels), ones)
                opt_g.zero_grad(set_to_none=True)
                loss_g.backward()
                opt_g.step()
                if gen_ema is not gen:
                    _update_ema(gen_ema, gen, min(config.ema_decay, (1 + step) / (10 + step)))

                step += 1
                stats = torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(d_real.detach()).mean(),
                                     torch.sigmoid(d_fake.detach()).mean()])
                sums += stats
                seen += 1
                if on_progress is not None:
                    d_loss, g_loss, d_x, d_g_z = stats.tolist()
                    on_progress(GanProgress("batch", epoch, config.epochs, step, total_steps, g_loss,
                                            {"d_loss": d_loss, "g_loss": g_loss, "d_x": d_x, "d_g_z": d_g_z}))
                if step >= total_steps:
                    stopped_by = "max_steps" if step < planned_steps else "epochs"
                    break
                # The budget counts from the call: data, judge and GAN together (issue 17).
                if config.time_limit and time.perf_counter() - t0 >= config.time_limit:
                    stopped_by = "time_limit"
                    break
            means = (sums / max(seen, 1)).tolist()
            # One check per epoch on the summed losses (the sync happens here anyway): NaN networks are not stored.
            check_finite_loss(means[0], epoch, step, "discriminator loss")
            check_finite_loss(means[1], epoch, step, "generator loss")
            record = {"epoch": epoch, "step": step, "d_loss": means[0], "g_loss": means[1], "d_x": means[2],
                      "d_g_z": means[3]}
            last = stopped_by != "epochs" or step >= total_steps or epoch == config.epochs
            samples = gen_ema.sample(grid_noise, grid_labels).cpu()
            writer.save_bytes(f"samples/epoch_{epoch:03d}.png", grid_png(samples, nrow=grid_nrow))
            if last or epoch % config.eval_every == 0:
                quality = judge.score(gen_ema.sample(eval_noise, eval_labels), eval_labels)
                record.update(quality.to_dict())
            record["seconds"] = time.perf_counter() - t_epoch
            # CPU time of this process since the GAN loop began (a continued run adds its parent's): on a busy
            # shared machine it shows the work done, where wall time also counts the waiting
            record["cpu_seconds"] = cpu_before + time.process_time() - cpu_train
            history.append(record)
            writer.log_metrics(record)
            if on_progress is not None:
                on_progress(GanProgress("epoch", epoch, config.epochs, step, total_steps, record["g_loss"],
                                        dict(record), samples=samples))
            if last:
                break
        if quality is None:  # a continued run that had nothing left to do still reports its scores
            quality = judge.score(gen_ema.sample(eval_noise, eval_labels), eval_labels)
        train_seconds = time.perf_counter() - t_train
        batches_done = b + 1
        epochs_done = epoch if batches_done >= steps_per_epoch else epoch - 1
        resumable = stopped_by != "epochs"
        gen_ema.eval()
        disc.eval()
        writer.save_weights(gen_ema, GENERATOR)
        writer.save_weights(disc, DISCRIMINATOR)
        writer.save_bytes(FIXED_NOISE, save_tensors({"grid_noise": grid_noise.cpu().contiguous(),
                                                     "eval_noise": eval_noise.cpu().contiguous()}))
        if resumable:
            tensors = {"rng_cpu": torch.get_rng_state(), "perm": perm.cpu().contiguous(),
                       "sums": sums.detach().cpu().contiguous()}
            if device.type == "cuda":
                tensors["rng_cuda"] = torch.cuda.get_rng_state(device)
            for prefix, net in networks:
                tensors.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
            groups = {"opt_g": _flat_optimizer("opt_g", opt_g, tensors),
                      "opt_d": _flat_optimizer("opt_d", opt_d, tensors)}
            writer.save_bytes(RESUME_TENSORS, save_tensors(tensors))
            writer.save_json(RESUME_JSON, {"epoch": epoch, "batch": batches_done, "step": step, "seen": seen, **groups,
                                           "cpu_seconds": cpu_before + time.process_time() - cpu_train,
                                           "train_seconds": train_before + train_seconds})
        writer.save_json("config.json", config.to_dict())
        seconds = time.perf_counter() - t0
        fds = [r["frechet_distance"] for r in history if "frechet_distance" in r]
        meta = {
            "kind": "gan", "name": config.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seed": seed, "device": describe_device(device), "versions": library_versions(),
            "dataset": {"name": dataset.name, "opts": config.data_opts, "root": config.data_root,
                        "class_names": dataset.class_names, "info": dataset.info, "n_train": len(train_split),
                        "n_test": len(dataset.split("test"))},
            "conditional": config.conditional,
            "generator": generator_spec(config, dataset), "discriminator": discriminator_spec(config, dataset),
            "parameters": {"generator": sum(p.numel() for p in gen.parameters()),
                           "discriminator": sum(p.numel() for p in disc.parameters())},
            "judge": {"run_id": judge_info.run_id, "model": judge_info.meta.get("model", {}).get("name"),
                      "test_accuracy": judge_info.meta.get("test_accuracy"), "trained_now": judge_trained_now,
                      "seconds": judge_seconds, "real_images": judge.reference},
            "quality": quality.to_dict(), "frechet_distance": fds,
            "epochs_run": len(history), "epochs_done": epochs_done, "epochs_planned": config.epochs,
            "steps": step, "steps_this_run": step - first_step, "stopped_by": stopped_by,
            "time_limit": config.time_limit, "max_steps": config.max_steps, "resumable": resumable,
            "parent": parent.run_id if parent is not None else None,
            "seconds": seconds, "train_seconds": train_seconds,
            "train_seconds_total": train_before + train_seconds,
            "seconds_per_epoch": train_seconds * steps_per_epoch / max(1, step - first_step),
        }
        info = writer.finish(meta)
    except BaseException:
        writer.abort()
        raise
    return GanResult(info.run_id, seed, seconds, train_seconds, history, quality, judge_info.run_id,
                     judge.reference, stopped_by, gen_ema, disc, config, parent=meta["parent"],
                     note=stop_note(meta))
