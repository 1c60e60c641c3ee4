"""The feature network of style transfer: VGG-19 (Simonyan & Zisserman 2015) up to relu5_1.

Pretrained ImageNet weights come through torchvision when its cache holds them or the network can
fetch them, and are only ever read as plain tensors (``weights_only=True``): a cached file holding other
pickled objects is refused with a warning and the random network is used. Offline (NNKIT_OFFLINE=1, or a failed download) the network keeps seeded random He
initialised weights instead: random convolution stacks still carry texture statistics (He, Wang &
Hopcroft 2016; Ustyuzhaninov, Brendel, Gatys & Bethge 2017), and the losses are normalised per
layer (see ``nnkit.style.transfer``) because random layers differ in scale by orders of magnitude.
``FeatureNet.description`` says which network was used; every result carries it.

Max pooling is replaced by average pooling, as Gatys et al. (2016) recommend for image synthesis
(smoother gradients); the pretrained weights stay valid because pooling has no parameters.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import socket
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from nnkit.errors import NnkitError

log = logging.getLogger(__name__)

# VGG-19's convolution widths per block ("configuration E"); each block ends in a 2×2 pooling.
_BLOCKS = ((64, 64), (128, 128), (256, 256, 256, 256), (512, 512, 512, 512), (512,))
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
WEIGHT_CHOICES = ("auto", "imagenet", "random")
RANDOM_SEED = 0  # the random network is always the same one, so results repeat

# ImageNet statistics the pretrained network expects (used for the random one too, for one code path).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def _layers() -> tuple[nn.Sequential, list[str]]:
    """VGG-19 ``features`` up to relu5_1 with torchvision's module indices, and a name per module."""
    modules: list[nn.Module] = []
    names: list[str] = []
    channels = 3
    for b, widths in enumerate(_BLOCKS, start=1):
        for c, width in enumerate(widths, start=1):
            modules += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
            channels = width
        if b < len(_BLOCKS):
            modules.append(nn.AvgPool2d(2))
            names.append(f"pool{b}")
    return nn.Sequential(*modules), names


# Why the ImageNet weights are missing when the machine cannot fetch them, and what the run uses instead.
OFFLINE = "offline"
OFFLINE_NOTE = "offline: using a random VGG-19 (style only, no ImageNet features)"


def _cached_file(url: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _imagenet_state(allow_download: bool) -> tuple[dict | None, str]:
    """torchvision's VGG-19 ImageNet weights (``features.*`` only), or None with the reason."""
    from torchvision.models import VGG19_Weights

    url = VGG19_Weights.IMAGENET1K_V1.url
    cached = _cached_file(url).is_file()
    if not cached and not allow_download:
        return None, OFFLINE + " (NNKIT_OFFLINE is set)"
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # an unreachable host must not hang the job
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub writes "Downloading ..."; library code is quiet
            # weights_only: the cache is a plain file anyone with write access could replace, and torch.hub checks
            # the hash of downloads only; unpickling a planted file would run its code (issue 16).
            state = torch.hub.load_state_dict_from_url(url, weights_only=True, progress=False, check_hash=True,
                                                       map_location="cpu")
    except pickle.UnpicklingError:  # not plain tensors: a planted or foreign file, never executed
        path = _cached_file(url)
        log.warning("refused to load %s: it holds more than plain tensors (weights-only loading failed); "
                    "using random VGG-19 weights", path)
        return None, f"the cached file {path} is not a plain weights file and was not loaded"
    except OSError as exc:  # URLError, a failed name lookup, a timeout: no network here
        # The raw "<urlopen error ...>" goes to the log only; people are told plainly that they are offline.
        log.info("VGG-19 ImageNet weights could not be downloaded: %s", str(exc).splitlines()[0][:200] if str(exc)
                 else type(exc).__name__)
        return None, OFFLINE
    except Exception as exc:  # a proxy's error page, a truncated file, a hash mismatch
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return None, f"download failed ({reason})"
    finally:
        socket.setdefaulttimeout(old_timeout)
    return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}, (
        "torchvision cache" if cached else "downloaded")


class FeatureNet(nn.Module):
    """VGG-19 features returning the activations of named layers.

    Attributes:
        pretrained: True for ImageNet weights, False for the random network.
        description: which network this is, in words (goes into every result).

    Shape:
        ``forward(x, names)``: x N×3×H×W in [0, 1] → {name: N×C×h×w} for the requested layer names.
    """

    def __init__(self, body: nn.Sequential, names: list[str], pretrained: bool, description: str):
        super().__init__()
        self.body = body
        self.names = names
        self.pretrained = pretrained
        self.description = description
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def name(self) -> str:
        """Short name: "vgg19-imagenet" or "vgg19-random"."""
        return "vgg19-imagenet" if self.pretrained else "vgg19-random"

    def forward(self, x: torch.Tensor, names: tuple[str, ...] | list[str]) -> dict[str, torch.Tensor]:
        wanted = set(names)
        unknown = wanted - set(self.names)
        if unknown:
            raise NnkitError(f"unknown VGG-19 layer(s) {', '.join(sorted(unknown))}: choose from {', '.join(self.names)}")
        last = max(self.names.index(n) for n in wanted)
        out = {}
        h = (x - self.mean) / self.std
        for i, (name, module) in enumerate(zip(self.names, self.body)):
            h = module(h)
            if name in wanted:
                out[name] = h
            if i == last:  # nothing deeper is needed
                break
        return out


def load_feature_net(weights: str = "auto", device: torch.device | str = "cpu") -> FeatureNet:
    """VGG-19 features for style transfer.

    Args:
        weights: "auto" (ImageNet weights from the torchvision cache or a download, else the random
            network), "imagenet" (an error when they cannot be had) or "random".
        device: where to put the network.

    Returns:
        A FeatureNet in eval mode with frozen parameters; ``.description`` names the weights used.
    """
    if weights not in WEIGHT_CHOICES:
        raise NnkitError(f"unknown weights {weights!r}: choose one of {', '.join(WEIGHT_CHOICES)}")
    body, names = _layers()
    if weights != "random":
        allow_download = os.environ.get("NNKIT_OFFLINE", "") in ("", "0")
        state, how = _imagenet_state(allow_download)
        if state is not None:
            body.load_state_dict(state)
            return FeatureNet(body, names, True, f"VGG-19 with ImageNet weights (torchvision, {how})").to(device)
        if weights == "imagenet":
            raise NnkitError(f"VGG-19 ImageNet weights unavailable: {how}")
        log.info("VGG-19 ImageNet weights unavailable (%s); using random weights", how)
        fallback = f"; ImageNet weights unavailable: {how}"
        if how.startswith(OFFLINE):  # the usual case in a classroom: one plain line (issue 17)
            desc = OFFLINE_NOTE + how[len(OFFLINE):].replace(" (", "; ").replace(")", "")
            fallback = None
    else:
        fallback = ""
    # He initialisation as torchvision's VGG uses it, from a fixed seed without touching the global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        for m in body.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
    if fallback is not None:
        desc = f"VGG-19 with random He-initialised weights (seed {RANDOM_SEED}), per-layer normalised losses{fallback}"
    return FeatureNet(body, names, False, desc).to(device)
