"""ResNets for small images: the He et al. CIFAR family and the ImageNet family with a CIFAR stem.

``resnet_cifar(depth=...)`` is the paper's CIFAR-10 network (Section 4.2 of
https://arxiv.org/abs/1512.03385): a 3x3 stem, three stages of width 16/32/64
with ``n`` blocks each, depth ``6n + 2``. ``resnet18_cifar`` and friends are the
ImageNet ResNets with the 7x7/stride-2 stem and max-pool replaced by a 3x3
stride-1 conv, so 32x32 inputs are not shrunk to 1x1 before the last stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from visionblocks._deprecation import depth_first_positional
from visionblocks.models.blocks import BasicBlock, Bottleneck, ShortcutKind
from visionblocks.models.classifier import Classifier, _check_positive
from visionblocks.models.layers import NormLayer, conv3x3, init_weights, linear_head
from visionblocks.models.registry import register_model

__all__ = [
    "ResNet",
    "resnet_cifar",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet_imagenet_cifar",
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet50_cifar",
]

Block = type[BasicBlock] | type[Bottleneck]


class ResNet(Classifier):
    """A 3x3 stem, then stages of residual blocks, global average pooling and a linear head.

    The first stage keeps the resolution; every later stage halves it with a
    stride-2 first block.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        widths: Output channels of each stage.
        depths: Number of blocks in each stage.
        num_classes: Number of output classes (0: no head).
        in_channels: Image channels.
        stem_width: Output channels of the stem conv.
        norm_layer: Factory for every normalisation layer.
        shortcut: ``"projection"`` (1x1 conv + BN) or ``"padding"`` (the paper's option A).
        residual: ``False`` builds the "plain" network without shortcuts.
        zero_init_last: Zero the last BN of every block (see
            :meth:`BasicBlock.zero_init_last`).

    Example:
        >>> net = ResNet(BasicBlock, widths=(16, 32), depths=(1, 1), stem_width=16)
        >>> net(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        block: Block,
        widths: Sequence[int],
        depths: Sequence[int],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        stem_width: int = 16,
        norm_layer: NormLayer = nn.BatchNorm2d,
        shortcut: ShortcutKind = "projection",
        residual: bool = True,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        if len(widths) != len(depths) or not widths:
            raise ValueError(
                f"widths and depths must be non-empty and of equal length; got "
                f"widths={tuple(widths)}, depths={tuple(depths)}."
            )
        self.stem = nn.Sequential(
            conv3x3(in_channels, stem_width), norm_layer(stem_width), nn.ReLU(inplace=True)
        )
        stages: list[nn.Module] = []
        channels = stem_width
        for index, (width, depth) in enumerate(zip(widths, depths, strict=True)):
            _check_positive("depths entry", depth)
            blocks: list[nn.Module] = []
            for i in range(depth):
                stride = 2 if index > 0 and i == 0 else 1
                blocks.append(
                    block(
                        channels,
                        width,
                        stride,
                        norm_layer=norm_layer,
                        shortcut=shortcut,
                        residual=residual,
                    )
                )
                channels = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.num_features = channels
        self.min_input_size = 2 ** (len(widths) - 1)
        self.head = linear_head(channels, num_classes)
        init_weights(self)
        if zero_init_last:
            for m in self.modules():
                if isinstance(m, BasicBlock | Bottleneck):
                    m.zero_init_last()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, num_features, H / 2^(S-1), W / 2^(S-1))``."""
        return self.stages(self.stem(x))  # type: ignore[no-any-return]


def _valid_cifar_depths(limit: int = 200) -> list[int]:
    return [6 * n + 2 for n in range(1, (limit - 2) // 6 + 1)]


@register_model
@depth_first_positional
def resnet_cifar(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    depth: int = 20,
    width: int = 16,
    shortcut: ShortcutKind = "projection",
    residual: bool = True,
    zero_init_last: bool = False,
) -> ResNet:
    """Build a He et al. CIFAR ResNet of ``depth = 6n + 2`` layers (20, 32, 44, 56, 110, ...).

    ResNet-20 has 272,474 parameters with projection shortcuts and 269,722 with
    the paper's zero-padding shortcut (``shortcut="padding"``). Until 0.3, positional
    arguments of a call without ``depth=`` are read in the 0.1 order ``(depth,
    num_classes, in_channels)``, with a :class:`DeprecationWarning`.

    Args:
        num_classes: Number of output classes.
        in_channels: Image channels.
        depth: Total number of weighted layers, ``6n + 2``.
        width: Width of the first stage; the others are 2x and 4x.
        shortcut: ``"projection"`` or ``"padding"``.
        residual: ``False`` builds the plain (shortcut-free) network of the same depth.
        zero_init_last: Start every block as an identity.

    Raises:
        ValueError: ``depth`` is not of the form ``6n + 2``.

    Example:
        >>> sum(p.numel() for p in resnet_cifar(depth=20).parameters())
        272474
        >>> sum(p.numel() for p in resnet_cifar(depth=20, shortcut="padding").parameters())
        269722
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(
            f"resnet_cifar depth must be 6n + 2 (n >= 1); got {depth!r}. Valid depths: "
            f"{', '.join(map(str, _valid_cifar_depths(120)))}, ..."
        )
    n = (depth - 2) // 6
    return ResNet(
        BasicBlock,
        widths=(width, 2 * width, 4 * width),
        depths=(n, n, n),
        num_classes=num_classes,
        in_channels=in_channels,
        stem_width=width,
        shortcut=shortcut,
        residual=residual,
        zero_init_last=zero_init_last,
    )


@register_model
def resnet20(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    shortcut: ShortcutKind = "projection",
    residual: bool = True,
    zero_init_last: bool = False,
) -> ResNet:
    """ResNet-20 for CIFAR (272,474 parameters): ``resnet_cifar(depth=20)``.

    See :func:`resnet_cifar` for the arguments.

    Example:
        >>> sum(p.numel() for p in resnet20().parameters())
        272474
    """
    return resnet_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=20, shortcut=shortcut,
        residual=residual, zero_init_last=zero_init_last,
    )  # fmt: skip


@register_model
def resnet32(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    shortcut: ShortcutKind = "projection",
    residual: bool = True,
    zero_init_last: bool = False,
) -> ResNet:
    """ResNet-32 for CIFAR (466,906 parameters): ``resnet_cifar(depth=32)``.

    See :func:`resnet_cifar` for the arguments.

    Example:
        >>> sum(p.numel() for p in resnet32().parameters())
        466906
    """
    return resnet_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=32, shortcut=shortcut,
        residual=residual, zero_init_last=zero_init_last,
    )  # fmt: skip


@register_model
def resnet44(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    shortcut: ShortcutKind = "projection",
    residual: bool = True,
    zero_init_last: bool = False,
) -> ResNet:
    """ResNet-44 for CIFAR (661,338 parameters): ``resnet_cifar(depth=44)``.

    See :func:`resnet_cifar` for the arguments.

    Example:
        >>> sum(p.numel() for p in resnet44().parameters())
        661338
    """
    return resnet_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=44, shortcut=shortcut,
        residual=residual, zero_init_last=zero_init_last,
    )  # fmt: skip


@register_model
def resnet56(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    shortcut: ShortcutKind = "projection",
    residual: bool = True,
    zero_init_last: bool = False,
) -> ResNet:
    """ResNet-56 for CIFAR (855,770 parameters): ``resnet_cifar(depth=56)``.

    See :func:`resnet_cifar` for the arguments.

    Example:
        >>> sum(p.numel() for p in resnet56().parameters())
        855770
    """
    return resnet_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=56, shortcut=shortcut,
        residual=residual, zero_init_last=zero_init_last,
    )  # fmt: skip


@register_model
def resnet110(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    shortcut: ShortcutKind = "projection",
    residual: bool = True,
    zero_init_last: bool = False,
) -> ResNet:
    """ResNet-110 for CIFAR (1,730,714 parameters): ``resnet_cifar(depth=110)``.

    See :func:`resnet_cifar` for the arguments.

    Example:
        >>> sum(p.numel() for p in resnet110().parameters())
        1730714
    """
    return resnet_cifar(
        num_classes=num_classes, in_channels=in_channels, depth=110, shortcut=shortcut,
        residual=residual, zero_init_last=zero_init_last,
    )  # fmt: skip


# The ImageNet ResNets (He et al. 2015, Table 1): (block, blocks per stage) by depth.
_IMAGENET_DEPTHS: dict[int, tuple[Block, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


@register_model
def resnet_imagenet_cifar(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    depth: int = 18,
    zero_init_last: bool = False,
) -> ResNet:
    """An ImageNet ResNet (18, 34, 50, 101, 152) with a 3x3 stride-1 stem for 32x32 inputs.

    The stages keep ImageNet's widths (64-512, times 4 with Bottleneck blocks); only the
    7x7 stride-2 stem and its max-pool are replaced, since they would shrink a 32x32
    image to 8x8 before the first block.

    Args:
        num_classes: Number of output classes.
        in_channels: Image channels.
        depth: 18, 34 (BasicBlock), 50, 101 or 152 (Bottleneck).
        zero_init_last: Start every block as an identity.

    Raises:
        ValueError: ``depth`` is not one of the ImageNet depths.

    Example:
        >>> sum(p.numel() for p in resnet_imagenet_cifar(depth=18).parameters())
        11173962
    """
    if depth not in _IMAGENET_DEPTHS:
        raise ValueError(
            f"resnet_imagenet_cifar depth must be one of {sorted(_IMAGENET_DEPTHS)}; got {depth!r}."
        )
    block, depths = _IMAGENET_DEPTHS[depth]
    widths = tuple(w * block.expansion for w in (64, 128, 256, 512))
    return ResNet(
        block,
        widths=widths,
        depths=depths,
        num_classes=num_classes,
        in_channels=in_channels,
        stem_width=64,
        zero_init_last=zero_init_last,
    )


@register_model
def resnet18_cifar(
    num_classes: int = 10, in_channels: int = 3, *, zero_init_last: bool = False
) -> ResNet:
    """ResNet-18 with a 3x3 stride-1 stem for 32x32 inputs: 11,173,962 parameters.

    Example:
        >>> sum(p.numel() for p in resnet18_cifar().parameters())
        11173962
    """
    return resnet_imagenet_cifar(num_classes, in_channels, depth=18, zero_init_last=zero_init_last)


@register_model
def resnet34_cifar(
    num_classes: int = 10, in_channels: int = 3, *, zero_init_last: bool = False
) -> ResNet:
    """ResNet-34 with a 3x3 stride-1 stem for 32x32 inputs (21.3 M parameters).

    Example:
        >>> sum(p.numel() for p in resnet34_cifar().parameters())
        21282122
        >>> resnet34_cifar(num_classes=100).head.out_features
        100
    """
    return resnet_imagenet_cifar(num_classes, in_channels, depth=34, zero_init_last=zero_init_last)


@register_model
def resnet50_cifar(
    num_classes: int = 10, in_channels: int = 3, *, zero_init_last: bool = False
) -> ResNet:
    """ResNet-50 (Bottleneck blocks) with a 3x3 stride-1 stem for 32x32 inputs (23.5 M params).

    Example:
        >>> model = resnet50_cifar()
        >>> sum(p.numel() for p in model.parameters()), model.num_features
        (23520842, 2048)
    """
    return resnet_imagenet_cifar(num_classes, in_channels, depth=50, zero_init_last=zero_init_last)
