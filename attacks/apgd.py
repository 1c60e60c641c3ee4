"""Auto-PGD (APGD): PGD with momentum and a step size that halves when progress stalls.

Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", ICML 2020 (arXiv:2003.01690), Algorithm 1 — the white-box attacks of
AutoAttack: APGD-CE (cross-entropy) and APGD-T (the targeted difference-of-logits-ratio loss, DLR).

Distance measure: L∞ (``norm="linf"``) or L2 ball of radius ε; the adversarial image stays in [0, 1].

The iteration (η the step size, α = 0.75 the momentum, P the projection onto the ball and [0, 1],
``d(v)`` = sign(v) for L∞ and v/‖v‖₂ for L2)::

    x₁ = P(x₀ + η d(∇f(x₀)))                                  (η = 2ε at the start)
    z_{k+1} = P(x_k + η d(∇f(x_k)))
    x_{k+1} = P(x_k + α (z_{k+1} − x_k) + (1 − α)(x_k − x_{k−1}))

f is the per-image loss (ascended). At the checkpoints w_j = ⌊p_j N⌋ with p₀ = 0, p₁ = 0.22 and
p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06), an image halves its η and restarts from its
best point (highest loss so far, with that point's gradient) when

1. the loss rose in at most ρ = 0.75 of the steps since the last checkpoint (the paper writes "fewer
   than"; the authors' released code uses "at most", which is followed here), or
2. its η was not halved at the last checkpoint and its best loss has not improved since then.

The random start is the released code's: uniform noise scaled to the ball's boundary (L∞:
δ = ε t / ‖t‖∞ with t ~ U(−1, 1); L2: δ = ε t / ‖t‖₂ with t ~ N(0, I)), clipped to [0, 1]; one
restart. The first iterate that meets the goal is returned (AutoAttack's ``x_best_adv``); an image
that never meets it gets its highest-loss point. Differences from the released code: the loss
comparison of the first window includes the start point f(x₀) (the code compares with 0 there), and
an image stops being attacked at its first success (the code keeps stepping it; its result is the
same either way).

Losses (``f``, ascended):

- ``"ce"``: cross-entropy of the label (untargeted), or minus that of the target (targeted);
- ``"dlr"``: DLR = −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3) untargeted (needs ≥ 3 classes), and the
  targeted DLR = −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2) towards target t (needs ≥ 4 classes), with
  z_π1 ≥ z_π2 ≥ … the sorted logits. DLR is invariant to shifting and scaling the logits.

:class:`APGD` is APGD-CE / APGD-DLR with given targets; :class:`APGDT` is AutoAttack's APGD-T, an
untargeted attack that runs the targeted DLR towards each of the model's next most likely classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from attacks.base import Oracle, ProgressFn
from attacks.pgd import (
    GradientAttack,
    _expand,
    ascent_direction,
    check_budget,
    check_inputs,
    distances,
    normal_noise,
    per_image,
    project,
    uniform_noise,
)
from nnkit.errors import NnkitError

LOSSES = ("ce", "dlr")
DEFAULT_STEPS = 100  # AutoAttack's standard version: 100 iterations per run
RHO = 0.75  # condition 1: the share of steps that must raise the loss
MOMENTUM = 0.75
_TINY = 1e-12


def checkpoints(steps: int) -> list[int]:
    """The iterations after which the step size is checked (p₁ = 0.22, shrinking by 0.03 to at least 0.06).

    Returns:
        Increasing iteration counts w₁ < w₂ < … ≤ ``steps`` (as the released code rounds: down, at least 1).
    """
    if steps <= 0:
        return []
    k = max(int(0.22 * steps), 1)
    decr, k_min = max(int(0.03 * steps), 1), max(int(0.06 * steps), 1)
    out, w = [], 0
    while w + k <= steps:
        w += k
        out.append(w)
        k = max(k - decr, k_min)
    return out


def dlr_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
    """The difference-of-logits-ratio loss per image (Croce & Hein 2020, Eq. 6 and its targeted form).

    Args:
        logits: the model's outputs; labels: true classes; targets: target classes (targeted DLR) or None.
    Shape:
        logits B×K, labels B, targets B or None → B.
    Returns:
        The loss an attack ascends (higher: closer to the goal); a one-line NnkitError with too few classes.
    """
    k = logits.shape[1]
    if k < (4 if targets is not None else 3):
        raise NnkitError(f"the DLR loss needs at least {4 if targets is not None else 3} classes, the model has {k}")
    z, _ = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, labels[:, None])[:, 0]
    if targets is not None:
        z_t = logits.gather(1, targets[:, None])[:, 0]
        return -(z_y - z_t) / (z[:, 0] - (z[:, 2] + z[:, 3]) / 2 + _TINY)
    # max over the other classes: the top logit, or the second when the top one is the label.
    top_is_label = logits.argmax(1) == labels
    z_other = torch.where(top_is_label, z[:, 1], z[:, 0])
    return -(z_y - z_other) / (z[:, 0] - z[:, 2] + _TINY)


def _per_image_loss(loss: str, logits, labels, targets) -> torch.Tensor:
    if loss == "dlr":
        return dlr_loss(logits, labels, targets)
    if targets is None:
        return F.cross_entropy(logits, labels, reduction="none")
    return -F.cross_entropy(logits, targets, reduction="none")


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _boundary_start(x0: torch.Tensor, eps: torch.Tensor, norm: str,
                    generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    if norm == "linf":
        t = uniform_noise(x0, generators) * 2 - 1
        scale = t.flatten(1).abs().amax(1)
    else:
        t = normal_noise(x0, generators)
        scale = t.flatten(1).norm(dim=1)
    return (x0 + t * _expand(eps / scale.clamp_min(_TINY))).clamp_(0, 1)


def apgd_loop(logits_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], images: torch.Tensor,
              labels: torch.Tensor, *, eps: torch.Tensor, steps: int, norm: str, loss: str,
              targets: torch.Tensor | None, generators: Sequence[torch.Generator] | None, random_start: bool = True,
              early_stop: bool = True, rho: float = RHO, momentum: float = MOMENTUM, max_batch: int | None = None,
              on_step: Callable[[int, int], None] | None = None, targeted_goal: bool = True,
              channels_last: bool = False):
    """Algorithm 1 of Croce & Hein 2020 for a batch (arguments checked by the caller).

    Args:
        logits_fn: ``logits_fn(x, rows)`` → logits with autograd of images ``x``, the rows ``rows`` of ``images``.
        images, labels, targets: N×C×H×W in [0, 1], N, N or None (on one device).
        eps: N per-image radii.
        steps: iterations after the start point (each one forward and backward pass; the start takes one more).
        norm, loss: "linf"/"l2", "ce"/"dlr".
        generators: one per image for the random start, or None (global RNG).
        random_start: start on the ball's boundary at random (else at the clean image).
        early_stop: stop an image at its first iterate that meets the goal.
        rho, momentum: the paper's ρ and α (0.75 each).
        max_batch: most images per forward pass (None: all at once).
        on_step: called with (iterations done, steps + 1).
        targeted_goal: with ``targets``, the goal is the target class (False: any class but the label, as
            APGD-T uses the targeted loss for an untargeted attack).
        channels_last: hand the model channels-last inputs (see :func:`attacks.pgd.pgd_loop`).

    Shape:
        → (N×C×H×W adversarial images, detached, in [0, 1]; N int64 iteration at which the goal was first
        met, 0 = the start point, -1 = never).
    """
    n, dev = images.shape[0], images.device
    x0 = images.detach()
    chunk = n if not max_batch else max(1, int(max_batch))
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def evaluate(x: torch.Tensor, rows: torch.Tensor):
        """Gradient of the summed loss, per-image loss and goal for the images ``x`` (rows ``rows``)."""
        grads, losses, goals = [], [], []
        for i in range(0, rows.numel(), chunk):
            r = rows[i : i + chunk]
            xi = x[i : i + chunk].detach().contiguous(memory_format=layout).requires_grad_(True)
            logits = logits_fn(xi, r)
            t = targets[r] if targets is not None else None
            per = _per_image_loss(loss, logits, labels[r], t)
            (g,) = torch.autograd.grad(per.sum(), xi)
            grads.append(g)
            losses.append(per.detach())
            pred = logits.detach().argmax(1)
            goals.append(pred == t if t is not None and targeted_goal else pred != labels[r])
        return _cat(grads), _cat(losses), _cat(goals)

    x = _boundary_start(x0, eps, norm, generators) if random_start else x0.clone()
    everyone = torch.arange(n, device=dev)
    grad, f, goal = evaluate(x, everyone)
    total = steps + 1
    met_at = torch.where(goal, 0, -1).to(torch.int64)
    result = x.clone()  # first iterate meeting the goal, else the best point
    x_best, grad_best, f_best = x.clone(), grad.clone(), f.clone()
    history = torch.zeros(steps + 1, n, device=dev)  # f(x_k), k = 0..steps
    history[0] = f
    eta = 2 * eps.clone()
    x_prev = x.clone()
    reduced_last = torch.zeros(n, dtype=torch.bool, device=dev)
    f_best_last = f_best.clone()
    marks = set(checkpoints(steps))
    last_mark = 0
    alive = everyone[~goal] if early_stop else everyone
    if on_step is not None:
        on_step(1, total)
    for k in range(steps):
        if alive.numel() == 0:
            break
        a = alive
        xa, x0a, ea = x[a], x0[a], eps[a]
        mom = momentum if k > 0 else 1.0
        z = project(xa + _expand(eta[a]) * ascent_direction(grad[a], norm), x0a, ea, norm)
        x_new = project(xa + mom * (z - xa) + (1 - mom) * (xa - x_prev[a]), x0a, ea, norm)
        x_prev[a] = xa
        x[a] = x_new
        g_new, f_new, goal_new = evaluate(x_new, a)
        grad[a] = g_new
        history[k + 1, a] = f_new
        first = goal_new & (met_at[a] < 0)
        if bool(first.any()):
            hit = a[first]
            met_at[hit] = k + 1
            result[hit] = x_new[first]
        better = f_new > f_best[a]
        if bool(better.any()):
            up = a[better]
            x_best[up], grad_best[up], f_best[up] = x_new[better], g_new[better], f_new[better]
        if k + 1 in marks:
            window = k + 1 - last_mark
            rises = (history[last_mark + 1 : k + 2, a] > history[last_mark : k + 1, a]).sum(0)
            stalled = (~reduced_last[a]) & (f_best_last[a] >= f_best[a])
            halve = (rises <= window * rho) | stalled
            reduced_last[a] = halve
            f_best_last[a] = f_best[a]
            if bool(halve.any()):
                h = a[halve]
                eta[h] = eta[h] / 2
                x[h] = x_best[h]
                grad[h] = grad_best[h]
            last_mark = k + 1
        if early_stop:
            alive = a[met_at[a] < 0]
        if on_step is not None:
            on_step(k + 2, total)
    if on_step is not None and alive.numel() == 0 and steps + 1 > 0:
        on_step(total, total)
    never = met_at < 0
    result[never] = x_best[never]
    return result.detach(), met_at


def check_loss(loss: str) -> str:
    """Check an APGD loss name.

    Args:
        loss: "ce" or "dlr".
    Returns:
        ``loss`` unchanged; a one-line NnkitError for any other name.
    """
    if loss not in LOSSES:
        raise NnkitError(f"unknown APGD loss {loss!r}: choose ce or dlr")
    return loss


def apgd_perturb(logits_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor, *,
                 eps, steps: int = DEFAULT_STEPS, norm: str = "linf", loss: str = "ce",
                 targets: torch.Tensor | None = None, generators: Sequence[torch.Generator] | None = None,
                 random_start: bool = True) -> torch.Tensor:
    """APGD adversarial images (Croce & Hein 2020, Algorithm 1), L∞ or L2, CE or DLR loss.

    The plain loop outside the Attack contract: the caller chooses the model's mode; only the
    images' gradient is taken.

    Args:
        logits_fn: ``logits_fn(x)`` → B×K logits with autograd.
        images: N×C×H×W clean images in [0, 1].
        labels: N true classes.
        eps: radius (a float or N per-image values), e.g. 8/255 (L∞) or 0.5 (L2).
        steps: iterations (AutoAttack: 100).
        norm: "linf" or "l2".
        loss: "ce" or "dlr" (with ``targets``: the targeted DLR).
        targets: N target classes (targeted); None: untargeted.
        generators: one ``torch.Generator`` per image for the random start; None: the global RNG.
        random_start: start at a random point of the ball's boundary.

    Shape:
        images N×C×H×W, labels N, targets N → N×C×H×W.

    Returns:
        Adversarial images, detached, in [0, 1]: each image's first iterate that met the goal, else its
        highest-loss point.

    Example::

        >>> adv = apgd_perturb(model, x, y, eps=8 / 255, steps=100)
    """
    check_loss(loss)
    x, y, t, e, _ = check_inputs(images, labels, targets, eps, 0.0, steps, norm)
    adv, _ = apgd_loop(lambda xi, _rows: logits_fn(xi), x, y, eps=e, steps=int(steps), norm=norm, loss=loss,
                       targets=t, generators=generators, random_start=bool(random_start))
    return adv


class APGD(GradientAttack):
    """APGD-CE (or APGD-DLR) of AutoAttack (Croce & Hein 2020), L∞ or L2, untargeted or targeted.

    Distance: L∞ or L2 ball of radius ``eps`` around the clean image, clipped to [0, 1].

    Args:
        model: classifier on N×C×H×W images in [0, 1].
        eps: radius (default 8/255 for L∞, 0.5 for L2).
        steps: iterations (default 100, AutoAttack's).
        norm: "linf" or "l2".
        loss: "ce" (APGD-CE) or "dlr" (targeted DLR when targets are given).
        seed, memory_mb: see :class:`attacks.base.Attack`; fast: see :class:`attacks.pgd.GradientAttack`.

    Shape:
        ``attack(images N×C×H×W in [0, 1], labels N[, targets N])`` → AttackResult; ``perturbation["linf"]``,
        ``["l2"]`` (N distances) and ``["step"]`` (iteration of the first success, -1 never).

    Example::

        >>> result = APGD(model, eps=8 / 255)(images, labels)
        >>> 1 - result.success_rate
    """

    name = "apgd"
    uses_gradients = True

    def __init__(self, model: torch.nn.Module, *, eps: float | None = None, steps: int = DEFAULT_STEPS,
                 norm: str = "linf", loss: str = "ce", seed: int | None = None, memory_mb: float | None = None, fast: bool = True):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=fast)
        self.eps, _, self.steps = check_budget(norm, eps, None, steps)
        self.norm = norm
        self.loss = check_loss(loss)

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.steps, "norm": self.norm, "loss": self.loss}

    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress: ProgressFn | None):
        m = images.shape[0]
        adv, met_at = apgd_loop(
            oracle.logits, images, labels, eps=per_image(self.eps, m, images.device, "eps"), steps=self.steps,
            norm=self.norm, loss=self.loss, targets=targets, generators=oracle.item_generators(),
            max_batch=oracle.max_batch, on_step=on_progress, channels_last=self._channels_last(oracle))
        return adv, distances(adv, images) | {"step": met_at}, {}


class APGDT(GradientAttack):
    """AutoAttack's APGD-T (Croce & Hein 2020): untargeted, by the targeted DLR loss towards each of the
    ``n_targets`` classes the model ranks next after the label on the clean image, one run each, until
    one fools the model.

    Distance: L∞ or L2 ball of radius ``eps``, clipped to [0, 1].

    Args:
        model: classifier with at least 4 classes, on N×C×H×W images in [0, 1].
        eps: radius (default 8/255 for L∞, 0.5 for L2).
        steps: iterations per target class (default 100).
        n_targets: how many target classes to try (AutoAttack: 9, capped at classes − 1).
        norm: "linf" or "l2".
        seed, memory_mb: see :class:`attacks.base.Attack`; fast: see :class:`attacks.pgd.GradientAttack`.

    Shape:
        ``attack(images N×C×H×W, labels N)`` → AttackResult (untargeted; given targets are refused);
        ``perturbation["target"]`` is the class whose run fooled the model (-1 none).

    Example::

        >>> result = APGDT(model, eps=8 / 255)(images, labels)
    """

    name = "apgd-t"
    uses_gradients = True

    def __init__(self, model: torch.nn.Module, *, eps: float | None = None, steps: int = DEFAULT_STEPS,
                 n_targets: int = 9, norm: str = "linf", seed: int | None = None, memory_mb: float | None = None, fast: bool = True):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=fast)
        self.eps, _, self.steps = check_budget(norm, eps, None, steps)
        if isinstance(n_targets, bool) or not isinstance(n_targets, int) or n_targets < 1:
            raise NnkitError(f"n_targets must be a whole number >= 1, got {n_targets!r}")
        self.n_targets = n_targets
        self.norm = norm

    def params(self) -> dict:
        return {"eps": self.eps, "steps": self.steps, "norm": self.norm, "loss": "dlr-targeted",
                "n_targets": self.n_targets}

    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress: ProgressFn | None):
        if targets is not None:
            raise NnkitError("APGD-T is untargeted (it picks its own target classes): use APGD for a given target")
        m, dev = images.shape[0], images.device
        with torch.no_grad():
            ranked = oracle.probs(images, torch.arange(m, device=dev)).argsort(1, descending=True)
        n_targets = min(self.n_targets, ranked.shape[1] - 1)
        eps = per_image(self.eps, m, dev, "eps")
        gens = oracle.item_generators()
        adv = images.clone()
        fooled_by = torch.full((m,), -1, dtype=torch.int64, device=dev)
        todo = torch.arange(m, device=dev)
        total = n_targets * (self.steps + 1)
        for j in range(n_targets):
            if todo.numel() == 0:
                break
            # Rank 0 is the label (only correctly classified images are attacked): target rank j + 1.
            tgt = ranked[todo, j + 1]
            done_before = j * (self.steps + 1)
            adv_j, met_at = apgd_loop(
                lambda x, rows, _todo=todo: oracle.logits(x, _todo[rows]), images[todo], labels[todo], eps=eps[todo],
                steps=self.steps, norm=self.norm, loss="dlr", targets=tgt,
                generators=[gens[i] for i in todo.tolist()], early_stop=True, max_batch=oracle.max_batch,
                on_step=None if on_progress is None else (lambda d, _t, _b=done_before: on_progress(_b + d, total)),
                targeted_goal=False, channels_last=self._channels_last(oracle))
            hit = met_at >= 0
            fooled_by[todo[hit]] = tgt[hit]
            # A still-robust image keeps the point of its first run (any run's point is equally a failure).
            keep = hit if j else torch.ones_like(hit)
            adv[todo[keep]] = adv_j[keep]
            todo = todo[~hit]
        if on_progress is not None:
            on_progress(total, total)
        return adv, distances(adv, images) | {"target": fooled_by}, {}
