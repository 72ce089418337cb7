"""Find and replace a model's classification head; adapt its first conv to new input channels.

Works for visionblocks classifiers (and timm models) through ``get_classifier`` /
``reset_classifier``, and for torchvision-style models through their ``fc``
(ResNet) or ``classifier`` (EfficientNet, MobileNet, VGG, DenseNet) attribute.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from torch import nn

from visionblocks.models import first_conv, linear_head

__all__ = ["adapt_conv_weight", "adapt_input_channels", "get_head", "replace_head"]

_ModelT = TypeVar("_ModelT", bound=nn.Module)

# Attribute names that hold the classifier, in the order they are looked up:
# torchvision ResNet/RegNet/Inception (``fc``), torchvision EfficientNet/MobileNet/VGG/
# DenseNet/ConvNeXt (``classifier``), timm/visionblocks (``head``), lukemelas' EfficientNet
# (``_fc``).
_HEAD_ATTRIBUTES = ("fc", "classifier", "head", "_fc")


def get_head(model: nn.Module) -> tuple[str, nn.Module]:
    """Return the qualified name and module of the model's final classification layer.

    This is the layer :func:`replace_head` swaps and that :func:`freeze` leaves
    trainable. For a head made of several layers (VGG's ``classifier``
    Sequential) it is the last :class:`torch.nn.Linear` in it.

    Raises:
        TypeError: No classifier could be found; the message lists where it looked.

    Example:
        >>> import torchvision
        >>> get_head(torchvision.models.mobilenet_v3_small())[0]
        'classifier.3'
        >>> from visionblocks import resnet20
        >>> get_head(resnet20())[0]
        'head'
    """
    if callable(getattr(model, "get_classifier", None)):
        head = model.get_classifier()  # type: ignore[operator]
        for name, module in model.named_modules():
            if module is head and name:
                return name, module
    for attribute in _HEAD_ATTRIBUTES:
        module = getattr(model, attribute, None)
        if isinstance(module, nn.Linear | nn.Identity):
            return attribute, module
        if isinstance(module, nn.Sequential):
            linears = [(n, m) for n, m in module.named_modules() if isinstance(m, nn.Linear)]
            if linears:
                name, last = linears[-1]
                return f"{attribute}.{name}", last
    raise TypeError(
        f"cannot find the classification head of {type(model).__name__}: it has no "
        f"get_classifier() method and none of the attributes {', '.join(_HEAD_ATTRIBUTES)} is a "
        f"Linear layer or a Sequential ending in one. Subclass visionblocks.models.Classifier or "
        f"name the final layer `fc` or `classifier`."
    )


def replace_head(model: _ModelT, num_classes: int) -> _ModelT:
    """Replace the classification head with a freshly initialised one for ``num_classes``.

    Visionblocks classifiers use their own ``reset_classifier``; other models get a
    new :class:`torch.nn.Linear` with the same input width, device and dtype in place
    of the layer :func:`get_head` finds. ``num_classes=0`` puts an
    :class:`torch.nn.Identity` there so the model returns pooled features.

    Args:
        model: The model, changed in place.
        num_classes: Number of classes of the new task.

    Returns:
        The same ``model``, for chaining.

    Raises:
        ValueError: ``num_classes`` is negative.

    Example:
        >>> import torchvision
        >>> model = replace_head(torchvision.models.resnet18(), 5)
        >>> model.fc
        Linear(in_features=512, out_features=5, bias=True)
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ValueError(f"num_classes must be an int >= 0; got {num_classes!r}.")
    name, old = get_head(model)
    # The new head goes where the model lives (device, dtype): the old head, else any parameter.
    reference = next(old.parameters(), next(model.parameters(), None))
    if callable(getattr(model, "reset_classifier", None)):
        model.reset_classifier(num_classes)  # type: ignore[operator]
    else:
        if isinstance(old, nn.Linear):
            in_features, bias = old.in_features, old.bias is not None
        else:  # an Identity left by an earlier replace_head(model, 0): infer the width
            in_features, bias = _width_before(model, name), True
        new = linear_head(in_features, num_classes, bias=bias)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, new)
        if isinstance(getattr(model, "num_classes", None), int):
            setattr(model, "num_classes", num_classes)  # noqa: B010 (mypy: Module attrs are typed)
    if reference is not None:
        _, head = get_head(model)
        head.to(device=reference.device, dtype=reference.dtype)
    return model


def _width_before(model: nn.Module, head_name: str) -> int:
    """Output width of the last Linear/Conv before ``head_name`` (its input width)."""
    width = 0
    for name, module in model.named_modules():
        if name == head_name:
            break
        if isinstance(module, nn.Linear):
            width = module.out_features
        elif isinstance(module, nn.Conv2d):
            width = module.out_channels
    if not width:
        raise TypeError(f"cannot infer the input width of the removed head {head_name!r}.")
    return width


def adapt_conv_weight(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Map a ``(O, C, k, k)`` conv weight to ``(O, in_channels, k, k)`` keeping its response.

    One channel: the sum over the pretrained channels, so a grey image ``g``
    replicated to RGB gives exactly the same output as ``g`` through the summed
    filter. More channels: the pretrained channels are repeated cyclically and
    scaled by ``C / in_channels`` so the output keeps its scale (timm's rule).

    Example:
        >>> rgb = torch.randn(8, 3, 3, 3)  # a pretrained RGB stem
        >>> grey = adapt_conv_weight(rgb, 1)
        >>> image = torch.rand(1, 1, 16, 16)
        >>> same = nn.functional.conv2d(image.expand(-1, 3, -1, -1), rgb)
        >>> grey.shape, torch.allclose(nn.functional.conv2d(image, grey), same, atol=1e-5)
        (torch.Size([8, 1, 3, 3]), True)
        >>> torch.equal(adapt_conv_weight(rgb, 6), torch.cat([rgb, rgb], dim=1) / 2)
        True
    """
    if in_channels == weight.shape[1]:
        return weight.clone()
    if in_channels == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_channels / weight.shape[1])
    tiled = weight.repeat(1, repeats, 1, 1)[:, :in_channels]
    return tiled * (weight.shape[1] / in_channels)


def adapt_input_channels(model: _ModelT, in_channels: int) -> _ModelT:
    """Change the number of input channels of the model's first conv, keeping its weights' meaning.

    The conv is edited in place (its subclass, padding and stride are kept), with
    the weights mapped by :func:`adapt_conv_weight`: a pretrained RGB stem becomes a
    grayscale stem by summing its filters. A visionblocks model's ``in_channels``
    attribute is updated too, so its input check accepts the new images.

    Args:
        model: The model, changed in place.
        in_channels: New number of input channels.

    Returns:
        The same ``model``, for chaining.

    Raises:
        ValueError: ``in_channels`` is not positive, or the first conv is grouped.

    Example:
        >>> import torchvision
        >>> model = adapt_input_channels(torchvision.models.resnet18(), 1)
        >>> model(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 1000])
    """
    if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
        raise ValueError(f"in_channels must be an int >= 1; got {in_channels!r}.")
    name, conv = first_conv(model)
    if conv.groups != 1:
        raise ValueError(
            f"the first conv {name!r} is grouped (groups={conv.groups}); its input channels "
            f"cannot be changed by adapting the weights."
        )
    if conv.in_channels != in_channels:
        with torch.no_grad():
            weight = adapt_conv_weight(conv.weight.detach(), in_channels)
        conv.weight = nn.Parameter(weight, requires_grad=conv.weight.requires_grad)
        conv.in_channels = in_channels
    if isinstance(getattr(model, "in_channels", None), int):
        setattr(model, "in_channels", in_channels)  # noqa: B010 (mypy: Module attrs are typed)
    return model
