"""What ``fit`` writes into the model's card: the data it learnt from and how it trained.

The card (:class:`~visionblocks.model_file.ModelCard`) is filled in before the first
epoch, so that every file written during the run (``last.pt``, ``BestCheckpoint``)
carries it, and again at the end with the epochs completed.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from visionblocks.data import DataLike, StreamingDataset, describe_data, is_in_memory
from visionblocks.model_file import ModelCard, attach_card, card_of

__all__ = ["card_for_data"]


def card_for_data(
    model: nn.Module, train: DataLike, *, num_classes: int, training: dict[str, Any]
) -> ModelCard:
    """Attach to ``model`` its card with ``train``'s classes, shape and statistics.

    Data that streams from a user's ``Dataset`` or ``DataLoader`` tells none of them
    without being read: those fields keep what the card had.

    Example:
        >>> import visionblocks as vb
        >>> model = vb.simple_cnn(in_channels=1, image_size=28)
        >>> card = card_for_data(model, vb.load_dataset("sample"), num_classes=10,
        ...                      training={"epochs": 1})
        >>> card.builder, card.image_shape, card.classes[:2], card.training
        ('simple_cnn', (1, 28, 28), ('T-shirt/top', 'Trouser'), {'epochs': 1})
    """
    card = card_of(model) or ModelCard()
    fields: dict[str, Any] = {"training": {**card.training, **training}}
    if is_in_memory(train) or isinstance(train, StreamingDataset):
        info = describe_data(train)
        fields["image_shape"] = info.image_shape
        # Names that do not match the outputs (a model with spare outputs) would mislabel.
        if info.classes and len(info.classes) == num_classes:
            fields["classes"] = info.classes
        if info.stats is not None:
            fields["mean"], fields["std"] = (tuple(float(v) for v in s) for s in info.stats)
    if card.classes is not None and len(card.classes) != num_classes:
        fields.setdefault("classes", None)
    new = card.replace(**fields)
    attach_card(model, new)
    return new
