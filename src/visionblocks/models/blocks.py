"""Residual blocks: :class:`BasicBlock` and :class:`Bottleneck` (He et al. 2015).

Paper: "Deep Residual Learning for Image Recognition", https://arxiv.org/abs/1512.03385.
Each block creates its own shortcut: identity when shape is kept, otherwise a
1x1 conv + BN projection (the paper's option B) or, on request, the parameter-free
zero-padding shortcut the paper uses for its CIFAR experiments (option A).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from visionblocks.models.layers import NormLayer, conv1x1, conv3x3

__all__ = ["BasicBlock", "Bottleneck", "PadShortcut", "ShortcutKind"]

ShortcutKind = Literal["projection", "padding"]
"""How a block matches shapes when stride or width change: ``"projection"`` (1x1 conv + BN,
option B) or ``"padding"`` (subsample and zero-pad channels, option A)."""


class PadShortcut(nn.Module):
    """Parameter-free shortcut: take every ``stride``-th pixel and zero-pad the new channels.

    Example:
        >>> PadShortcut(16, 32, stride=2)(torch.ones(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"a padding shortcut can only widen: in_channels={in_channels} > "
                f"out_channels={out_channels}; use shortcut='projection'."
            )
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subsample ``(B, C, H, W)`` to ``(B, C + extra, H / s, W / s)``."""
        x = x[:, :, :: self.stride, :: self.stride]
        # F.pad pads the last dims first: (W_left, W_right, H_top, H_bottom, C_front, C_back).
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def _make_shortcut(
    in_channels: int, out_channels: int, stride: int, kind: ShortcutKind, norm_layer: NormLayer
) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    if kind == "projection":
        return nn.Sequential(conv1x1(in_channels, out_channels, stride), norm_layer(out_channels))
    if kind == "padding":
        return PadShortcut(in_channels, out_channels, stride)
    raise ValueError(f"shortcut must be 'projection' or 'padding'; got {kind!r}.")


class _ResidualBlock(nn.Module):
    """What residual blocks share: ``relu(body(x) + shortcut(x))``; subclasses make the body."""

    expansion: ClassVar[int] = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        *,
        norm_layer: NormLayer = nn.BatchNorm2d,
        shortcut: ShortcutKind = "projection",
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.residual = residual
        # The body first: its layers draw their initial weights before the shortcut's.
        self.body: nn.Sequential = self._make_body(in_channels, out_channels, stride, norm_layer)
        self.shortcut: nn.Module = (
            _make_shortcut(in_channels, out_channels, stride, shortcut, norm_layer)
            if residual
            else nn.Identity()
        )

    def _make_body(
        self, in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer
    ) -> nn.Sequential:
        """The residual branch, ending with the norm layer that :meth:`zero_init_last` zeroes."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``(B, C_in, H, W)``, giving ``(B, C_out, H / stride, W / stride)``."""
        out = self.body(x)
        if self.residual:
            out = out + self.shortcut(x)
        return F.relu(out)

    def zero_init_last(self) -> None:
        """Zero the last BN's scale so the block starts as its shortcut.

        This "zero-gamma" trick makes a deep net start out shallow and lets large batches
        train stably (Goyal et al. 2017, https://arxiv.org/abs/1706.02677, +0.2-0.3% top-1).
        """
        weight = getattr(self.body[-1], "weight", None)
        if isinstance(weight, nn.Parameter):
            nn.init.zeros_(weight)


class BasicBlock(_ResidualBlock):
    """Two 3x3 convs: Conv-BN-ReLU-Conv-BN, plus the shortcut, then ReLU.

    Args:
        in_channels: Channels of the block's input.
        out_channels: Channels of the block's output.
        stride: Stride of the first conv (2 halves the resolution).
        norm_layer: Factory for the normalisation layers.
        shortcut: ``"projection"`` or ``"padding"`` when the shape changes.
        residual: ``False`` drops the shortcut: the "plain" net of the paper's Figure 4.

    Example:
        >>> block = BasicBlock(16, 32, stride=2)
        >>> block(torch.randn(2, 16, 32, 32)).shape
        torch.Size([2, 32, 16, 16])
        >>> type(block.shortcut).__name__
        'Sequential'
    """

    expansion: ClassVar[int] = 1

    def _make_body(
        self, in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer
    ) -> nn.Sequential:
        return nn.Sequential(
            conv3x3(in_channels, out_channels, stride),
            norm_layer(out_channels),
            nn.ReLU(inplace=True),
            conv3x3(out_channels, out_channels),
            norm_layer(out_channels),
        )


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3, 1x1 expand (each with BN), plus the shortcut, then ReLU.

    ``out_channels`` is the block's output width; the inner width is
    ``out_channels // expansion``. The stride sits on the 3x3 conv (ResNet v1.5),
    which is about 0.5% more accurate on ImageNet than striding the 1x1.

    Args:
        in_channels: Channels of the block's input.
        out_channels: Channels of the block's output (a multiple of ``expansion``).
        stride: Stride of the 3x3 conv.
        norm_layer: Factory for the normalisation layers.
        shortcut: ``"projection"`` or ``"padding"`` when the shape changes.
        residual: ``False`` drops the shortcut.

    Example:
        >>> Bottleneck(64, 256)(torch.randn(1, 64, 8, 8)).shape
        torch.Size([1, 256, 8, 8])
    """

    expansion: ClassVar[int] = 4

    def _make_body(
        self, in_channels: int, out_channels: int, stride: int, norm_layer: NormLayer
    ) -> nn.Sequential:
        if out_channels % self.expansion:
            raise ValueError(
                f"Bottleneck out_channels must be a multiple of {self.expansion}; "
                f"got {out_channels}."
            )
        width = out_channels // self.expansion
        return nn.Sequential(
            conv1x1(in_channels, width),
            norm_layer(width),
            nn.ReLU(inplace=True),
            conv3x3(width, width, stride),
            norm_layer(width),
            nn.ReLU(inplace=True),
            conv1x1(width, out_channels),
            norm_layer(out_channels),
        )
