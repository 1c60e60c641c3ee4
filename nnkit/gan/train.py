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
from nnkit.gan.config import GanConfig
from nnkit.gan.metrics import Judge, Quality
from nnkit.gan.models import Discriminator, Generator
from nnkit.gan.sample import DISCRIMINATOR, GENERATOR, grid_png
from nnkit.runs.load import load_classifier
from nnkit.runs.store import RunInfo, RunStore
from nnkit.seeding import seed_everything
from nnkit.training import Progress, TrainConfig, load_data, train
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
    for info in store.list(kind="classifier"):
        ds = info.meta.get("dataset", {})
        if (info.name == name and ds.get("name") == dataset.name and (ds.get("opts") or {}) == config.data_opts
                and ds.get("root") == config.data_root and _same_model(info.meta.get("model", {}), config)
                and info.meta.get("epochs_run") == config.judge_epochs and _fits(info, dataset)):
            try:
                return info, load_classifier(info, device), False
            except NnkitError:
                continue  # made by an older version of the model code: train a fresh judge

    def forward(p: Progress) -> None:
        if on_progress is not None and p.kind == "batch":
            on_progress(GanProgress("judge", p.epoch, p.epochs, p.step, p.total_steps, p.loss))

    result = train(TrainConfig(data=config.data, data_opts=dict(config.data_opts), data_root=config.data_root,
                               model=config.judge_model, model_opts=dict(config.judge_opts),
                               epochs=config.judge_epochs, seed=seed, device=config.device, name=name),
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


def train_gan(config: GanConfig, on_progress: Callable[[Progress], None] | None = None,
              stop_event: threading.Event | None = None, store: RunStore | None = None) -> GanResult:
    """Train a DCGAN (Radford et al. 2016) and save it as a complete run of kind "gan".

    Args:
        config: the GanConfig (validated here).
        on_progress: called with a GanProgress for every judge step, GAN step and epoch.
        stop_event: when set, training stops within one step, the partial run is deleted and
            ``nnkit.errors.Cancelled`` is raised.
        store: the run store (default: ``$NNKIT_HOME/runs``).

    Shape:
        trains on the dataset's train split (N×C×S×S in [0, 1], mapped to [-1, 1] for the networks).

    Returns:
        GanResult with the run id, per-epoch history (losses, D(x), D(G(z)), Fréchet distance, inception
        score, class coverage, confident share) and the final scores. The run holds generator.safetensors,
        discriminator.safetensors, config.json, fixed_noise.safetensors, samples/epoch_NNN.png,
        metrics.jsonl and meta.json (kind "gan", specs, judge run id).
    """
    config.validate()
    t0 = time.perf_counter()
    seed = seed_everything(config.seed)
    device = get_device(config.device)
    store = store or RunStore()
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
    # The generator that is sampled, scored and saved: an exponential moving average of the trained one
    # (Yazıcı et al. 2019, "The unusual effectiveness of averaging in GAN training"). It smooths out the
    # oscillation of adversarial training, which on a short CPU budget is the difference between blurry
    # and legible samples. ema_decay = 0 samples the raw generator.
    gen_ema = copy.deepcopy(gen).requires_grad_(False) if config.ema_decay else gen
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
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)
    ones = torch.ones(batch, device=device)
    zeros = torch.zeros(batch, device=device)

    label = "gan-cond-" if config.conditional else "gan-"
    writer = store.begin(label + config.data.replace("folder:", "folder-"))
    history: list[dict] = []
    step = 0
    stopped_by = "epochs"
    quality: Quality | None = None
    t_train, cpu_train = time.perf_counter(), time.process_time()
    try:
        for epoch in range(1, config.epochs + 1):
            gen.train()
            disc.train()
            t_epoch = time.perf_counter()
            perm = torch.randperm(len(y), device=device)
            sums = torch.zeros(4, device=device)  # d_loss, g_loss, D(x), D(G(z))
            seen = 0
            for b in range(steps_per_epoch):
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
                    stopped_by = "max_steps" if step < steps_per_epoch * config.epochs else "epochs"
                    break
                if config.time_limit and time.perf_counter() - t_train >= config.time_limit:
                    stopped_by = "time_limit"
                    break
            means = (sums / max(seen, 1)).tolist()
            record = {"epoch": epoch, "step": step, "d_loss": means[0], "g_loss": means[1], "d_x": means[2],
                      "d_g_z": means[3]}
            last = stopped_by != "epochs" or step >= total_steps or epoch == config.epochs
            samples = gen_ema.sample(grid_noise, grid_labels).cpu()
            writer.save_bytes(f"samples/epoch_{epoch:03d}.png", grid_png(samples, nrow=grid_nrow))
            if last or epoch % config.eval_every == 0:
                quality = judge.score(gen_ema.sample(eval_noise, eval_labels))
                record.update(quality.to_dict())
            record["seconds"] = time.perf_counter() - t_epoch
            # CPU time of this process since the GAN loop began: on a busy shared machine it shows the work
            # done, where wall time also counts the waiting
            record["cpu_seconds"] = time.process_time() - cpu_train
            history.append(record)
            writer.log_metrics(record)
            if on_progress is not None:
                on_progress(GanProgress("epoch", epoch, config.epochs, step, total_steps, record["g_loss"],
                                        dict(record), samples=samples))
            if last:
                break
        train_seconds = time.perf_counter() - t_train
        gen_ema.eval()
        disc.eval()
        writer.save_weights(gen_ema, GENERATOR)
        writer.save_weights(disc, DISCRIMINATOR)
        writer.save_bytes(FIXED_NOISE, save_tensors({"grid_noise": grid_noise.cpu().contiguous(),
                                                     "eval_noise": eval_noise.cpu().contiguous()}))
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
            "epochs_run": len(history), "steps": step, "stopped_by": stopped_by,
            "seconds": seconds, "train_seconds": train_seconds,
        }
        info = writer.finish(meta)
    except BaseException:
        writer.abort()
        raise
    return GanResult(info.run_id, seed, seconds, train_seconds, history, quality, judge_info.run_id,
                     judge.reference, stopped_by, gen_ema, disc, config)
