"""A saved model, rebuilt for inference: :func:`load_model`.

A model file holds the weights and the model's
:class:`~visionblocks.model_file.ModelCard`: the builder (a registry name, or
``"timm:<name>"`` for a timm backbone from ``pretrained``) and its arguments,
the class names, the normalization statistics and the ``(C, H, W)`` shape of the
training images. :func:`load_model` rebuilds the network from the card, loads the
weights and leaves the card on the model, where ``predict``, ``evaluate`` and ``export``
read it.
"""

from __future__ import annotations

import os

from torch import nn

from visionblocks.model_file import (
    ModelCard,
    attach_card,
    card_of,
    load_state_checked,
    read_model_file,
)
from visionblocks.transfer import build_from_card

__all__ = ["load_model", "model_card"]


def load_model(path: str | os.PathLike[str]) -> nn.Module:
    """Rebuild the model saved in ``path``, in eval mode on the CPU, ready for inference.

    Any visionblocks model file works: ``visionblocks train``'s ``model.pt``, a
    :func:`~visionblocks.train.save_checkpoint` file, a ``BestCheckpoint`` file or
    ``fit``'s ``last.pt``. The returned model carries the file's
    :class:`~visionblocks.model_file.ModelCard` (read it with :func:`model_card`).

    Args:
        path: A visionblocks model file.

    Returns:
        The model, with its weights loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not a visionblocks checkpoint, a card field is wrong, the
            card names no registered builder, or the weights do not fit the model it names.
        ImportError: The card names a timm model and timm is not installed.

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = vb.save_checkpoint(f"{tempfile.mkdtemp()}/m.pt", vb.resnet20())
        >>> model = load_model(path)
        >>> type(model).__name__, model.training, model_card(model).builder
        ('ResNet', False, 'resnet20')
    """
    saved = read_model_file(path)
    card = saved.card
    if card.builder is None:
        raise ValueError(
            f"{str(path)!r} does not say which model it holds (no model_name: the card names no "
            f"builder); build the model with a registered builder (visionblocks.list_models()) "
            f"before saving it, or pass save_checkpoint(path, model, model_name=..., "
            f"model_kwargs=...)."
        )
    model = build_from_card(card)
    try:
        load_state_checked(model, saved.state_dict)
    except ValueError as err:
        raise ValueError(
            f"{str(path)!r} holds weights that do not fit {card.builder}(**"
            f"{card.builder_kwargs}): {str(err)[:400]}"
        ) from None
    model.eval()
    attach_card(model, card)
    return model


def model_card(model: nn.Module) -> ModelCard | None:
    """The :class:`~visionblocks.model_file.ModelCard` ``model`` carries, or ``None``.

    Registered builders, ``fit`` and :func:`load_model` give a model its card.

    Example:
        >>> import visionblocks as vb
        >>> model_card(vb.resnet20()).builder
        'resnet20'
    """
    return card_of(model)
