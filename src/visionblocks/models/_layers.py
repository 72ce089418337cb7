"""Small layer helpers shared by the model builders."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = ["NormLayer", "conv1x1", "conv3x3", "init_weights"]

NormLayer = Callable[[int], nn.Module]
"""A factory ``(num_features) -> norm module``, e.g. :class:`torch.nn.BatchNorm2d`."""


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a norm layer follows)."""
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias (a norm layer follows)."""
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def init_weights(module: nn.Module) -> None:
    """He (Kaiming) normal init for convs, unit/zero for norms, PyTorch default for linears.

    Kaiming fan-out init keeps activation variance stable through ReLU nets
    (He et al. 2015, https://arxiv.org/abs/1502.01852), the init the ResNet paper uses.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
