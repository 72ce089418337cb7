"""VGG for small images (Simonyan & Zisserman 2014, https://arxiv.org/abs/1409.1556).

The CIFAR variant keeps the paper's stacks of 3x3 convs (configurations A, B and
D: VGG-11, -13 and -16) and replaces the three large fully connected layers with
one linear layer on the pooled 512-wide features, as CIFAR re-implementations do
(the FC layers hold ~90% of ImageNet VGG's weights and overfit 32x32 data).

The paper's fifth 2x2 max-pool is replaced by the global average pooling every
:class:`~visionblocks.models.Classifier` applies, so 16x16 inputs (e.g. 28x28
Fashion-MNIST) work and a 32x32 input ends in a 2x2 map rather than 1x1.
"""

from __future__ import annotations

import torch
from torch import nn

from visionblocks._deprecation import depth_first_positional
from visionblocks.models.classifier import Classifier
from visionblocks.models.layers import conv3x3, init_weights, linear_head
from visionblocks.models.registry import register_model

__all__ = ["VGG", "VGG_CONFIGS", "vgg_cifar", "vgg11_cifar", "vgg13_cifar", "vgg16_cifar"]

VGG_CONFIGS: dict[int, tuple[tuple[int, ...], ...]] = {
    # Output channels of each 3x3 conv, grouped into stages separated by 2x2 max-pools.
    11: ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    13: ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    16: ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
}
"""Per-stage conv widths of VGG-11/13/16 (configurations A, B, D of the paper's Table 1)."""


class VGG(Classifier):
    """Stages of 3x3 Conv-(BN)-ReLU separated by 2x2 max-pools, then a linear head.

    Args:
        stages: Output channels of each conv, grouped by stage (see
            :data:`~visionblocks.models.vgg.VGG_CONFIGS`).
        num_classes: Number of output classes (0: no head).
        in_channels: Image channels.
        batch_norm: BatchNorm after every conv (convs then have no bias); without it
            the convs carry a bias, as in the paper.

    Example:
        >>> net = VGG(((16,), (32, 32)), num_classes=3)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 3])
        >>> net.forward_features(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 32, 16, 16])
    """

    def __init__(
        self,
        stages: tuple[tuple[int, ...], ...],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        batch_norm: bool = True,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        if not stages or not all(stages):
            raise ValueError(
                f"stages must be a non-empty tuple of non-empty width tuples, e.g. "
                f"((64,), (128,)); got {stages!r}."
            )
        layers: list[nn.Module] = []
        channels = in_channels
        for index, widths in enumerate(stages):
            if index:  # a pool between stages; the last pool is the global one in forward_head
                layers.append(nn.MaxPool2d(2))
            for width in widths:
                if batch_norm:
                    # The conv bias is redundant in front of BN's own shift.
                    layers += [conv3x3(channels, width), nn.BatchNorm2d(width)]
                else:
                    layers.append(nn.Conv2d(channels, width, 3, padding=1))
                layers.append(nn.ReLU(inplace=True))
                channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.min_input_size = 2 ** (len(stages) - 1)
        self.head = linear_head(channels, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, 512, H / 16, W / 16)`` for the VGG configs."""
        return self.features(x)  # type: ignore[no-any-return]


@register_model
@depth_first_positional
def vgg_cifar(
    num_classes: int = 10, in_channels: int = 3, *, depth: int = 11, batch_norm: bool = True
) -> VGG:
    """Build VGG-11, -13 or -16 for 32x32 images.

    Parameter counts for 3x32x32 inputs and 10 classes, with BatchNorm (bias-free
    convs) / without: VGG-11 9,228,362 / 9,225,610; VGG-13 9,413,066 / 9,410,122;
    VGG-16 14,724,042 / 14,719,818. The CIFAR VGGs commonly quoted (9,231,114 for
    VGG-11-BN) keep a conv bias in front of each BN: the difference is exactly
    the 2,752 / 2,944 / 4,224 conv biases. Until 0.3, positional arguments of a call
    without ``depth=`` are read in the 0.1 order ``(depth, num_classes, in_channels)``,
    with a :class:`DeprecationWarning`.

    Args:
        num_classes: Number of output classes.
        in_channels: Image channels.
        depth: 11, 13 or 16 weighted layers.
        batch_norm: BatchNorm after every conv.

    Raises:
        ValueError: ``depth`` is not 11, 13 or 16.

    Example:
        >>> sum(p.numel() for p in vgg_cifar(depth=11).parameters())
        9228362
        >>> vgg_cifar(in_channels=1, depth=16).eval()(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """
    if depth not in VGG_CONFIGS:
        raise ValueError(f"vgg_cifar depth must be one of {sorted(VGG_CONFIGS)}; got {depth!r}.")
    return VGG(
        VGG_CONFIGS[depth], num_classes=num_classes, in_channels=in_channels, batch_norm=batch_norm
    )


@register_model
def vgg11_cifar(num_classes: int = 10, in_channels: int = 3, *, batch_norm: bool = True) -> VGG:
    """VGG-11 with BatchNorm for 32x32 images (9.23 M parameters); ``vgg_cifar(depth=11)``.

    Example:
        >>> vgg11_cifar(num_classes=100).head.out_features
        100
    """
    return vgg_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=11, batch_norm=batch_norm
    )


@register_model
def vgg13_cifar(num_classes: int = 10, in_channels: int = 3, *, batch_norm: bool = True) -> VGG:
    """VGG-13 with BatchNorm for 32x32 images (9.41 M parameters); ``vgg_cifar(depth=13)``.

    Example:
        >>> sum(p.numel() for p in vgg13_cifar().parameters())
        9413066
        >>> vgg13_cifar(num_classes=5, in_channels=1).eval()(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 5])
    """
    return vgg_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=13, batch_norm=batch_norm
    )


@register_model
def vgg16_cifar(num_classes: int = 10, in_channels: int = 3, *, batch_norm: bool = True) -> VGG:
    """VGG-16 with BatchNorm for 32x32 images (14.7 M parameters); ``vgg_cifar(depth=16)``.

    Example:
        >>> sum(p.numel() for p in vgg16_cifar().parameters())
        14724042
        >>> sum(p.numel() for p in vgg16_cifar(batch_norm=False).parameters())
        14719818
    """
    return vgg_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=16, batch_norm=batch_norm
    )
