"""DenseNet for small images (Huang et al. 2017, https://arxiv.org/abs/1608.06993).

Every layer of a dense block sees the concatenation of all earlier feature maps
and adds ``growth_rate`` new channels. The CIFAR networks of the paper's Section
4 use a 3x3 stem, three dense blocks at 32x32, 16x16 and 8x8, and transition
layers (BN-ReLU-1x1 conv-2x2 average pool) in between. DenseNet-BC adds a 1x1
"bottleneck" conv (``4 * growth_rate`` wide) in front of every 3x3 conv and
compresses the channels by ``compression`` at each transition.

Layer and parameter names follow torchvision's ``densenet.py`` (``norm1``,
``conv1``, ...), whose dense blocks the tests use as the reference.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from visionblocks._deprecation import renamed_keywords
from visionblocks.models.classifier import Classifier, _check_positive
from visionblocks.models.layers import conv1x1, conv3x3, init_weights, linear_head
from visionblocks.models.registry import register_model

__all__ = ["DenseLayer", "DenseNet", "Transition", "densenet_cifar"]


class DenseLayer(nn.Module):
    """BN-ReLU-(1x1 conv-BN-ReLU)-3x3 conv, concatenated to the input.

    Args:
        in_channels: Channels of everything concatenated so far.
        growth_rate: New channels this layer adds (``k`` in the paper).
        bottleneck: Put a 1x1 conv of width ``4 * growth_rate`` in front (DenseNet-B).

    Example:
        >>> DenseLayer(24, 12)(torch.zeros(2, 24, 8, 8)).shape
        torch.Size([2, 36, 8, 8])
    """

    def __init__(self, in_channels: int, growth_rate: int, *, bottleneck: bool = True) -> None:
        super().__init__()
        layers: list[tuple[str, nn.Module]] = [
            ("norm1", nn.BatchNorm2d(in_channels)),
            ("relu1", nn.ReLU(inplace=True)),
        ]
        if bottleneck:
            width = 4 * growth_rate  # the paper's bn_size = 4
            layers += [
                ("conv1", conv1x1(in_channels, width)),
                ("norm2", nn.BatchNorm2d(width)),
                ("relu2", nn.ReLU(inplace=True)),
                ("conv2", conv3x3(width, growth_rate)),
            ]
        else:
            layers.append(("conv1", conv3x3(in_channels, growth_rate)))
        self.body = nn.Sequential(OrderedDict(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` to ``(B, C + growth_rate, H, W)``."""
        return torch.cat([x, self.body(x)], dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv-2x2 average pool between dense blocks (halves the resolution).

    Example:
        >>> Transition(48, 24)(torch.zeros(1, 48, 8, 8)).shape
        torch.Size([1, 24, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(in_channels),
                relu=nn.ReLU(inplace=True),
                conv=conv1x1(in_channels, out_channels),
                pool=nn.AvgPool2d(2),
            )
        )


class DenseNet(Classifier):
    """A 3x3 stem, dense blocks joined by transitions, a final BN-ReLU and a linear head.

    Args:
        depths: Number of dense layers in each dense block (``block_sizes`` before 0.2,
            still accepted with a :class:`DeprecationWarning` until 0.3).
        growth_rate: Channels each dense layer adds.
        num_classes: Number of output classes (0: no head).
        in_channels: Image channels.
        stem_width: Output channels of the stem conv (the paper: ``2 * growth_rate`` for BC).
        bottleneck: Use 1x1 bottleneck convs in the dense layers.
        compression: Fraction of channels a transition keeps (``theta``, 0.5 for BC).

    Example:
        >>> net = DenseNet((2, 2), growth_rate=4, stem_width=8)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> net.num_features  # 8 + 2 * 4 -> transition keeps 8 -> 8 + 2 * 4
        16
    """

    @renamed_keywords(block_sizes="depths")
    def __init__(
        self,
        depths: tuple[int, ...],
        *,
        growth_rate: int = 12,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_width: int = 24,
        bottleneck: bool = True,
        compression: float = 0.5,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        _check_positive("growth_rate", growth_rate)
        _check_positive("stem_width", stem_width)
        if not depths:
            raise ValueError("depths must name at least one dense block, e.g. (16, 16, 16).")
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1]; got {compression}.")
        self.stem = conv3x3(in_channels, stem_width)
        stages: list[nn.Module] = []
        channels = stem_width
        for index, size in enumerate(depths):
            _check_positive("depths entry", size)
            if index:
                out_channels = int(channels * compression)  # floor, as in the paper's code
                stages.append(Transition(channels, out_channels))
                channels = out_channels
            layers = []
            for _ in range(size):
                layers.append(DenseLayer(channels, growth_rate, bottleneck=bottleneck))
                channels += growth_rate
            stages.append(nn.Sequential(*layers))
        # The dense layers are pre-activation, so the last block's output still needs BN-ReLU.
        stages += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*stages)
        self.num_features = channels
        self.min_input_size = 2 ** (len(depths) - 1)
        self.head = linear_head(channels, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, num_features, H / 2^(n-1), W / 2^(n-1))``."""
        return self.features(self.stem(x))  # type: ignore[no-any-return]


@register_model
def densenet_cifar(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    depth: int = 100,
    growth_rate: int = 12,
    bottleneck: bool = True,
    compression: float = 0.5,
) -> DenseNet:
    """Build the paper's CIFAR DenseNet: three equal dense blocks, DenseNet-BC by default.

    ``depth`` counts the weighted layers: ``6n + 4`` with bottlenecks (two convs per
    dense layer), ``3n + 4`` without. Parameter counts for 3x32x32 inputs and 10
    classes (the paper's Table 2 rounds them): DenseNet-BC ``depth=100,
    growth_rate=12``: 769,162 (0.8 M); DenseNet ``depth=40, growth_rate=12,
    bottleneck=False, compression=1``: 1,019,722 (1.0 M); DenseNet-BC
    ``depth=250, growth_rate=24``: 15,324,406 (15.3 M); ``depth=190, growth_rate=40``:
    25,624,430 (25.6 M).

    Args:
        num_classes: Number of output classes.
        in_channels: Image channels.
        depth: Total number of weighted layers.
        growth_rate: Channels each dense layer adds (``k``).
        bottleneck: 1x1 bottleneck convs (the "B" in BC).
        compression: Fraction of channels kept by each transition (the "C"; 1 disables it).

    Raises:
        ValueError: ``depth`` does not fit ``6n + 4`` (or ``3n + 4``).

    Example:
        >>> sum(p.numel() for p in densenet_cifar().parameters())
        769162
        >>> densenet_cifar(depth=40, bottleneck=False, compression=1.0).num_features
        448
    """
    per_layer = 2 if bottleneck else 1
    if not isinstance(depth, int) or depth < 3 * per_layer + 4 or (depth - 4) % (3 * per_layer):
        form = "6n + 4 (bottleneck=True)" if bottleneck else "3n + 4 (bottleneck=False)"
        raise ValueError(f"densenet_cifar depth must be {form} with n >= 1; got {depth!r}.")
    n = (depth - 4) // (3 * per_layer)
    # The paper uses 2k stem channels for DenseNet-BC and 16 for the basic DenseNet.
    stem_width = 2 * growth_rate if bottleneck else 16
    return DenseNet(
        (n, n, n),
        growth_rate=growth_rate,
        num_classes=num_classes,
        in_channels=in_channels,
        stem_width=stem_width,
        bottleneck=bottleneck,
        compression=compression,
    )
