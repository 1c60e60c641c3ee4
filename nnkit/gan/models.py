"""DCGAN generator and discriminator (Radford, Metz & Chintala 2016), optionally class-conditional.

The networks follow the DCGAN guidelines: no pooling (strided convolutions in the discriminator,
fractionally-strided "transposed" convolutions in the generator), batch norm in both except the
generator's output and the discriminator's input layer, ReLU in the generator with a tanh output,
LeakyReLU(0.2) in the discriminator, and weights drawn from N(0, 0.02).

The spatial plan is sized for the data: the side is halved while it is even and above 4, so 28×28
(MNIST) runs 7 → 14 → 28 and 32×32 (CIFAR-10, shapes) runs 4 → 8 → 16 → 32. The conditional variant
(Mirza & Osindero 2014) embeds the label into both networks: the generator gets a learned label
vector concatenated to z, the discriminator a learned label map stacked on the image as an extra channel.

This file holds the networks only and does no I/O.
"""

from __future__ import annotations

import torch
from torch import nn

from nnkit.errors import NnkitError


def spatial_plan(image_size: int) -> tuple[int, int]:
    """The generator's start side and its number of 2× up-sampling stages for ``image_size``.

    Returns:
        (start side, stages) with ``start * 2**stages == image_size``; e.g. 28 → (7, 2), 32 → (4, 3).
    """
    side, stages = int(image_size), 0
    while side % 2 == 0 and side > 4:
        side //= 2
        stages += 1
    if stages == 0 or side > 8:
        raise NnkitError(f"a DCGAN needs an image side of the form s·2^k with s <= 8 and k >= 1 (e.g. 28, 32, 64), "
                         f"got {image_size}")
    return side, stages


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02); batch-norm scales ~ N(1, 0.02), shifts 0.

    Embeddings get N(0, 0.02) too, so a label starts as a small nudge rather than dominating z.
    """
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear | nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    """DCGAN generator: z (and a label) → image.

    Args:
        latent_dim: size of z (the paper uses 100).
        channels: image channels (1 grey, 3 colour).
        image_size: image side (28, 32, 64, ...).
        width: channels of the last hidden stage; earlier stages double it (the paper's ngf).
        num_classes: > 0 makes it class-conditional.
        embed_dim: size of the label embedding concatenated to z (conditional only).

    Shape:
        z N×latent_dim (and labels N int64) → N×channels×image_size×image_size in [-1, 1] (tanh).
        ``sample`` maps to [0, 1], nnkit's image range.
    """

    def __init__(self, latent_dim: int = 100, channels: int = 1, image_size: int = 28, width: int = 64,
                 num_classes: int = 0, embed_dim: int = 10):
        super().__init__()
        self.latent_dim, self.num_classes = int(latent_dim), int(num_classes)
        start, stages = spatial_plan(image_size)
        in_dim = self.latent_dim + (int(embed_dim) if self.num_classes else 0)
        self.embed = nn.Embedding(self.num_classes, int(embed_dim)) if self.num_classes else None
        ch = int(width) * 2 ** (stages - 1)
        # The paper's "project and reshape": a matrix multiplication whose result is reshaped to start×start
        # maps (the same map as a transposed conv from 1×1, but several times faster on a CPU).
        layers: list[nn.Module] = [nn.Linear(in_dim, ch * start * start, bias=False), nn.Unflatten(1, (ch, start, start)),
                                   nn.BatchNorm2d(ch), nn.ReLU()]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        # No batch norm at the output: the paper found it destabilises training there.
        layers += [nn.ConvTranspose2d(ch, int(channels), 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise NnkitError("this generator is class-conditional: give one label per noise vector")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z)

    @torch.no_grad()
    def sample(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] for noise ``z`` (eval mode, no gradients, batch-norm running statistics)."""
        was_training = self.training
        self.eval()
        try:
            return self(z, labels).add(1).mul(0.5).clamp(0, 1)
        finally:
            self.train(was_training)


class Discriminator(nn.Module):
    """DCGAN discriminator: image (and a label) → one logit (real vs generated).

    Args:
        channels, image_size, width, num_classes: as for ``Generator`` (width is the paper's ndf).

    Shape:
        x N×channels×S×S in [-1, 1] (and labels N int64) → logits N (sigmoid gives D(x)).
    """

    def __init__(self, channels: int = 1, image_size: int = 28, width: int = 64, num_classes: int = 0):
        super().__init__()
        self.num_classes, self.image_size = int(num_classes), int(image_size)
        start, stages = spatial_plan(image_size)
        # The label becomes a learned S×S map stacked on the image (one extra input channel).
        self.embed = nn.Embedding(self.num_classes, self.image_size**2) if self.num_classes else None
        ch_in = int(channels) + (1 if self.num_classes else 0)
        ch = int(width)
        # No batch norm on the input layer (DCGAN guideline).
        layers: list[nn.Module] = [nn.Conv2d(ch_in, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]
        for _ in range(stages - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2)]
            ch *= 2
        # The paper's last step: "the last convolution layer is flattened and then fed into a single sigmoid
        # output" (the sigmoid lives in the loss, binary cross-entropy on logits).
        layers += [nn.Flatten(), nn.Linear(ch * start * start, 1)]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise NnkitError("this discriminator is class-conditional: give one label per image")
            label_map = self.embed(labels).view(-1, 1, self.image_size, self.image_size)
            x = torch.cat([x, label_map], dim=1)
        return self.net(x).view(-1)
