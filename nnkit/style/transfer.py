"""Neural style transfer by optimisation (Gatys, Ecker & Bethge 2016, "Image Style Transfer Using CNNs").

The output image's pixels are optimised so that its VGG-19 relu4_2 activations match the content
image's (content) and the Gram matrices of its relu1_1..relu5_1 activations match the style image's
(style), with a total-variation term for smoothness (Mahendran & Vedaldi 2015).

Each layer's loss is normalised by its target's energy: ``‖G(x) − G(s)‖² / ‖G(s)‖²`` for style and
``‖F(x) − F(c)‖² / ‖F(c)‖²`` for content, so each style layer counts equally and the weights mean the
same for either feature network. Gatys et al. weight layers by 1/(4N²M²) instead; that suits the
pretrained network, whose layer scales it was tuned on, but not the random fallback network, whose
activation energy changes by orders of magnitude from layer to layer (He et al. 2016 normalise too).

A "step" is one evaluation of the loss and its gradient (one forward and backward pass), for both
optimisers: L-BFGS (the paper's choice; several evaluations per iteration in its line search) and Adam.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from nnkit.device import describe_device, get_device
from nnkit.errors import Cancelled, NnkitError
from nnkit.seeding import check_seed, seed_everything
from nnkit.style.images import resize_longer
from nnkit.style.vgg import CONTENT_LAYER, STYLE_LAYERS, WEIGHT_CHOICES, FeatureNet, load_feature_net
from nnkit.validate import check_number, check_whole

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise")
RANGE_WEIGHT = 1e4  # weight of the penalty on pixels outside [0, 1]
MIN_SIZE = 16  # VGG-19 pools four times: below 16 px the deepest style layer has no pixels left
# At 1024 px one forward and backward pass keeps about 3 GB of VGG-19 activations (the first block alone is
# 4 maps of 64×1024×1024 floats) and a CPU step takes minutes; 100,000 px would ask for terabytes.
MAX_SIZE = 1024
MAX_STEPS = 10_000  # loss evaluations; the defaults converge in 300
# The style page's default run, measured once (issue 17): the built-in landscape in the style of waves, 128 px (the
# CPU default), 300 L-BFGS steps, offline, so on the random VGG-19. The output is visibly stylised (the landscape's
# house, tree and sun repainted in the waves' colours and stripes; style loss 99.9% lower, 99.8% after 100 steps).
DEFAULT_MEASURED = {"size": 128, "steps": 300, "cpu_seconds": 81.4, "wall_seconds": 219.6, "threads": 2,
                    "machine": "a 2-core Intel Xeon shared with other work (load average 11), 2026-12-02"}


@dataclass
class StyleConfig:
    """Everything that defines a style transfer (defaults tuned for 128–256 px on the built-in images)."""

    steps: int = 300  # loss evaluations (forward + backward passes)
    size: int = 256  # longer side of the output in pixels (content and style are resized to it)
    content_weight: float = 1.0  # weight of the normalised content loss
    style_weight: float = 100.0  # weight of the mean normalised style loss over the five layers
    tv_weight: float = 1.0  # weight of the total-variation loss (mean squared neighbour difference)
    optimizer: str = "lbfgs"  # lbfgs (Gatys et al.) | adam
    lr: float | None = None  # step size; None: 1.0 for L-BFGS (with line search), 0.02 for Adam
    init: str = "content"  # start from the content image or from uniform noise
    weights: str = "auto"  # auto | imagenet | random (see nnkit.style.vgg.load_feature_net)
    seed: int | None = None  # seeds the noise start; None: random, recorded
    device: str | None = None  # cpu | cuda | mps | None (auto, or $NNKIT_DEVICE)
    preview_every: int = 0  # put the current image into every n-th progress event (0: never)

    def validate(self) -> StyleConfig:
        """Raise a one-line NnkitError for a bad value; return self."""
        check_whole("steps", self.steps, 1, MAX_STEPS)
        check_whole("size", self.size, MIN_SIZE, MAX_SIZE)
        for key in ("content_weight", "style_weight", "tv_weight"):
            check_number(key, getattr(self, key), 0)
        check_whole("preview_every", self.preview_every, 0, MAX_STEPS)
        if self.seed is not None:
            check_seed(self.seed)
        if self.optimizer not in OPTIMIZERS:
            raise NnkitError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        if self.init not in INITS:
            raise NnkitError(f"unknown init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.weights not in WEIGHT_CHOICES:
            raise NnkitError(f"unknown weights {self.weights!r}: choose one of {', '.join(WEIGHT_CHOICES)}")
        if self.lr is not None and not check_number("lr", self.lr) > 0:
            raise NnkitError(f"lr must be positive, got {self.lr}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StyleProgress:
    """One progress event per loss evaluation."""

    step: int  # evaluations done (1-based)
    steps: int
    loss: float  # weighted total
    content_loss: float  # normalised, unweighted
    style_loss: float
    tv_loss: float
    image: torch.Tensor | None = field(default=None, repr=False)  # 1×3×H×W in [0, 1] on CPU (previews)


@dataclass
class StyleResult:
    """A finished style transfer."""

    image: torch.Tensor  # 1×3×H×W in [0, 1] on CPU
    feature_network: str  # "vgg19-imagenet" or "vgg19-random"
    feature_network_description: str
    style_loss_start: float  # normalised style loss of the starting image
    style_loss_end: float  # ... of the (clamped) output
    content_loss_start: float
    content_loss_end: float
    gram_distance_output_style: float  # see gram_distance
    gram_distance_output_content: float
    gram_distance_content_style: float
    steps: int  # evaluations done
    seconds: float
    seed: int
    device: str
    config: StyleConfig
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "content", "style", "tv"} per evaluation

    @property
    def style_loss_reduction(self) -> float:
        """Fraction by which the style loss fell (0.9 = by 90%)."""
        return 1.0 - self.style_loss_end / self.style_loss_start if self.style_loss_start > 0 else 0.0

    def to_dict(self) -> dict:
        """JSON-ready summary (no image, no history)."""
        return {"feature_network": self.feature_network, "feature_network_description":
                self.feature_network_description, "style_loss_start": self.style_loss_start,
                "style_loss_end": self.style_loss_end, "style_loss_reduction": self.style_loss_reduction,
                "content_loss_start": self.content_loss_start, "content_loss_end": self.content_loss_end,
                "gram_distance_output_style": self.gram_distance_output_style,
                "gram_distance_output_content": self.gram_distance_output_content,
                "gram_distance_content_style": self.gram_distance_content_style, "steps": self.steps,
                "seconds": self.seconds, "seed": self.seed, "device": self.device, "size": list(self.image.shape[-2:]),
                "config": self.config.to_dict()}


class _BudgetSpent(Exception):
    """Raised by the closure when the evaluation budget (``config.steps``) is used up."""


def loss_change(start: float, end: float) -> str:
    """How a loss changed, in words: "fell from 0.8123 to 0.0004 (99.95% lower)".

    A drop is given with enough digits that it never reads as a "−100%" when the loss did not reach zero.

    Args:
        start, end: the loss before the first and after the last step.

    Returns:
        One phrase ("fell from X to Y (P% lower)", "rose from X to Y (P% higher)" or "stayed at X").
    """
    if start == end or not start > 0:
        return f"stayed at {end:.4g}" if start == end else f"went from {start:.4g} to {end:.4g}"
    share = abs(end - start) / start
    digits = 1
    while digits < 4 and round(share * 100, digits) >= 100 and end > 0:
        digits += 1
    word, side = ("fell", "lower") if end < start else ("rose", "higher")
    percent = f"{share * 100:.{digits}f}%"
    if end > 0 and round(share * 100, digits) >= 100:  # not zero, so never "100%"
        percent = f"more than {100 - 10 ** -digits:.{digits}f}%"
    return f"{word} from {start:.4g} to {end:.4g} ({percent} {side})"


def gram(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix of feature maps, averaged over positions (Gatys et al. 2016, eq. 3, divided by H·W).

    Shape:
        N×C×H×W → N×C×C.
    """
    n, c, h, w = features.shape
    f = features.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def _relative(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (x - target).pow(2).sum() / target.pow(2).sum().clamp(min=1e-12)


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    """Total variation: mean squared difference of vertical and horizontal neighbours (N×C×H×W → scalar)."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


@torch.no_grad()
def gram_distance(net: FeatureNet, a: torch.Tensor, b: torch.Tensor) -> float:
    """Symmetric, scale-free distance between the style statistics of two images.

    Mean over relu1_1..relu5_1 of ‖G(a) − G(b)‖² / (‖G(a)‖·‖G(b)‖): 0 for identical Gram matrices, and
    comparable between pairs because no image of the pair is the privileged reference.

    Shape:
        a, b 1×3×H×W in [0, 1] (sizes may differ) → a float >= 0.
    """
    dev = net.mean.device
    fa, fb = net(a.to(dev), STYLE_LAYERS), net(b.to(dev), STYLE_LAYERS)
    total = 0.0
    for name in STYLE_LAYERS:
        ga, gb = gram(fa[name]), gram(fb[name])
        total += float((ga - gb).pow(2).sum() / (ga.norm() * gb.norm()).clamp(min=1e-12))
    return total / len(STYLE_LAYERS)


def stylise(content: torch.Tensor, style: torch.Tensor, config: StyleConfig | None = None,
            on_progress: Callable[[StyleProgress], None] | None = None, stop_event: threading.Event | None = None,
            net: FeatureNet | None = None) -> StyleResult:
    """Paint ``content`` in the style of ``style`` (Gatys et al. 2016).

    Args:
        content: the content image; resized so its longer side is ``config.size``.
        style: the style image; resized the same way (its texture scale follows the output's).
        config: a StyleConfig (default: StyleConfig()).
        on_progress: called with a StyleProgress after every loss evaluation.
        stop_event: when set, the job stops within one evaluation and ``nnkit.errors.Cancelled`` is raised.
        net: a feature network to reuse (default: ``load_feature_net(config.weights, device)``).

    Shape:
        content, style 1×3×H×W (or 3×H×W) in [0, 1] → ``result.image`` 1×3×h×w in [0, 1] on CPU with
        the content's aspect ratio and max(h, w) == config.size.

    Returns:
        StyleResult with the image, the feature network used, style and content losses at start and end,
        Gram distances between output, style and content, and the per-step history.
    """
    config = (config or StyleConfig()).validate()
    t0 = time.perf_counter()
    for name, img in (("content", content), ("style", style)):
        if img.ndim not in (3, 4) or img.shape[-3] != 3:
            raise NnkitError(f"{name} image must be RGB shaped 3×H×W or 1×3×H×W, got {tuple(img.shape)}")
    content = content if content.ndim == 4 else content[None]
    style = style if style.ndim == 4 else style[None]
    seed = seed_everything(config.seed)
    device = get_device(config.device)
    net = net.to(device) if net is not None else load_feature_net(config.weights, device)
    content = resize_longer(content[:1].float().clamp(0, 1), config.size).to(device)
    style = resize_longer(style[:1].float().clamp(0, 1), config.size).to(device)

    with torch.no_grad():
        content_target = net(content, (CONTENT_LAYER,))[CONTENT_LAYER]
        style_feats = net(style, STYLE_LAYERS)
        style_targets = {n: gram(style_feats[n]) for n in STYLE_LAYERS}
    layers = (*STYLE_LAYERS, CONTENT_LAYER)

    def losses(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = net(x, layers)
        c = _relative(feats[CONTENT_LAYER], content_target)
        s = sum(_relative(gram(feats[n]), style_targets[n]) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
        tv = tv_loss(x)
        # A steep quadratic wall outside [0, 1] keeps L-BFGS's pixels in range while leaving the loss
        # smooth, which its line search needs (clamping inside the search would break its model).
        wall = (x - x.clamp(0, 1)).pow(2).mean() * RANGE_WEIGHT
        return config.content_weight * c + config.style_weight * s + config.tv_weight * tv + wall, c, s, tv

    if config.init == "content":
        x = content.clone()
    else:
        x = torch.rand(content.shape, generator=torch.Generator().manual_seed(seed)).to(device)
    x.requires_grad_(True)
    history: list[dict] = []
    evaluations = 0
    best: list = [float("inf"), None]  # lowest total loss seen and its image

    def closure() -> torch.Tensor:
        nonlocal evaluations
        if stop_event is not None and stop_event.is_set():
            raise Cancelled("style transfer cancelled")
        if evaluations >= config.steps:
            # L-BFGS's line search may ask for one evaluation past max_eval: the budget is exact instead.
            raise _BudgetSpent
        opt.zero_grad(set_to_none=True)
        total, c, s, tv = losses(x)
        total.backward()
        evaluations += 1
        if config.optimizer == "lbfgs" and float(total.detach()) < best[0]:
            best[0], best[1] = float(total.detach()), x.detach().clone()
        record = {"step": evaluations, "loss": float(total.detach()), "content": float(c.detach()),
                  "style": float(s.detach()), "tv": float(tv.detach())}
        history.append(record)
        if on_progress is not None:
            preview = None
            if config.preview_every and (evaluations % config.preview_every == 0 or evaluations == config.steps):
                preview = x.detach().clamp(0, 1).cpu()
            on_progress(StyleProgress(evaluations, config.steps, record["loss"], record["content"], record["style"],
                                      record["tv"], preview))
        return total

    if config.optimizer == "lbfgs":
        # One L-BFGS call with an evaluation budget; the strong-Wolfe line search keeps the step size right
        # for either feature network. Pixels stay unconstrained during the search (a projection would
        # break the line search's model) and are clamped at the end, as in Gatys et al.'s implementation.
        opt = torch.optim.LBFGS([x], lr=config.lr or 1.0, max_iter=config.steps, max_eval=config.steps,
                                tolerance_grad=1e-9, tolerance_change=1e-12, history_size=50,
                                line_search_fn="strong_wolfe")
        try:
            opt.step(closure)
        except _BudgetSpent:
            pass
        # The search may stop at a trial point: keep the best image it evaluated.
        if best[1] is not None:
            with torch.no_grad():
                x.copy_(best[1])
    else:
        opt = torch.optim.Adam([x], lr=config.lr or 0.02)
        for _ in range(config.steps):
            opt.step(closure)
            with torch.no_grad():
                x.clamp_(0, 1)  # projected gradient descent onto the valid pixel range

    out = x.detach().clamp(0, 1)
    with torch.no_grad():
        _, c_end, s_end, _ = losses(out)
    result = StyleResult(
        image=out.cpu(), feature_network=net.name, feature_network_description=net.description,
        style_loss_start=history[0]["style"], style_loss_end=float(s_end),
        content_loss_start=history[0]["content"], content_loss_end=float(c_end),
        gram_distance_output_style=gram_distance(net, out, style),
        gram_distance_output_content=gram_distance(net, out, content),
        gram_distance_content_style=gram_distance(net, content, style),
        steps=evaluations, seconds=time.perf_counter() - t0, seed=seed, device=describe_device(device),
        config=config, history=history)
    return result
