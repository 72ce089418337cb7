"""MobileNetV2 for small images (Sandler et al. 2018, https://arxiv.org/abs/1801.04381).

Inverted residual blocks: a 1x1 conv expands the channels ``t``-fold, a 3x3
depthwise conv filters them, and a linear (no ReLU) 1x1 conv projects back; the
shortcut joins the narrow ends. The block structure, widths and parameter
names are exactly torchvision's ``mobilenet_v2`` (the tests load torchvision's
weights into this model), with a CIFAR stride plan: the ImageNet net
downsamples 32x, which would leave a 32x32 image as a single pixel after the
second stage, so the stem and the first 24-wide stage keep stride 1 and the net
downsamples 8x (32 -> 4), as the common CIFAR ports do.
"""

from __future__ import annotations

import torch
from torch import nn

from visionblocks.models.classifier import Classifier
from visionblocks.models.layers import conv1x1, conv3x3, init_weights, linear_head
from visionblocks.models.registry import register_model

__all__ = ["CIFAR_SETTINGS", "InvertedResidual", "MobileNetV2", "mobilenetv2_cifar"]

CIFAR_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    # (expansion t, output channels c, blocks n, stride of the first block s): the paper's
    # Table 2 with the 24-wide stage at stride 1 instead of 2.
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
"""Stage settings ``(t, c, n, s)`` of :func:`~visionblocks.models.mobilenetv2_cifar` (8x in all)."""


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor`` without losing more than 10%.

    The same rule as torchvision/TF-slim, so ``width_mult`` gives the reference widths.
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_relu6(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expand-BN-ReLU6, 3x3 depthwise-BN-ReLU6, 1x1 project-BN (+ shortcut).

    Args:
        in_channels: Channels of the block's input.
        out_channels: Channels of the block's output.
        stride: Stride of the depthwise conv (1 or 2).
        expand_ratio: Width of the hidden layer as a multiple of ``in_channels``.

    Example:
        >>> block = InvertedResidual(16, 16, stride=1, expand_ratio=6)
        >>> block(torch.zeros(2, 16, 8, 8)).shape, block.use_residual
        (torch.Size([2, 16, 8, 8]), True)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual stride must be 1 or 2; got {stride}.")
        hidden = in_channels * expand_ratio
        # The shortcut only where shapes match; the paper has no projection shortcuts.
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_conv_bn_relu6(conv1x1(in_channels, hidden)))
        layers += [
            _conv_bn_relu6(conv3x3(hidden, hidden, stride, groups=hidden)),  # depthwise
            # Linear bottleneck: no ReLU after the projection, which would destroy information
            # in the narrow representation (Section 3.2 of the paper).
            conv1x1(hidden, out_channels),
            nn.BatchNorm2d(out_channels),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C_in, H, W)`` to ``(B, C_out, H / stride, W / stride)``."""
        out = self.conv(x)
        return x + out if self.use_residual else out  # type: ignore[no-any-return]


class MobileNetV2(Classifier):
    """A 3x3 stem, stages of inverted residuals, a 1x1 conv to ``num_features``, a linear head.

    Args:
        settings: ``(t, c, n, s)`` per stage (see
            :data:`~visionblocks.models.mobilenet.CIFAR_SETTINGS`).
        num_classes: Number of output classes (0: no head).
        in_channels: Image channels.
        width_mult: Scales every width (rounded to multiples of 8).
        stem_stride: Stride of the stem conv (2 in the ImageNet network).

    Example:
        >>> net = MobileNetV2(((1, 16, 1, 1), (6, 24, 2, 2)), num_classes=4)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        settings: tuple[tuple[int, int, int, int], ...] = CIFAR_SETTINGS,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        width_mult: float = 1.0,
        stem_stride: int = 1,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        if width_mult <= 0:
            raise ValueError(f"width_mult must be > 0; got {width_mult}.")
        if not settings or any(len(s) != 4 or min(s) < 1 for s in settings):
            raise ValueError(
                "settings must be non-empty (t, c, n, s) tuples of positive ints; "
                f"got {settings!r}."
            )
        channels = _make_divisible(32 * width_mult)
        layers: list[nn.Module] = [_conv_bn_relu6(conv3x3(in_channels, channels, stem_stride))]
        downsampling = stem_stride
        for expand_ratio, width, blocks, stride in settings:
            out_channels = _make_divisible(width * width_mult)
            for index in range(blocks):
                block_stride = stride if index == 0 else 1
                layers.append(InvertedResidual(channels, out_channels, block_stride, expand_ratio))
                channels = out_channels
            downsampling *= stride
        # Width multipliers below 1 keep the last layer at 1280 (the paper's Section 5.1).
        self.num_features = _make_divisible(1280 * max(1.0, width_mult))
        layers.append(_conv_bn_relu6(conv1x1(channels, self.num_features)))
        self.features = nn.Sequential(*layers)
        self.min_input_size = downsampling
        self.head = linear_head(self.num_features, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, num_features, H / 8, W / 8)`` (CIFAR plan)."""
        return self.features(x)  # type: ignore[no-any-return]


@register_model
def mobilenetv2_cifar(
    num_classes: int = 10, in_channels: int = 3, *, width_mult: float = 1.0
) -> MobileNetV2:
    """Build MobileNetV2 with the CIFAR stride plan (32x32 -> 4x4 feature maps).

    With 10 classes it has 2,236,682 parameters, the same as torchvision's
    ``mobilenet_v2(num_classes=10)`` (strides change no weights); 700,490 with
    ``width_mult=0.5``.

    Args:
        num_classes: Number of output classes.
        in_channels: Image channels.
        width_mult: Scales every width; the final 1x1 conv stays 1280 wide below 1.

    Example:
        >>> model = mobilenetv2_cifar()
        >>> sum(p.numel() for p in model.parameters())
        2236682
        >>> model.forward_features(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 1280, 4, 4])
    """
    return MobileNetV2(
        CIFAR_SETTINGS, num_classes=num_classes, in_channels=in_channels, width_mult=width_mult
    )
