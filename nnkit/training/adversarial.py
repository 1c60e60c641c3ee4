"""Adversarial training's batch transform: each training batch is replaced by an attack on it, made against the
model being trained (Madry et al. 2018, "Towards Deep Learning Models Resistant to Adversarial Attacks";
Wong et al. 2020, "Fast is better than free: Revisiting adversarial training").

The attacks themselves are the ones in ``attacks/`` (``attacks.pgd.pgd_perturb``, ``attacks.fgsm.fgsm_perturb``):
this module only decides how the training loop calls them.

- **Which mode.** The attack runs on the model in *train* mode, as in Madry et al.'s and Wong et al.'s code:
  BatchNorm normalises with the batch's statistics and dropout is active, so the attack maximises the very loss
  the optimiser step then minimises (in eval mode, early in training, the running statistics describe a model
  that no longer exists and the attack would aim at the wrong function). Two side effects of train mode are
  undone: BatchNorm's running statistics are *not* updated by the attack's forward passes (momentum 0 during
  the attack, and the batch counter restored), so they track only the batches the model trains on.
- **No parameter gradients.** During the attack every parameter has ``requires_grad`` off: the backward passes
  compute the input gradient only (no weight gradients are computed), nothing accumulates in ``.grad``,
  and under DistributedDataParallel no gradient hook of a parameter can fire, so DDP's gradient sync sees only
  the training step's backward. The attack calls the inner module, never the DDP wrapper, for the same reason.
- **Randomness keyed by the item.** The random start of image ``i`` of the training split in epoch ``e`` comes
  from a generator seeded from (run seed, e, i) (:func:`nnkit.seeding.item_seed`): it is the same whichever
  batch, process or rank the image lands in. The gradient steps that follow depend on the batch's BatchNorm
  statistics and dropout masks, as the training step itself does (under ``torchrun`` each rank normalises its
  own share unless ``--sync-bn``).
- **Clean epochs first.** The loop attacks only after ``TrainConfig.adv_clean_epochs`` epochs on clean images (by
  default the first third): trained on FGSM examples at ε = 8/255 from the first step, the shapes cnn stayed near
  chance (measured: 12% clean accuracy after 3 epochs on 3,000 images), as a model that has learnt nothing yet
  has no robust feature to strengthen.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from nnkit.seeding import item_seed

# Keeps the attack's random streams apart from the others derived from the run seed (ranks use item_seed(seed, rank)).
_STREAM = 2**40 + 0xAD7

METHOD_NAMES = {"fgsm": "FGSM with random start", "pgd": "PGD"}
PAPERS = {"fgsm": "Wong et al. 2020", "pgd": "Madry et al. 2018"}


@dataclass(frozen=True)
class AdversarialTraining:
    """How each training batch is attacked.

    Attributes:
        kind: "fgsm" (one step of size ``alpha`` from a uniform random start in the ε-ball, Wong et al. 2020) or
            "pgd" (``steps`` steps of size ``alpha`` from a random start, projected on the ε-ball, Madry et al. 2018).
        eps: L∞ budget in [0, 1] pixel units.
        steps: attack iterations (1 for FGSM).
        alpha: step size.
    """

    kind: str
    eps: float
    steps: int
    alpha: float

    @classmethod
    def from_config(cls, config) -> AdversarialTraining | None:
        """The transform a (validated) TrainConfig asks for, or None for standard training."""
        defence = config.defence()
        if defence is None:
            return None
        return cls(defence["kind"], defence["eps"], defence["steps"], defence["alpha"])

    def perturb(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor, keys: torch.Tensor, seed: int,
                *, autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
        """The adversarial version of a training batch, made against ``model`` as it is now.

        Args:
            model: the classifier being trained (the inner module, not a DDP wrapper), in train mode.
            images: the batch (after augmentation), in [0, 1].
            labels: its true classes.
            keys: each image's index in the training split (what its random start is keyed by).
            seed: the stream of this epoch (:func:`epoch_seed`).
            autocast_dtype: run the model's forward passes under ``torch.autocast`` with this dtype, as the training
                step does on CUDA (None: full precision).

        Shape:
            images: N×C×H×W in [0, 1]; labels, keys: N int64 → N×C×H×W in [0, 1], each pixel within ``eps`` of
            ``images`` (L∞), detached.

        Returns:
            The adversarial batch.
        """
        from attacks.fgsm import fgsm_perturb
        from attacks.pgd import pgd_perturb

        generators = item_generators(seed, keys, images.device)
        logits_fn = _logits_fn(model, images.device.type, autocast_dtype)
        eps, alpha = self.eps, self.alpha
        with attack_mode(model):
            if self.kind == "pgd":
                adv = pgd_perturb(logits_fn, images, labels, eps=eps, alpha=alpha, steps=self.steps,
                                  norm="linf", random_start=True, generators=generators)
            else:
                adv = fgsm_perturb(logits_fn, images, labels, eps=eps, alpha=alpha, random_start=True,
                                   generators=generators)
        return adv.detach().to(images.dtype)

    def describe(self) -> str:
        """e.g. ``"PGD, ε=8/255, 7 steps"`` or ``"FGSM with random start, ε=8/255"``."""
        return describe_defence({"kind": self.kind, "eps": self.eps, "steps": self.steps, "alpha": self.alpha})


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's attack streams (each image's stream is then keyed by its index).

    Args:
        seed: the run's seed.
        epoch: the 1-based epoch (an image is attacked once per epoch, so (epoch, index) never repeats).

    Returns:
        A seed in [0, 2**63 - 1].
    """
    return item_seed(item_seed(seed, _STREAM), epoch)


def item_generators(seed: int, keys: torch.Tensor, device: torch.device) -> list[torch.Generator]:
    """One generator per image, seeded from (``seed``, the image's key), on ``device``.

    Shape:
        keys: N integers → N generators.
    """
    return [torch.Generator(device=device).manual_seed(item_seed(seed, int(k))) for k in keys.tolist()]


def _logits_fn(model: nn.Module, device_type: str, autocast_dtype: torch.dtype | None) -> Callable:
    if autocast_dtype is None:
        return model

    def logits(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type, dtype=autocast_dtype):
            out = model(x)
        return out.float()

    return logits


@contextlib.contextmanager
def attack_mode(model: nn.Module) -> Iterator[None]:
    """While the attack runs: no parameter takes gradients and BatchNorm running statistics stay as they are.

    The model stays in its mode (train mode in the loop: batch statistics and dropout, see the module docstring).
    Everything is restored on exit, also on error (a cancel raised inside the attack).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats]
    saved = [(m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in norms]
    try:
        for p in params:
            p.requires_grad_(False)
        for m in norms:
            # momentum 0: running = (1 - 0)·running + 0·batch, i.e. unchanged (None would mean a cumulative mean)
            m.momentum = 0.0
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def eps_text(eps: float) -> str:
    """``8/255`` when ``eps`` is a whole number of 255ths (to float precision), else ``0.03``."""
    n = eps * 255
    return f"{round(n)}/255" if abs(n - round(n)) < 1e-6 and round(n) >= 1 else f"{eps:g}"


def _method_text(defence: dict, eq: str) -> str:
    kind = defence.get("kind")
    text = f"{METHOD_NAMES.get(kind, str(kind))}, ε{eq}{eps_text(float(defence.get('eps', 0)))}"
    if kind == "pgd" and isinstance(defence.get("steps"), int):
        text += f", {defence['steps']} steps"
    return text


def describe_defence(defence: dict | None) -> str:
    """A recorded defence (``meta["defence"]``) in words, for the CLI's lines.

    Args:
        defence: ``{"kind", "eps", "steps", "alpha", ...}`` (as validated by nnkit.runs.meta) or None.

    Returns:
        e.g. ``"PGD, ε=8/255, 7 steps"``, ``"FGSM with random start, ε=8/255"``, or ``"none"``.
    """
    return _method_text(defence, "=") if defence else "none"


def defence_tag(defence: dict | None) -> str:
    """A few words for a run's one-line label (sidebar, run menus): ``"adv. trained PGD ε=8/255"``, or ``""``."""
    if not defence:
        return ""
    kind = str(defence.get("kind", "?")).upper()
    return f"adv. trained {kind} ε={eps_text(float(defence.get('eps', 0)))}"


def defence_sentence(defence: dict | None) -> str:
    """The model card's line: ``"adversarial training (FGSM with random start, ε = 8/255; Wong et al. 2020)"``
    or ``"none"``."""
    if not defence:
        return "none"
    return f"adversarial training ({_method_text(defence, ' = ')}; {PAPERS.get(defence.get('kind'), '?')})"


def passes_per_step(kind: str | None, steps: int = 1) -> int:
    """Forward-backward passes one optimiser step takes: 1 (standard), 2 (FGSM: one attack step), steps + 1 (PGD).

    A property of the algorithm, not a time: the time per pass depends on the machine and its load.
    """
    if kind is None:
        return 1
    return int(steps) + 1 if kind == "pgd" else 2


def job_kind(kind: str | None) -> str:
    """The job kind a training job runs under: ``"train"``, ``"train-fgsm"`` or ``"train-pgd"``, so the measured
    rate of adversarial training (kept per job kind, nnkit.jobs.eta) never passes for the standard one's."""
    return "train" if kind is None else f"train-{kind}"


def cost_note(kind: str | None, steps: int, standard: dict | None, adversarial: dict | None) -> str:
    """One line on what adversarial training costs: measured on this machine when both rates are known, else
    the algorithm's count of passes.

    Args:
        kind: None, "fgsm" or "pgd".
        steps: PGD steps.
        standard, adversarial: the last measured rates (``nnkit.jobs.eta.last_rate("train")`` and
            ``last_rate(job_kind(kind))``) or None.

    Returns:
        The line ("" for standard training).
    """
    if kind is None:
        return ""
    from nnkit.jobs.eta import format_rate

    n = passes_per_step(kind, steps)
    passes = f"{n} forward-backward passes per step instead of 1"
    method = METHOD_NAMES[kind]
    if standard and adversarial and standard.get("unit") == adversarial.get("unit") == "steps":
        ratio = standard["rate"] / adversarial["rate"]
        return (f"Measured here: the last {method} adversarial training ran at {format_rate(adversarial['rate'], 'steps')}"
                f" and the last standard training at {format_rate(standard['rate'], 'steps')}, {ratio:.1f}× the time per "
                f"step (their settings and the machine's load may differ); by the algorithm, {passes}.")
    return (f"{method} costs about {n}× the standard time per attacked epoch ({passes}): a property of the "
            "algorithm, not a time promise; once it runs, the bar shows the rate measured here.")
