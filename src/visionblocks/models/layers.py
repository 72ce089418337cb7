"""Layer helpers shared by the model families (and by any model built on visionblocks).

The convolution helpers have no bias because a norm layer always follows them: the
norm's own shift makes a conv bias redundant. :func:`first_conv` finds a model's stem,
the layer that transfer learning adapts to new input channels and that analysis shows
as filters.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

__all__ = [
    "NormLayer",
    "conv1x1",
    "conv3x3",
    "first_conv",
    "init_weights",
    "linear_head",
]

NormLayer = Callable[[int], nn.Module]
"""A factory ``(num_features) -> norm module``, e.g. :class:`torch.nn.BatchNorm2d`."""


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a norm layer follows).

    Example:
        >>> conv3x3(3, 16, stride=2)
        Conv2d(3, 16, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)
    """
    return nn.Conv2d(
        in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False
    )


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution with no bias (a norm layer follows).

    Example:
        >>> conv1x1(64, 256)
        Conv2d(64, 256, kernel_size=(1, 1), stride=(1, 1), bias=False)
    """
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def linear_head(in_features: int, num_classes: int, *, bias: bool = True) -> nn.Module:
    """The classifier head: a linear layer, or an identity for ``num_classes=0`` (features).

    Example:
        >>> linear_head(64, 10), linear_head(64, 0)
        (Linear(in_features=64, out_features=10, bias=True), Identity())
    """
    return nn.Linear(in_features, num_classes, bias=bias) if num_classes else nn.Identity()


def init_weights(module: nn.Module) -> None:
    """He (Kaiming) normal init for convs, unit/zero for norms, PyTorch default for linears.

    Kaiming fan-out init keeps activation variance stable through ReLU nets
    (He et al. 2015, https://arxiv.org/abs/1502.01852), the init the ResNet paper uses.

    Example:
        >>> net = nn.Sequential(conv3x3(3, 8), nn.BatchNorm2d(8))
        >>> init_weights(net)
        >>> float(net[1].weight.detach().min()), float(net[1].bias.detach().abs().max())
        (1.0, 0.0)
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """Return the qualified name and module of the first :class:`~torch.nn.Conv2d` (the stem).

    "First" is registration order, which is forward order for every visionblocks,
    torchvision and timm classifier. The name is what a state dict keys the
    weights by (``name + ".weight"``).

    Raises:
        TypeError: ``model`` has no :class:`~torch.nn.Conv2d`.

    Example:
        >>> name, conv = first_conv(nn.Sequential(nn.Identity(), conv3x3(1, 8)))
        >>> name, tuple(conv.weight.shape)
        ('1', (8, 1, 3, 3))
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name, module
    raise TypeError(f"{type(model).__name__} has no nn.Conv2d layer.")
