"""The fast gradient sign method (FGSM), and FGSM with a random start.

- Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015
  (arXiv:1412.6572): one step ``x' = clip_[0,1](x + ε · sign(∇ₓ CE(f(x), y)))``.
- Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training", ICLR 2020
  (arXiv:2001.03994): start from a uniform draw δ ~ U(−ε, ε), take one step of size α (1.25 ε by
  default) and project back onto the ε-ball: ``x' = clip_[0,1](x + clip_[−ε,ε](δ + α · sign(∇)))``.

Distance measure: L∞, radius ε (default 8/255); the adversarial image stays in [0, 1].
Targeted: the step descends the cross-entropy of the target class instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from attacks.base import Oracle, ProgressFn
from attacks.pgd import GradientAttack, check_budget, check_inputs, distances, per_image, pgd_loop

DEFAULT_EPS = 8 / 255
# Wong et al. 2020: α = 1.25 ε was their best step for FGSM with a random start (Section 4, Table 4).
RANDOM_START_ALPHA = 1.25


def fgsm_perturb(logits_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor, *,
                 eps, alpha=None, random_start: bool = False, targets: torch.Tensor | None = None,
                 generators: Sequence[torch.Generator] | None = None) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015), or FGSM with a random start (Wong et al. 2020), L∞.

    One gradient step through ``logits_fn``; the caller chooses the model's mode. Only the images'
    gradient is taken, so the parameters' ``.grad`` are left untouched (adversarial training calls this).

    Args:
        logits_fn: ``logits_fn(x)`` → B×K logits with autograd.
        images: N×C×H×W clean images in [0, 1].
        labels: N true classes.
        eps: L∞ radius (a float or N per-image values), e.g. 8/255.
        alpha: step size; default ε without a random start (plain FGSM), 1.25 ε with one (Wong et al.).
        random_start: start from δ ~ U(−ε, ε) (per image from ``generators`` when given).
        targets: N target classes (targeted: descend their cross-entropy); None: untargeted.
        generators: one ``torch.Generator`` per image for the random start; None: the global RNG.

    Shape:
        images N×C×H×W, labels N, targets N → N×C×H×W.

    Returns:
        The adversarial images, detached, in [0, 1], within ε (L∞) of the clean images.

    Example::

        >>> adv = fgsm_perturb(model, x, y, eps=8 / 255, random_start=True)   # fast adversarial training
    """
    x, y, t, e, a = check_inputs(images, labels, targets, eps, 0.0 if alpha is None else alpha, 1, "linf")
    if alpha is None:
        a = RANDOM_START_ALPHA * e if random_start else e
    adv, _ = pgd_loop(lambda xi, _rows: logits_fn(xi), x, y, eps=e, alpha=a, steps=1, norm="linf",
                      start=bool(random_start), targets=t, generators=generators)
    return adv


class FGSM(GradientAttack):
    """The fast gradient sign method (Goodfellow et al. 2015), optionally with a random start (Wong et al. 2020).

    Distance: L∞ ball of radius ``eps`` around the clean image, clipped to [0, 1].

    Args:
        model: classifier on N×C×H×W images in [0, 1].
        eps: L∞ radius (default 8/255).
        alpha: step size (default ε; 1.25 ε with ``random_start``).
        random_start: start from a uniform draw in the ball, from the image's own stream (default False).
        seed, memory_mb: see :class:`attacks.base.Attack`; fast: see :class:`attacks.pgd.GradientAttack`.

    Shape:
        ``attack(images N×C×H×W in [0, 1], labels N[, targets N])`` → AttackResult; ``perturbation["linf"]``
        and ``perturbation["l2"]`` are the N per-image distances.

    Example::

        >>> result = FGSM(model, eps=8 / 255)(images, labels)
    """

    name = "fgsm"
    uses_gradients = True

    def __init__(self, model: torch.nn.Module, *, eps: float = DEFAULT_EPS, alpha: float | None = None,
                 random_start: bool = False, seed: int | None = None, memory_mb: float | None = None, fast: bool = True):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=fast)
        self.eps, _, _ = check_budget("linf", eps, 0.0, 1)
        if alpha is None:
            alpha = RANDOM_START_ALPHA * self.eps if random_start else self.eps
        _, self.alpha, _ = check_budget("linf", self.eps, alpha, 1)
        self.random_start = bool(random_start)

    def params(self) -> dict:
        return {"eps": self.eps, "alpha": self.alpha, "steps": 1, "norm": "linf", "random_start": self.random_start}

    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress: ProgressFn | None):
        m = images.shape[0]
        adv, _ = pgd_loop(
            oracle.logits, images, labels, eps=per_image(self.eps, m, images.device, "eps"),
            alpha=per_image(self.alpha, m, images.device, "alpha"), steps=1, norm="linf",
            start=self.random_start, targets=targets,
            generators=oracle.item_generators() if self.random_start else None,
            max_batch=oracle.max_batch, on_step=on_progress, channels_last=self._channels_last(oracle))
        return adv, distances(adv, images), {}
