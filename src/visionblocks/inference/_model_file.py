"""A saved model and what it says about itself: :func:`load_model`, :class:`ModelCard`.

A model file holds the weights and everything needed to use them: the registry name
and builder arguments, the class names, the normalization statistics and the
``(C, H, W)`` shape of the training images. :func:`load_model` rebuilds the model and
attaches those facts to it as a :class:`ModelCard`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from torch import nn

from visionblocks.models import create_model
from visionblocks.train import STATS_ATTR, load_checkpoint, strip_wrapper_prefixes

__all__ = ["CARD_ATTR", "STATS_ATTR", "ModelCard", "Stats", "load_model", "model_card"]

CARD_ATTR = "visionblocks_card"
"""Attribute :func:`load_model` sets on the model it returns: its :class:`ModelCard`."""

# Entries of a model file that are not facts about how to use the model.
_NOT_INFO = frozenset(
    {"format", "version", "model", "model_name", "model_kwargs", "classes", "stats"}
    | {"image_shape", "optimizer", "schedule", "scaler", "rng", "ema", "callbacks", "history"}
)
Stats: TypeAlias = tuple[tuple[float, ...], tuple[float, ...]]


@dataclass(frozen=True)
class ModelCard:
    """How a saved model is used: what it is, what it was trained on, how its inputs looked.

    :func:`load_model` attaches one to the model it returns as ``model.visionblocks_card``
    (read it with :func:`model_card`).

    Attributes:
        model_name: Registry name of the builder (``visionblocks.list_models()``).
        model_kwargs: Builder arguments, e.g. ``{"num_classes": 10, "in_channels": 1}``.
        classes: Class names, in the order of the model's outputs; ``None`` when the file
            stores none (predictions are then named by index).
        stats: Per-channel ``(mean, std)`` in [0, 1] units the training images were
            normalized with; ``None`` when unknown (inputs are then only scaled to [0, 1]).
        image_shape: ``(C, H, W)`` of the training images; ``None`` when unknown.
        path: The file the model was read from.
        info: The file's other plain entries (``dataset``, ``epochs``, ``test_accuracy``, ...).

    Example:
        >>> ModelCard("resnet20", {}, ("a", "b"), None, (3, 32, 32)).num_classes
        2
    """

    model_name: str
    model_kwargs: dict[str, Any]
    classes: tuple[str, ...] | None
    stats: Stats | None
    image_shape: tuple[int, int, int] | None
    path: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        """The number of class names, if the file stores them."""
        return None if self.classes is None else len(self.classes)


def load_model(path: str | os.PathLike[str]) -> nn.Module:
    """Rebuild the model saved in ``path``, in eval mode on the CPU, ready for inference.

    The file must name its builder (``model_name``, ``model_kwargs``), as the ``model.pt``
    of ``visionblocks train`` does. The returned model carries a :class:`ModelCard` as
    ``model.visionblocks_card`` and, when the file stores normalization statistics, the
    ``visionblocks_stats`` attribute that :func:`~visionblocks.train.evaluate` reads.

    Args:
        path: A model file written by ``visionblocks train`` or ``save_checkpoint``.

    Returns:
        The model, with its weights loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not a visionblocks checkpoint, does not say which model it
            holds, or holds weights that do not fit the model it names.

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = vb.save_checkpoint(f"{tempfile.mkdtemp()}/m.pt", vb.resnet20(),
        ...                           model_name="resnet20")
        >>> model = load_model(path)
        >>> type(model).__name__, model.training, model_card(model).classes
        ('ResNet', False, None)
    """
    state = load_checkpoint(Path(path))
    name = state.get("model_name")
    if not name:
        raise ValueError(
            f"{str(path)!r} does not say which model it holds (no model_name); save it with "
            f"save_checkpoint(path, model, model_name=..., model_kwargs=...)."
        )
    kwargs = dict(state.get("model_kwargs") or {})
    model = create_model(str(name), **kwargs)
    try:
        model.load_state_dict(strip_wrapper_prefixes(state["model"]))
    except RuntimeError as err:
        reason = str(err).strip().splitlines()
        raise ValueError(
            f"{str(path)!r} holds weights that do not fit {name}(**{kwargs}): "
            f"{' '.join(line.strip() for line in reason[:3])[:300]}"
        ) from None
    model.eval()
    card = ModelCard(
        model_name=str(name),
        model_kwargs=kwargs,
        classes=_classes(state.get("classes")),
        stats=_stats(state.get("stats")),
        image_shape=_shape(state.get("image_shape")),
        path=str(path),
        info={k: v for k, v in state.items() if k not in _NOT_INFO},
    )
    setattr(model, CARD_ATTR, card)
    if card.stats is not None:
        setattr(model, STATS_ATTR, card.stats)
    return model


def model_card(model: nn.Module) -> ModelCard | None:
    """The :class:`ModelCard` :func:`load_model` attached to ``model``, or ``None``.

    Example:
        >>> import visionblocks as vb
        >>> model_card(vb.resnet20()) is None
        True
    """
    card = getattr(model, CARD_ATTR, None)
    return card if isinstance(card, ModelCard) else None


def _classes(raw: object) -> tuple[str, ...] | None:
    return tuple(str(c) for c in raw) if isinstance(raw, (list, tuple)) and raw else None


def _stats(raw: object) -> Stats | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        return None
    return (tuple(float(v) for v in raw[0]), tuple(float(v) for v in raw[1]))


def _shape(raw: object) -> tuple[int, int, int] | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != 3:
        return None
    return (int(raw[0]), int(raw[1]), int(raw[2]))
