"""Projected gradient descent (PGD) in the L∞ and L2 balls, with a random start.

Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to Adversarial
Attacks", ICLR 2018 (arXiv:1706.06083).

Distance measure: L∞ (``norm="linf"``) or L2 (``norm="l2"``) around the clean image, of radius ε;
the adversarial image stays in [0, 1].

Each step ascends the cross-entropy of the true class (untargeted) or descends that of the target
class (targeted), then projects back onto the ε-ball and the image box:

- L∞: ``x ← clip_[0,1](Π_ε(x + α · sign(∇)))``, Π_ε clipping every pixel to [x₀ − ε, x₀ + ε];
- L2: ``x ← clip_[0,1](Π_ε(x + α · ∇ / ‖∇‖₂))``, Π_ε scaling the perturbation down to norm ε.

The random start draws uniformly from the L∞ ball, or, for L2, a uniformly random direction with a
radius uniform in [0, ε] (as torchattacks' ``PGDL2`` does). Defaults are torchattacks': L∞ ε = 8/255,
α = 2/255; L2 ε = 0.5, α = 0.1; 10 steps.

The loss is summed over the batch, not averaged, so every image's gradient (and so its path) is
the one it would have alone, whatever the batch holds. The random start of image i comes from
``generators[i]`` when given, so it does not depend on the batch either (see :mod:`attacks.base`).

:func:`pgd_perturb` is the plain loop (used by adversarial training); :class:`PGD` is the attack
through the :class:`attacks.base.Attack` contract (eval mode, query counting, the model's verdict).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from attacks.base import Attack, Oracle, ProgressFn, inference_copy
from nnkit.errors import NnkitError

NORMS = ("linf", "l2")
# torchattacks' defaults (PGD and PGDL2), which follow Madry et al.'s CIFAR-10 settings for L∞.
DEFAULTS = {"linf": {"eps": 8 / 255, "alpha": 2 / 255}, "l2": {"eps": 0.5, "alpha": 0.1}}
DEFAULT_STEPS = 10
# Guards the division by a zero gradient (an image whose loss is flat there does not move).
_TINY = 1e-12

# logits_fn(x, rows): logits of the images x, which are the rows ``rows`` of the batch being attacked.
_RowLogits = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_norm(norm: str) -> str:
    """Check a norm name.

    Args:
        norm: "linf" or "l2".
    Returns:
        ``norm`` unchanged; a one-line NnkitError for any other name.
    """
    if norm not in NORMS:
        raise NnkitError(f"unknown norm {norm!r}: choose linf or l2")
    return norm


def per_image(value, n: int, device, what: str) -> torch.Tensor:
    """A scalar or N values (ε, α) as per-image values.

    Args:
        value: a number or N numbers; n: images; device: where the tensor goes; what: its name in errors.
    Shape:
        float or N → N.
    Returns:
        N float32 tensor on ``device``; a one-line NnkitError if a value is not finite and ≥ 0.
    """
    t = torch.as_tensor(value, dtype=torch.float32).reshape(-1).to(device)
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise NnkitError(f"{what} needs one value or {n} values, got {t.numel()}")
    if not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        raise NnkitError(f"{what} must be finite and >= 0, got {value}")
    return t.contiguous()


def _expand(t: torch.Tensor) -> torch.Tensor:
    return t[:, None, None, None]


def uniform_noise(like: torch.Tensor, generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    """Uniform noise whose row i is drawn from image i's own generator (results independent of the batch).

    Args:
        like: the tensor whose shape and device the noise takes.
        generators: one per row (each drawing on its own device), or None for the global RNG.
    Shape:
        like N×C×H×W → N×C×H×W on ``like``'s device.
    Returns:
        U(0, 1) noise.
    """
    if generators is None:
        return torch.rand_like(like, memory_format=torch.contiguous_format)
    if len(generators) != like.shape[0]:
        raise NnkitError(f"{like.shape[0]} images need {like.shape[0]} generators, got {len(generators)}")
    rows = [torch.rand(like.shape[1:], generator=g, device=g.device) for g in generators]
    return torch.stack(rows).to(like.device) if rows else torch.empty_like(like)


def normal_noise(like: torch.Tensor, generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    """Gaussian noise whose row i is drawn from image i's own generator (see :func:`uniform_noise`).

    Args:
        like: the tensor whose shape and device the noise takes; generators: one per row, or None.
    Shape:
        like N×C×H×W → N×C×H×W.
    Returns:
        N(0, 1) noise.
    """
    if generators is None:
        return torch.randn_like(like, memory_format=torch.contiguous_format)
    if len(generators) != like.shape[0]:
        raise NnkitError(f"{like.shape[0]} images need {like.shape[0]} generators, got {len(generators)}")
    rows = [torch.randn(like.shape[1:], generator=g, device=g.device) for g in generators]
    return torch.stack(rows).to(like.device) if rows else torch.empty_like(like)


def random_start(x0: torch.Tensor, eps: torch.Tensor, norm: str,
                 generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    """PGD's random start (Madry et al. 2018).

    Args:
        x0: clean images; eps: per-image radii; norm: "linf" or "l2"; generators: one per image, or None.
    Shape:
        x0 N×C×H×W, eps N → N×C×H×W.
    Returns:
        A uniform draw from the L∞ ball around ``x0``, or (L2) a uniform direction at a radius uniform in
        [0, ε], clipped to [0, 1].
    """
    if norm == "linf":
        delta = (uniform_noise(x0, generators) * 2 - 1) * _expand(eps)
    else:
        direction = normal_noise(x0, generators)
        # The radius is drawn after the direction, from the same per-image stream.
        radius = uniform_noise(x0[:, :1, :1, :1], generators) * _expand(eps)
        delta = direction * radius / _expand(direction.flatten(1).norm(dim=1).clamp_min(_TINY))
    return (x0 + delta).clamp_(0, 1)


def project(x: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, norm: str) -> torch.Tensor:
    """The projection step of PGD (Madry et al. 2018).

    Args:
        x: iterates; x0: clean images; eps: per-image radii; norm: "linf" or "l2".
    Shape:
        x, x0 N×C×H×W; eps N → N×C×H×W.
    Returns:
        ``x`` projected onto the ε-ball around ``x0`` (L∞: every pixel clipped; L2: the perturbation scaled
        down to norm ε), then onto [0, 1].
    """
    e = _expand(eps)
    if norm == "linf":
        return torch.minimum(torch.maximum(x, x0 - e), x0 + e).clamp_(0, 1)
    delta = x - x0
    norms = delta.flatten(1).norm(dim=1)
    factor = (eps / norms.clamp_min(_TINY)).clamp(max=1)
    return (x0 + delta * _expand(factor)).clamp_(0, 1)


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent direction of unit size for the norm (Madry et al. 2018, Sec. 2.1).

    Args:
        grad: the loss gradient; norm: "linf" or "l2".
    Shape:
        N×C×H×W → N×C×H×W.
    Returns:
        sign(∇) for L∞, ∇/‖∇‖₂ per image for L2 (zero where the gradient is zero).
    """
    if norm == "linf":
        return grad.sign()
    return grad / _expand(grad.flatten(1).norm(dim=1).clamp_min(_TINY))


def attack_loss(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    """The loss PGD and FGSM ascend (Goodfellow et al. 2015; Madry et al. 2018).

    Args:
        logits: the model's outputs; labels: true classes; targets: target classes (targeted) or None.
    Shape:
        logits B×K, labels B, targets B or None → scalar.
    Returns:
        The cross-entropy of the labels (untargeted) or minus that of the targets, summed (not averaged) so
        each image's gradient is the one it would have alone.
    """
    if targets is None:
        return F.cross_entropy(logits, labels, reduction="sum")
    return -F.cross_entropy(logits, targets, reduction="sum")


def _goal(logits: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
    pred = logits.argmax(1)
    return pred == targets if targets is not None else pred != labels


def pgd_loop(logits_fn: _RowLogits, images: torch.Tensor, labels: torch.Tensor, *, eps: torch.Tensor,
             alpha: torch.Tensor, steps: int, norm: str, start: bool, targets: torch.Tensor | None,
             generators: Sequence[torch.Generator] | None, early_stop: bool = False,
             max_batch: int | None = None, on_step: Callable[[int, int], None] | None = None,
             check_last: bool = False, channels_last: bool = False):
    """The PGD iteration behind :func:`pgd_perturb` and :class:`PGD` (arguments checked by the caller).

    Args:
        logits_fn: ``logits_fn(x, rows)`` → logits with autograd for images ``x``, which are the rows
            ``rows`` (a LongTensor) of ``images``.
        images, labels, targets: the batch (N×C×H×W in [0, 1], N, N or None), on one device.
        eps, alpha: N per-image radius and step size.
        steps: gradient steps.
        norm: "linf" or "l2".
        start: begin at a random point of the ball (else at the clean image).
        generators: one per image for the random start, or None (global RNG).
        early_stop: stop an image at the first iterate that meets the goal (read off the logits each
            step computes anyway, so it costs nothing); False runs every image for all steps and returns
            the last iterate, as the paper does.
        max_batch: most images per forward pass (None: all at once).
        on_step: called with (steps done, steps) after every step.
        check_last: with ``early_stop``, also check the last iterate (one more forward pass without
            autograd for the images still running), so ``met_at`` tells every success.
        channels_last: hand the model its inputs in channels-last layout (faster for a channels-last
            convolutional model, as :func:`attacks.base.inference_copy` makes).

    Shape:
        → (N×C×H×W adversarial images, detached, in [0, 1]; N int64 step at which the goal was first met,
        -1 if never or not tracked).
    """
    n = images.shape[0]
    dev = images.device
    x0 = images.detach()
    x = random_start(x0, eps, norm, generators) if start else x0.clone()
    met_at = torch.full((n,), -1, dtype=torch.int64, device=dev)
    alive = torch.arange(n, device=dev)
    chunk = n if not max_batch else max(1, int(max_batch))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for step in range(steps):
        grads, hits = [], []
        for i in range(0, alive.numel(), chunk):
            rows = alive[i : i + chunk]
            xi = x[rows].contiguous(memory_format=layout).requires_grad_(True)
            logits = logits_fn(xi, rows)
            loss = attack_loss(logits, labels[rows], targets[rows] if targets is not None else None)
            (g,) = torch.autograd.grad(loss, xi)
            grads.append(g)
            if early_stop:
                hits.append(_goal(logits.detach(), labels[rows], targets[rows] if targets is not None else None))
        grad = grads[0] if len(grads) == 1 else torch.cat(grads)
        xa = x[alive]
        if early_stop:
            hit = hits[0] if len(hits) == 1 else torch.cat(hits)
            # The iterate that met the goal is kept as it is; only the others take the step.
            met_at[alive[hit]] = step
            keep = ~hit
            alive, xa, grad = alive[keep], xa[keep], grad[keep]
        if alive.numel():
            xa = xa + _expand(alpha[alive]) * ascent_direction(grad, norm)
            x[alive] = project(xa, x0[alive], eps[alive], norm)
        if on_step is not None:
            on_step(step + 1, steps)
        if alive.numel() == 0:
            if on_step is not None and step + 1 < steps:
                on_step(steps, steps)
            break
    if early_stop and check_last and alive.numel() and steps > 0:
        with torch.no_grad():
            for i in range(0, alive.numel(), chunk):
                rows = alive[i : i + chunk]
                hit = _goal(logits_fn(x[rows], rows), labels[rows], targets[rows] if targets is not None else None)
                met_at[rows[hit]] = steps
    return x.detach(), met_at


def pgd_perturb(logits_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, labels: torch.Tensor, *,
                eps, alpha, steps: int, norm: str = "linf", random_start: bool = True,
                targets: torch.Tensor | None = None, generators: Sequence[torch.Generator] | None = None,
                early_stop: bool = False) -> torch.Tensor:
    """PGD adversarial images (Madry et al. 2018), L∞ or L2, untargeted or targeted.

    The plain loop, usable outside the Attack contract (adversarial training): the caller chooses the
    model's mode (eval for an evaluation; the attack does not switch it) and every forward pass goes
    through ``logits_fn``. Only the images' gradient is taken (``torch.autograd.grad``), so the
    parameters' ``.grad`` are left untouched.

    Args:
        logits_fn: ``logits_fn(x)`` → B×K logits with autograd (normalisation inside).
        images: N×C×H×W clean images in [0, 1].
        labels: N true classes.
        eps: radius of the ball (a float or N per-image values), e.g. 8/255 (L∞) or 0.5 (L2).
        alpha: step size (a float or N values), e.g. 2/255 (L∞) or 0.1 (L2).
        steps: number of gradient steps (0 returns the random start, or the clean images).
        norm: "linf" or "l2".
        random_start: start from a uniform draw in the ball (Madry et al.) rather than the clean image.
        targets: N target classes for a targeted attack (descend their cross-entropy); None: untargeted.
        generators: one ``torch.Generator`` per image for the random start (results then do not depend
            on the batch); None: the global RNG.
        early_stop: keep each image's first iterate that meets the goal instead of the last iterate.

    Shape:
        images N×C×H×W, labels N, targets N → N×C×H×W.

    Returns:
        The adversarial images, detached, in [0, 1], on the images' device.

    Example::

        >>> adv = pgd_perturb(model, x, y, eps=8 / 255, alpha=2 / 255, steps=10)
    """
    x, y, t, e, a = check_inputs(images, labels, targets, eps, alpha, steps, norm)
    adv, _ = pgd_loop(lambda xi, _rows: logits_fn(xi), x, y, eps=e, alpha=a, steps=int(steps), norm=norm,
                      start=bool(random_start), targets=t, generators=generators, early_stop=early_stop)
    return adv


def check_inputs(images, labels, targets, eps, alpha, steps, norm):
    """The plain functions' inputs checked (one-line NnkitError) and put on the images' device.

    Returns:
        (images detached, labels N, targets N or None, eps N, alpha N), on the images' device.
    """
    check_norm(norm)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        raise NnkitError("images must be a float tensor N×C×H×W in [0, 1]")
    n, dev = images.shape[0], images.device
    labels = torch.as_tensor(labels, dtype=torch.int64, device=dev).reshape(-1)
    if labels.numel() != n:
        raise NnkitError(f"{n} images but {labels.numel()} labels")
    if targets is not None:
        targets = torch.as_tensor(targets, dtype=torch.int64, device=dev).reshape(-1)
        if targets.numel() == 1 and n != 1:
            targets = targets.expand(n)
        if targets.numel() != n:
            raise NnkitError(f"{n} images but {targets.numel()} targets")
    if isinstance(steps, bool) or int(steps) != steps or steps < 0:
        raise NnkitError(f"steps must be a whole number >= 0, got {steps}")
    return (images.detach(), labels, targets, per_image(eps, n, dev, "eps"), per_image(alpha, n, dev, "alpha"))


def check_budget(norm: str, eps: float | None, alpha: float | None, steps: int) -> tuple[float, float, int]:
    """ε, α and steps for a norm with torchattacks' defaults filled in; a one-line NnkitError when out of range.

    Returns:
        (eps, alpha, steps).
    """
    check_norm(norm)
    eps = DEFAULTS[norm]["eps"] if eps is None else eps
    alpha = DEFAULTS[norm]["alpha"] if alpha is None else alpha
    for name, value in (("eps", eps), ("alpha", alpha)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= float(value) < float("inf"):
            raise NnkitError(f"{name} must be a finite number >= 0, got {value!r}")
    if norm == "linf" and eps > 1:
        raise NnkitError(f"an L∞ eps above 1 changes nothing more on images in [0, 1], got {eps}")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 0 <= steps <= 100_000:
        raise NnkitError(f"steps must be a whole number from 0 to 100000, got {steps!r}")
    return float(eps), float(alpha), int(steps)


class GradientAttack(Attack):
    """Base of the white-box attacks here (FGSM, PGD, APGD, min-ε): gradients through ``oracle.logits``.

    With ``fast`` (the default) the gradients flow through an :func:`attacks.base.inference_copy` of the
    model (BatchNorm folded into the convolutions, frozen weights, channels-last), which computes the
    same function up to float rounding and skips the weight gradients: about 1.3× faster per step on
    CPU for the shapes cnn. The verdict on the returned images is always the model's own.
    """

    uses_gradients = True

    def _inference_model(self) -> torch.nn.Module | None:
        return inference_copy(self.model) if self.fast else None

    @staticmethod
    def _channels_last(oracle: Oracle) -> bool:
        """Whether the oracle's model runs fastest on channels-last inputs (a convolutional inference copy)."""
        fast = oracle.fast_model
        return fast is not None and any(isinstance(m, torch.nn.Conv2d) for m in fast.modules())


class PGD(GradientAttack):
    """Projected gradient descent with a random start (Madry et al. 2018), L∞ or L2.

    Distance: L∞ or L2 ball of radius ``eps`` around the clean image, clipped to [0, 1].

    Args:
        model: classifier on N×C×H×W images in [0, 1].
        eps: radius (default: 8/255 for L∞, 0.5 for L2).
        alpha: step size (default: 2/255 for L∞, 0.1 for L2).
        steps: gradient steps (default 10).
        norm: "linf" or "l2".
        random_start: start from a uniform draw in the ball (default True), from the image's own stream.
        early_stop: keep an image's first iterate that fools the model (default True: robust accuracy
            counts an image as robust only if no iterate fooled it; the paper's last iterate can only
            be weaker). False runs every step and returns the last iterate.
        seed, memory_mb: see :class:`attacks.base.Attack`; fast: see :class:`attacks.pgd.GradientAttack`.

    Shape:
        ``attack(images N×C×H×W in [0, 1], labels N[, targets N])`` → AttackResult; ``perturbation["linf"]``
        and ``perturbation["l2"]`` are the N per-image distances, ``perturbation["step"]`` the step at
        which the goal was first met (-1: never during the search).

    Example::

        >>> result = PGD(model, eps=8 / 255, steps=10)(images, labels)
        >>> 1 - result.success_rate
    """

    name = "pgd"
    uses_gradients = True

    def __init__(self, model: torch.nn.Module, *, eps: float | None = None, alpha: float | None = None,
                 steps: int = DEFAULT_STEPS, norm: str = "linf", random_start: bool = True, early_stop: bool = True,
                 seed: int | None = None, memory_mb: float | None = None, fast: bool = True):
        super().__init__(model, seed=seed, memory_mb=memory_mb, fast=fast)
        self.eps, self.alpha, self.steps = check_budget(norm, eps, alpha, steps)
        self.norm = norm
        self.random_start = bool(random_start)
        self.early_stop = bool(early_stop)

    def params(self) -> dict:
        return {"eps": self.eps, "alpha": self.alpha, "steps": self.steps, "norm": self.norm,
                "random_start": self.random_start, "early_stop": self.early_stop}

    def _run(self, oracle: Oracle, images, labels, targets, gen, on_progress: ProgressFn | None):
        m = images.shape[0]
        adv, met_at = pgd_loop(
            oracle.logits, images, labels, eps=per_image(self.eps, m, images.device, "eps"),
            alpha=per_image(self.alpha, m, images.device, "alpha"), steps=self.steps, norm=self.norm,
            start=self.random_start, targets=targets,
            generators=oracle.item_generators() if self.random_start else None,
            early_stop=self.early_stop, max_batch=oracle.max_batch, on_step=on_progress,
            channels_last=self._channels_last(oracle))
        return adv, distances(adv, images) | {"step": met_at}, {}


def distances(adv: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """How far each adversarial image is from its clean image.

    Args:
        adv: adversarial images; images: clean images.
    Shape:
        N×C×H×W twice → {"linf": N, "l2": N}.
    Returns:
        Per-image L∞ and L2 distances.
    """
    d = (adv - images).flatten(1)
    return {"linf": d.abs().amax(1) if d.shape[1] else d.new_zeros(d.shape[0]), "l2": d.norm(dim=1)}


def eps_label(eps: float) -> str:
    """A budget as people write it: a whole multiple of 1/255 as a fraction ("8/255"), else a short decimal.

    Returns:
        e.g. "8/255", "0.5", "0" (round-trips through ``nnkit.cli.common.eps_value`` to the same float
        up to rounding).
    """
    eps = float(eps)
    k = round(eps * 255)
    if k > 0 and abs(eps * 255 - k) < 1e-6:
        return f"{k}/255"
    return f"{eps:.6g}"
