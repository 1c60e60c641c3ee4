"""The smallest budget ε at which PGD flips each image, found by bisection.

Per image: PGD (Madry et al. 2018, :mod:`attacks.pgd`) at the largest ε; an image it does not flip
gets ε* = ∞ (robust within the range searched). For the others, ``bisections`` rounds halve the
interval [lo, hi] (lo = 0, hi = the largest ε): PGD runs at the midpoint, with the step size scaled
with ε (α = ``alpha_ratio`` · ε, torchattacks' 2/255 : 8/255 = 1/4 by default), and the interval keeps
the half where the flip happens. The result is hi, an upper bound on the smallest flipping ε
(within (largest ε) / 2^bisections of the boundary PGD finds), with the adversarial image found at hi.

PGD is not monotone in ε (a smaller ball can occasionally succeed where a larger one failed), so
bisection finds one boundary point, not necessarily the smallest; this is the usual way a
"minimal ε" is reported for PGD (e.g. the ε-sweeps in Madry et al. 2018, Fig. 6).

Every round an image takes part in draws its random start from the image's own stream, so the
result does not depend on the batch (see :mod:`attacks.base`).
"""

from __future__ import annotations

import torch

from attacks.base import Oracle, ProgressFn
from attacks.pgd import DEFAULT_STEPS, GradientAttack, check_budget, distances, per_image, pgd_loop
from nnkit.errors import NnkitError

ALPHA_RATIO = 0.25  # α / ε: torchattacks' 2/255 for 8/255


class MinEps(GradientAttack):
    """Smallest PGD budget that flips each image, by bisection over ε (PGD: Madry et al. 2018).

    Distance: L∞ or L2; ``perturbation["min_eps"]`` is the bisection's upper end (∞: not flipped at ``eps_max``).

    Args:
        model: classifier on N×C×H×W images in [0, 1].
        eps_max: the largest budget searched (default: 8/255 for L∞, 0.5 for L2).
        steps: PGD steps per try (default 10).
        norm: "linf" or "l2".
        bisections: halvings of the interval (default 8: precision ``eps_max / 256``).
        alpha_ratio: PGD step size as a fraction of the ε tried (default 0.25).
        random_start: PGD's random start (default True).
        seed, memory_mb: see :class:`attacks.base.Attack`; fast: see :class:`attacks.pgd.GradientAttack`.

    Shape:
        ``attack(images N×C×H×W in [0, 1], labels N[, targets N])`` → AttackResult whose images are the
        adversarial images at ε* (the PGD result at ``eps_max`` where none flipped); ``perturbation["min_eps"]``
        N floats (∞ not flipped, NaN not attacked), ``["linf"]``, ``["l2"]``.

    Example::

        >>> result = MinEps(model, eps_max=16 / 255)(images, labels)
        >>> result.perturbation["min_eps"].nanmedian()
    """

    name = "min-eps"
    uses_gradients = True

    def __init__(self, model: torch.nn.Module, *, eps_max: float | None = None, steps: int = DEFAULT_STEPS,
                 norm: str = "linf", bisections: int = 8, alpha_ratio: float = ALPHA_RATIO,
                 random_start: bool = True, seed: int | None = None, memory_mb: float | None = None, fast: bool = True):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=fast)
        self.eps_max, _, self.steps = check_budget(norm, eps_max, None, steps)
        if self.eps_max <= 0:
            raise NnkitError("the largest eps searched must be > 0")
        if isinstance(bisections, bool) or not isinstance(bisections, int) or not 0 <= bisections <= 30:
            raise NnkitError(f"bisections must be a whole number from 0 to 30, got {bisections!r}")
        if not 0 < float(alpha_ratio) <= 10:
            raise NnkitError(f"alpha_ratio must be in (0, 10], got {alpha_ratio}")
        self.norm, self.bisections, self.alpha_ratio = norm, bisections, float(alpha_ratio)
        self.random_start = bool(random_start)

    def params(self) -> dict:
        return {"eps_max": self.eps_max, "steps": self.steps, "norm": self.norm, "bisections": self.bisections,
                "alpha_ratio": self.alpha_ratio, "random_start": self.random_start}

    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress: ProgressFn | None):
        m, dev = images.shape[0], images.device
        gens = oracle.item_generators()
        cl = self._channels_last(oracle)
        rounds = self.bisections + 1
        total = rounds * max(self.steps, 1)

        def pgd(rows: torch.Tensor, eps: torch.Tensor, done: int):
            step_cb = None if on_progress is None else (lambda d, _t: on_progress(done + d, total))
            return pgd_loop(
                lambda x, r: oracle.logits(x, rows[r]), images[rows], labels[rows], eps=eps,
                alpha=eps * self.alpha_ratio, steps=self.steps, norm=self.norm, start=self.random_start,
                targets=targets[rows] if targets is not None else None,
                generators=[gens[i] for i in rows.tolist()] if self.random_start else None, early_stop=True,
                max_batch=oracle.max_batch, on_step=step_cb, check_last=True, channels_last=cl)

        everyone = torch.arange(m, device=dev)
        hi = per_image(self.eps_max, m, dev, "eps").clone()
        lo = torch.zeros(m, device=dev)
        adv, met = pgd(everyone, hi, 0)
        flipped = met >= 0
        rows = everyone[flipped]
        for r in range(self.bisections):
            if rows.numel() == 0:
                break
            mid = (lo[rows] + hi[rows]) / 2
            adv_r, met_r = pgd(rows, mid, (r + 1) * max(self.steps, 1))
            ok = met_r >= 0
            hi[rows[ok]] = mid[ok]
            adv[rows[ok]] = adv_r[ok]
            lo[rows[~ok]] = mid[~ok]
        if on_progress is not None:
            on_progress(total, total)
        min_eps = torch.where(flipped, hi, torch.full_like(hi, float("inf")))
        return adv, distances(adv, images) | {"min_eps": min_eps}, {}
