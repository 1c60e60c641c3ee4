"""Residual networks: the CIFAR-style ResNet of He et al. (2016) and torchvision's ResNet-18.

Both keep one ReLU module per use and no in-place operations, so captum's hooks (Guided Backprop,
DeepLift, Grad-CAM) see every activation.
"""

from __future__ import annotations

import functools

from torch import nn

from nnkit.errors import NnkitError
from nnkit.models.layers import activation as make_activation
from nnkit.models.registry import register


class BasicBlock(nn.Module):
    """Two 3×3 convs with batch norm; H(x) = F(x) + x (option A shortcut: strided 1×1 conv + BN)."""

    def __init__(self, cin: int, cout: int, stride: int, activation: str, residual: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = make_activation(activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = make_activation(activation)
        self.residual = residual
        self.shortcut = nn.Identity()
        if residual and (stride != 1 or cin != cout):
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        if self.residual:
            out = out + self.shortcut(x)
        return self.act2(out)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32×32 inputs: 3 stages of n blocks with widths w, 2w, 4w."""

    def __init__(self, num_classes, in_channels, depth, width, activation, residual):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise NnkitError(f"resnet depth must be 6n+2 (8, 14, 20, 32, 44, 56, ...), got {depth}")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), make_activation(activation))
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, activation, residual))
                cin = cout
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(self.stem(x))).flatten(1))


@register("resnet", "CIFAR-style ResNet (He et al. 2016), depth 6n+2", depth=20, width=16,
          activation="relu", residual=True)
def resnet(num_classes, in_channels, image_size, depth, width, activation, residual):
    """ResNet-``depth``; ``residual=False`` gives the plain net of the same depth (for comparison)."""
    return CifarResNet(num_classes, in_channels, int(depth), int(width), activation, bool(residual))


@functools.cache
def _torchvision_blocks() -> tuple[type, type]:
    """torchvision's BasicBlock and its hook-safe subclass, defined on first use.

    torchvision is imported here, not at the top: importing it loads ``torch._dynamo`` (about 4 CPU-seconds on
    a 2-core VM), which every CLI command and worker process would otherwise pay for a model few of them build.
    """
    from torchvision.models.resnet import BasicBlock as TVBasicBlock

    class HookSafeBlock(TVBasicBlock):
        """torchvision's BasicBlock with a separate, not in-place ReLU after the addition."""

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu_out(out + identity)

    return TVBasicBlock, HookSafeBlock


@register("resnet18", "torchvision ResNet-18 adapted to small images (3×3 stem, no max-pool)")
def resnet18(num_classes, in_channels, image_size):
    """torchvision's ResNet-18 with a 3×3 stride-1 stem and no max-pool, as is usual for 32×32 inputs."""
    import torchvision  # see _torchvision_blocks: a costly import, done when this model is built

    tv_block, hook_safe_block = _torchvision_blocks()
    net = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    net.relu = nn.ReLU()
    for module in net.modules():
        if isinstance(module, tv_block):
            module.__class__ = hook_safe_block
            module.relu = nn.ReLU()
            module.relu_out = nn.ReLU()
    return net
