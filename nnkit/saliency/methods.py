"""The one attribution entry point: ``explain(model, images, target, method)`` over captum's methods.

Every method is captum's own implementation (Kokhlikyan et al. 2020, "Captum: A unified and generic
model interpretability library for PyTorch"); this module only chooses the defaults, batches the
images, finds Grad-CAM's layer and makes sure the caller's tensors are never touched: the images are
copied before captum sets ``requires_grad`` on them, so ``images.grad`` stays as the caller left it.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from nnkit.errors import Cancelled, NnkitError


@dataclass(frozen=True)
class Method:
    """One attribution method: its name, a label for figures, its paper and its options with defaults."""

    name: str
    label: str
    paper: str
    options: dict


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("saliency", "Gradient", "Simonyan, Vedaldi & Zisserman 2014, Deep inside convolutional networks",
               {"abs": True}),
        Method("ig", "Integrated Gradients", "Sundararajan, Taly & Yan 2017, Axiomatic attribution for deep networks",
               {"n_steps": 32, "internal_batch_size": None, "baseline": 0.0}),
        Method("smoothgrad", "SmoothGrad", "Smilkov et al. 2017, SmoothGrad: removing noise by adding noise",
               {"nt_samples": 16, "stdevs": 0.15, "nt_samples_batch_size": None, "abs": True}),
        Method("gradcam", "Grad-CAM", "Selvaraju et al. 2017, Grad-CAM: visual explanations from deep networks",
               {"layer": None, "relu": True, "interpolate_mode": "bilinear"}),
        Method("occlusion", "Occlusion", "Zeiler & Fergus 2014, Visualizing and understanding convolutional networks",
               {"window": 4, "stride": 2, "baseline": 0.0, "perturbations_per_eval": 16}),
        Method("guided_backprop", "Guided Backprop",
               "Springenberg et al. 2015, Striving for simplicity: the all convolutional net", {}),
        Method("deeplift", "DeepLift", "Shrikumar, Greenside & Kundaje 2017, Learning important features through "
               "propagating activation differences", {"baseline": 0.0}),
    )
}

# Other spellings users type, mapped to the canonical names above.
ALIASES = {
    "gradient": "saliency", "vanilla": "saliency", "grad": "saliency",
    "integrated_gradients": "ig", "integrated-gradients": "ig", "integratedgradients": "ig",
    "smooth_grad": "smoothgrad", "smooth-grad": "smoothgrad",
    "grad-cam": "gradcam", "grad_cam": "gradcam", "layergradcam": "gradcam",
    "guided": "guided_backprop", "guided-backprop": "guided_backprop", "guidedbackprop": "guided_backprop",
    "gbp": "guided_backprop", "deep-lift": "deeplift", "deep_lift": "deeplift",
}

# captum announces its temporary hooks on every call; they are removed again, so the notice is noise.
_CAPTUM_NOTICES = (r".*[Ss]etting (forward, )?backward hooks.*", r".*will be removed after the attribution.*")


def list_methods() -> list[Method]:
    """The attribution methods ``explain`` accepts, with their options and defaults."""
    return list(METHODS.values())


def resolve_method(name: str) -> str:
    """The canonical name of ``name`` (an alias such as ``gradient`` or ``grad-cam`` is accepted)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in METHODS:
        raise NnkitError(f"unknown attribution method {name!r}: choose one of {', '.join(METHODS)}")
    return key


def parse_methods(text: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"saliency,gradcam,ig"`` (or a list) → canonical names, in order, without repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for item in items:
        if item.strip():
            name = resolve_method(item)
            if name not in out:
                out.append(name)
    if not out:
        raise NnkitError("no attribution method given: choose from " + ", ".join(METHODS))
    return out


# Modules that act per element (or per channel) and keep the spatial size: the last convolution's
# feature maps are read after them (conv → batch norm → activation), as Grad-CAM's A^k are rectified maps.
_ELEMENTWISE = (nn.BatchNorm2d, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU, nn.Identity)


def find_last_conv(model: nn.Module, example: torch.Tensor) -> tuple[str, nn.Module]:
    """Grad-CAM's layer: the last 2-D convolution the model runs, read after the batch norm and
    activation that directly follow it (its rectified feature maps, as Selvaraju et al. 2017 use).

    The order is taken from a forward pass, not from the module listing, so a block that defines a
    shortcut convolution after its main branch is still handled.

    Args:
        model: the classifier.
        example: one or more input images, on the model's device.

    Returns:
        ``(dotted name, module)``; NnkitError when the model has no convolution (e.g. an MLP).
    """
    names = {m: n for n, m in model.named_modules() if not any(True for _ in m.children())}
    order: list[tuple[nn.Module, tuple]] = []
    handles = [m.register_forward_hook(lambda mod, _i, out: order.append((mod, tuple(getattr(out, "shape", ())))))
               for m in names]
    try:
        with torch.no_grad():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    convs = [i for i, (m, _) in enumerate(order) if isinstance(m, nn.Conv2d)]
    if not convs:
        raise NnkitError("Grad-CAM needs a convolutional layer and this model has none (try saliency or ig)")
    pick = convs[-1]
    shape = order[pick][1]
    for i in range(pick + 1, len(order)):
        module, out_shape = order[i]
        if not isinstance(module, _ELEMENTWISE) or out_shape != shape:
            break
        pick = i
    return names[order[pick][0]], order[pick][0]


def _check_options(method: str, opts: dict) -> dict:
    known = METHODS[method].options
    unknown = set(opts) - set(known)
    if unknown:
        raise NnkitError(f"method {method!r} has no option {', '.join(sorted(unknown))}; "
                         f"options: {', '.join(known) or 'none'}")
    return {**known, **opts}


def _layer(model: nn.Module, layer, example: torch.Tensor) -> nn.Module:
    if layer is None:
        return find_last_conv(model, example)[1]
    if isinstance(layer, nn.Module):
        return layer
    try:
        return model.get_submodule(str(layer))
    except AttributeError:
        raise NnkitError(f"the model has no layer {layer!r}") from None


def _attribute(method: str, model: nn.Module, x: torch.Tensor, target: torch.Tensor, o: dict) -> torch.Tensor:
    """captum's attribution of one batch ``x`` (a private copy that requires grad)."""
    from captum.attr import (
        DeepLift,
        GuidedBackprop,
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        NoiseTunnel,
        Occlusion,
        Saliency,
    )

    if method == "saliency":
        return Saliency(model).attribute(x, target=target, abs=bool(o["abs"]))
    if method == "ig":
        return IntegratedGradients(model).attribute(
            x, baselines=float(o["baseline"]), target=target, n_steps=int(o["n_steps"]),
            internal_batch_size=o["internal_batch_size"])
    if method == "smoothgrad":
        return NoiseTunnel(Saliency(model)).attribute(
            x, nt_type="smoothgrad", nt_samples=int(o["nt_samples"]), stdevs=float(o["stdevs"]),
            nt_samples_batch_size=o["nt_samples_batch_size"], target=target, abs=bool(o["abs"]))
    if method == "gradcam":
        cam = LayerGradCam(model, o["layer"]).attribute(x, target=target, relu_attributions=bool(o["relu"]))
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode=o["interpolate_mode"])
        # One map for all channels: spread it evenly so that summing over channels gives it back.
        return cam.expand(-1, x.shape[1], -1, -1) / x.shape[1]
    if method == "occlusion":
        c, w, s = x.shape[1], int(o["window"]), int(o["stride"])
        if not 1 <= w <= min(x.shape[-2:]) or not 1 <= s <= w:
            raise NnkitError(f"occlusion needs 1 <= stride <= window <= image side, got window {w}, stride {s}")
        return Occlusion(model).attribute(x, sliding_window_shapes=(c, w, w), strides=(c, s, s),
                                          baselines=float(o["baseline"]), target=target,
                                          perturbations_per_eval=int(o["perturbations_per_eval"]))
    if method == "guided_backprop":
        return GuidedBackprop(model).attribute(x, target=target)
    return DeepLift(model).attribute(x, baselines=float(o["baseline"]), target=target)


def _targets(model: nn.Module, images: torch.Tensor, target, device: torch.device, batch_size: int) -> torch.Tensor:
    n = images.shape[0]
    if target is None:
        with torch.no_grad():
            return torch.cat([model(images[i:i + batch_size].to(device)).argmax(1).cpu()
                              for i in range(0, n, batch_size)]) if n else torch.empty(0, dtype=torch.long)
    t = torch.as_tensor(target, dtype=torch.long).cpu()
    if t.ndim == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise NnkitError(f"target must be one class or one class per image ({n}), got shape {tuple(t.shape)}")
    return t


def explain(model: nn.Module, images: torch.Tensor, target=None, method: str = "saliency", *,
            batch_size: int = 64, device: torch.device | str | None = None, seed: int | None = None,
            on_progress: Callable[[int, int], None] | None = None, stop_event: threading.Event | None = None,
            **opts) -> torch.Tensor:
    """Attribute the model's output for ``target`` to the input pixels with one captum method.

    Methods (``list_methods()`` gives the options and defaults):
    ``saliency`` vanilla gradient (Simonyan et al. 2014; ``abs``); ``ig`` Integrated Gradients
    (Sundararajan et al. 2017; ``n_steps``, ``internal_batch_size``, ``baseline``); ``smoothgrad``
    SmoothGrad through NoiseTunnel (Smilkov et al. 2017; ``nt_samples``, ``stdevs`` in [0, 1] pixel
    units); ``gradcam`` Grad-CAM on the last convolution found automatically (``find_last_conv``;
    ``layer`` overrides it with a dotted module name), upsampled to the input size (Selvaraju et al.
    2017; ``relu``, ``interpolate_mode``); ``occlusion`` (Zeiler & Fergus 2014; ``window``, ``stride``,
    ``baseline``); ``guided_backprop`` (Springenberg et al. 2015); ``deeplift`` (Shrikumar et al. 2017;
    ``baseline``). Aliases such as ``gradient`` and ``grad-cam`` are accepted.

    Args:
        model: a classifier taking [0, 1] images (a separate activation module per use, no in-place ops).
        images: the images; never modified, and their ``.grad`` / ``requires_grad`` are left as they were.
        target: None (each image's predicted class), one class for all, or one class per image.
        method: the method name.
        batch_size: images attributed per captum call.
        device: where to compute (default: the model's device).
        seed: seeds SmoothGrad's noise without disturbing the global random state (None: global RNG).
        on_progress: called with (images done, total) after each batch.
        stop_event: when set, stops before the next batch and raises ``nnkit.errors.Cancelled``.
        **opts: the method's options (unknown ones are an error).

    Shape:
        images N×C×H×W float in [0, 1] → attributions N×C×H×W float32 on ``images``' device.
        Grad-CAM's single map is spread evenly over the C channels (``to_map`` sums it back).

    Returns:
        The attributions, detached. Reduce them to N×H×W maps with ``nnkit.saliency.to_map``.
    """
    name = resolve_method(method)
    o = _check_options(name, opts)
    if images.ndim != 4:
        raise NnkitError(f"images must be N×C×H×W, got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise NnkitError(f"batch_size must be at least 1, got {batch_size}")
    try:
        param = next(model.parameters())
        device = torch.device(device) if device is not None else param.device
    except StopIteration:
        device = torch.device(device or "cpu")
    n = images.shape[0]
    was_training = model.training
    model.eval()  # attributions explain the deployed model: no dropout, frozen batch-norm statistics
    out = []
    try:
        targets = _targets(model, images, target, device, batch_size)
        if name == "gradcam" and n:  # the layer is found once, not per batch
            o["layer"] = _layer(model, o["layer"], images[:1].detach().to(device, torch.float32))
        rng = torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=seed is not None)
        with rng, warnings.catch_warnings():
            if seed is not None:
                torch.manual_seed(seed)
            for pattern in _CAPTUM_NOTICES:
                warnings.filterwarnings("ignore", message=pattern)
            for i in range(0, n, batch_size):
                if stop_event is not None and stop_event.is_set():
                    raise Cancelled("attribution cancelled")
                # A private leaf copy: captum calls requires_grad_() on its input, never on the caller's.
                x = images[i:i + batch_size].detach().to(device, dtype=torch.float32).clone().requires_grad_(True)
                t = targets[i:i + batch_size].to(device)
                with torch.enable_grad():
                    attr = _attribute(name, model, x, t, o)
                out.append(attr.detach().float().to(images.device))
                if on_progress is not None:
                    on_progress(min(i + batch_size, n), n)
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros_like(images, dtype=torch.float32)


def explain_many(model: nn.Module, images: torch.Tensor, methods, target=None, **kwargs) -> dict[str, torch.Tensor]:
    """``explain`` for several methods on the same images and targets: ``{method: attributions}``.

    Args:
        methods: names or a comma-separated string (see ``parse_methods``).
        target: as for ``explain``; None is resolved once to the predicted classes so that every
            method explains the same decision.
        **kwargs: passed to ``explain`` (batch_size, device, seed, ...).

    Returns:
        An ordered dict of N×C×H×W attributions.
    """
    names = parse_methods(methods)
    if target is None:
        device = kwargs.get("device")
        try:
            device = torch.device(device) if device is not None else next(model.parameters()).device
        except StopIteration:
            device = torch.device("cpu")
        was_training = model.training
        model.eval()
        try:
            target = _targets(model, images, None, device, kwargs.get("batch_size", 64))
        finally:
            model.train(was_training)
    return {m: explain(model, images, target, m, **kwargs) for m in names}
