"""Rebuild the network a model card names: a registered builder, or a timm model."""

from __future__ import annotations

from torch import nn

from visionblocks.model_file import ModelCard
from visionblocks.models import create_model
from visionblocks.transfer._timm import build_timm, is_timm_name

TORCHVISION_PREFIX = "torchvision."

__all__ = ["build_from_card"]


def build_from_card(card: ModelCard) -> nn.Module:
    """The network ``card`` describes, with fresh weights, ready for a state dict.

    ``card.builder`` is a visionblocks registry name (``visionblocks.list_models()``),
    built with ``card.builder_kwargs``, or a timm model that :func:`pretrained` named
    ``"timm:<name>"``, built by ``timm.create_model(name, pretrained=False, ...)`` with
    the card's ``num_classes`` and ``in_channels`` (as ``in_chans``), or a torchvision
    model it named ``"torchvision.<name>"``, built as ``pretrained(name, num_classes,
    weights=None, in_channels=...)`` builds it (the same head and stem).

    Raises:
        ValueError: The card names no builder, or one that neither knows.
        ImportError: A timm model without timm installed.

    Example:
        >>> build_from_card(ModelCard("resnet20", {"num_classes": 3})).num_classes
        3
        >>> build_from_card(ModelCard("timm:resnet10t", {"num_classes": 2})).num_classes
        2
    """
    if card.builder is None:
        raise ValueError("the card names no builder, so the network cannot be rebuilt.")
    kwargs = dict(card.builder_kwargs)
    if is_timm_name(card.builder):
        num_classes = kwargs.pop("num_classes", None)
        in_channels = kwargs.pop("in_channels", 3)
        if num_classes is None:
            num_classes = card.num_classes if card.num_classes is not None else 1000
        return build_timm(card.builder, num_classes=num_classes, in_channels=in_channels, **kwargs)
    if card.builder.startswith(TORCHVISION_PREFIX):
        # The network pretrained() built: torchvision's, with its head and stem adapted.
        from visionblocks.transfer._pretrained import pretrained

        num_classes = kwargs.pop("num_classes", card.num_classes)
        return pretrained(card.builder, 1000 if num_classes is None else num_classes,
                          weights=None, **kwargs)  # fmt: skip
    return create_model(card.builder, **kwargs)
