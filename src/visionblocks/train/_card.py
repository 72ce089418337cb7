"""What ``fit`` writes into the model's card: the data it learnt from and how it trained.

The card (:class:`~visionblocks.model_file.ModelCard`) is filled in before the first
epoch, so that every file written during the run (``last.pt``, ``BestCheckpoint``)
carries it, and again at the end with the epochs completed.

Which statistics normalize the inputs is decided here too (:func:`input_stats`):
pretrained weights computed their features on inputs normalized one way, and their
card says which (``transfer.pretrained`` records it); training and every later use of
the model normalize the same way.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import nn

from visionblocks.data import DataLike, StreamingDataset, describe_data, is_in_memory, stats_of
from visionblocks.model_file import DEFAULT_THRESHOLD, ModelCard, Stats, attach_card, card_of

__all__ = ["STATS_CHOICES", "card_for_data", "input_stats"]

StatsChoice = Literal["auto", "weights", "data"]
STATS_CHOICES: tuple[str, ...] = ("auto", "weights", "data")
"""``fit(stats=...)``: whose statistics normalize the inputs."""


def input_stats(model: nn.Module, train: DataLike, choice: str = "auto") -> Stats | None:
    """The ``(mean, std)`` that ``fit`` normalizes ``train`` with, by ``choice``.

    ``"weights"``: the model card's, which :func:`~visionblocks.transfer.pretrained`
    sets to the statistics the weights were trained with; ``"data"``: the training
    data's (``None`` for data that carries none); ``"auto"``: the card's when it has
    them and names a pretrained ``source``, else the data's.

    Raises:
        ValueError: An unknown ``choice``; ``"weights"`` for a card without statistics;
            or the card's statistics are for another number of channels than the data's.

    Example:
        >>> import visionblocks as vb
        >>> from visionblocks.model_file import ModelCard
        >>> data = vb.load_dataset("sample")
        >>> model = vb.simple_cnn(in_channels=1, image_size=28)
        >>> input_stats(model, data) == vb.data.stats_of(data)
        True
        >>> card = ModelCard(source="weights.pt", mean=(0.5,), std=(0.25,))
        >>> input_stats(attach_card(model, card), data)
        ((0.5,), (0.25,))
    """
    if choice not in STATS_CHOICES:
        raise ValueError(f"stats must be one of {STATS_CHOICES}; got {choice!r}.")
    card = card_of(model)
    own = card.stats if card is not None else None
    if choice == "weights" and own is None:
        raise ValueError(
            "stats='weights' normalizes with the statistics in the model's card, but it has "
            "none; build it with visionblocks.transfer.pretrained(...), or pass stats='data'."
        )
    pretrained = card is not None and card.source is not None
    if own is None or choice == "data" or (choice == "auto" and not pretrained):
        return stats_of(train)
    if is_in_memory(train) or isinstance(train, StreamingDataset):
        channels = describe_data(train).in_channels
        if len(own[0]) != channels:
            raise ValueError(
                f"the model's card normalizes {len(own[0])} channels (its pretrained weights' "
                f"statistics) but the data has {channels}; build it with pretrained(..., "
                f"in_channels={channels}), or pass stats='data'."
            )
    return own


def card_for_data(
    model: nn.Module,
    train: DataLike,
    *,
    num_classes: int,
    training: dict[str, Any],
    stats: Stats | None = None,
    task: str = "multiclass",
) -> ModelCard:
    """Attach to ``model`` its card with ``train``'s classes, shape and statistics.

    ``stats`` (from :func:`input_stats`) replace the data's statistics: the inputs are
    normalized with them, so predictions must be too. ``task`` is what the outputs mean;
    a multi-label card keeps the thresholds it had for as many labels, else gets 0.5 for
    each. Data that streams from a user's
    ``Dataset`` or ``DataLoader`` tells none of the data's facts without being read:
    those fields keep what the card had.

    Example:
        >>> import visionblocks as vb
        >>> model = vb.simple_cnn(in_channels=1, image_size=28)
        >>> card = card_for_data(model, vb.load_dataset("sample"), num_classes=10,
        ...                      training={"epochs": 1})
        >>> card.builder, card.image_shape, card.classes[:2], card.training
        ('simple_cnn', (1, 28, 28), ('T-shirt/top', 'Trouser'), {'epochs': 1})
    """
    card = card_of(model) or ModelCard()
    fields: dict[str, Any] = {"training": {**card.training, **training}, "task": task}
    kept = card.thresholds if card.thresholds is not None else ()
    if len(kept) != num_classes:
        kept = (DEFAULT_THRESHOLD,) * num_classes
    fields["thresholds"] = kept if task == "multilabel" else None
    if is_in_memory(train) or isinstance(train, StreamingDataset):
        info = describe_data(train)
        fields["image_shape"] = info.image_shape
        fields["resize"] = getattr(train, "resize", "squash")  # how the images were sized
        # Names that do not match the outputs (a model with spare outputs) would mislabel.
        if info.classes and len(info.classes) == num_classes:
            fields["classes"] = info.classes
        if info.stats is not None:
            fields["mean"], fields["std"] = (tuple(float(v) for v in s) for s in info.stats)
    if stats is not None:
        fields["mean"], fields["std"] = (tuple(float(v) for v in s) for s in stats)
    if card.classes is not None and len(card.classes) != num_classes:
        fields.setdefault("classes", None)
    new = card.replace(**fields)
    attach_card(model, new)
    return new
