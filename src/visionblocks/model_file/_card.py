"""The model card: what a trained model carries, as one typed, validated object.

In the spirit of torchvision's ``Weights.meta`` and timm's ``pretrained_cfg``: a
:class:`ModelCard` says how to rebuild the network (registry builder and its
arguments), what its outputs mean (class names, task) and how its inputs must be
prepared (channels, size, resize rule, normalization). Registered builders attach one
to every model they build, :func:`~visionblocks.train.fit` fills in the data and the
training facts, model files store it, and everything that uses a trained model reads
it: ``load_model``, ``predict``, ``evaluate``, ``export`` and the CLI.

A card read from a file is checked field by field (:meth:`ModelCard.from_dict`), so a
hand-edited ``num_classes=1e12`` or ``std = 0`` fails with a line naming the field
instead of an allocator error deep in torch or NaN predictions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from torch import nn

from visionblocks._deprecation import warn_deprecated

__all__ = [
    "CARD_ATTR",
    "DEFAULT_THRESHOLD",
    "RESIZE_RULES",
    "STATS_ATTR",
    "TASKS",
    "ModelCard",
    "Stats",
    "attach_card",
    "card_of",
    "is_plain",
    "model_stats",
]

CARD_ATTR = "visionblocks_card"
"""The one attribute a model carries its :class:`ModelCard` in."""
STATS_ATTR = "visionblocks_stats"
"""0.2's attribute for a model's ``(mean, std)`` (deprecated: the card holds them)."""
RESIZE_RULES = ("squash", "shorter-side+center-crop")
"""How images are brought to ``image_shape``: ``"squash"`` resizes to ``(H, W)`` (bilinear,
antialiased) without keeping the aspect ratio; ``"shorter-side+center-crop"`` scales the
shorter side and cuts the centre (torchvision's ``Resize`` + ``CenterCrop``). The same
rules as :data:`visionblocks.data.RESIZE_RULES`, which implements them."""
TASKS = ("multiclass", "multilabel")
"""What the outputs mean: ``"multiclass"``, one class per image (softmax over the logits);
``"multilabel"``, any set of labels per image (a sigmoid per logit, each label predicted
when its probability reaches its threshold)."""
DEFAULT_THRESHOLD = 0.5
"""A multi-label card's threshold for a label it gives none."""

Stats: TypeAlias = tuple[tuple[float, ...], tuple[float, ...]]

# Bounds of what a card may claim: far beyond any real model, small enough that a typo or
# a hand edit (1e12 classes) fails here, not in torch's allocator.
_MAX_CLASSES = 1_000_000
_MAX_CHANNELS = 1024
_MAX_SIDE = 16384
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class ModelCard:
    """What a trained model carries: how to rebuild it, what it predicts, how to feed it.

    Every field is optional, so a card can describe a bare network as well as a trained
    one; :meth:`replace` returns an updated copy (cards are immutable).

    Attributes:
        builder: Registry name of the builder (``visionblocks.list_models()``), or ``None``
            for a model no registered builder made (it can then not be rebuilt from a file).
        builder_kwargs: The builder's arguments, e.g. ``{"num_classes": 10, "in_channels": 1}``.
        classes: Class names, in the order of the outputs; ``None`` when unknown.
        image_shape: ``(C, H, W)`` of the training images; ``None`` when unknown.
        mean: Per-channel mean in [0, 1] units the inputs are normalized with.
        std: Per-channel standard deviation (``> 0``), with ``mean``.
        resize: How an image is brought to ``image_shape`` (one of :data:`RESIZE_RULES`).
        task: What the outputs mean (one of :data:`TASKS`).
        thresholds: Multi-label models: the probability at or above which each label is
            predicted, one per output in ``(0, 1)``; ``None`` is
            :data:`DEFAULT_THRESHOLD` (0.5) for every label (see :attr:`label_thresholds`).
            Set them, e.g. tuned on validation data, with
            ``attach_card(model, card.replace(thresholds=...))``.
        source: Where pretrained weights came from (a weights name or file), if any.
        training: How it was trained: plain facts such as ``epochs``, ``seed``,
            ``dataset`` or ``test_accuracy``.

    Raises:
        ValueError: A field out of range; the message names the field and its value.

    Example:
        >>> card = ModelCard("resnet20", {"in_channels": 1}, classes=("cat", "dog"),
        ...                  image_shape=(1, 28, 28), mean=(0.5,), std=(0.25,))
        >>> card.num_classes, card.in_channels, card.stats
        (2, 1, ((0.5,), (0.25,)))
        >>> ModelCard(image_shape=(3, 0, 0))
        Traceback (most recent call last):
            ...
        ValueError: card field image_shape must be (C, H, W) with 1 <= C <= 1024 and 1 <= H, W <= 16384; got (3, 0, 0).
    """  # noqa: E501  (the doctest's expected error is one long line)

    builder: str | None = None
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    classes: tuple[str, ...] | None = None
    image_shape: tuple[int, int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resize: str = "squash"
    task: str = "multiclass"
    thresholds: tuple[float, ...] | None = None
    source: str | None = None
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        given: object = self.thresholds
        if isinstance(given, list):  # as a file stores them, or a caller's list
            object.__setattr__(self, "thresholds", tuple(given))
        _check_card(self)

    @property
    def num_classes(self) -> int | None:
        """Outputs of the model: the class names' count, else the builder's ``num_classes``."""
        if self.classes is not None:
            return len(self.classes)
        n = self.builder_kwargs.get("num_classes")
        return n if isinstance(n, int) else None

    @property
    def label_thresholds(self) -> tuple[float, ...] | None:
        """A multi-label card's threshold of every label (0.5 where none is given), else ``None``.

        Example:
            >>> ModelCard(classes=("cat", "dog"), task="multilabel").label_thresholds
            (0.5, 0.5)
            >>> ModelCard(classes=("cat", "dog")).label_thresholds is None  # multi-class
            True
        """
        if self.task != "multilabel":
            return None
        if self.thresholds is not None:
            return self.thresholds
        n = self.num_classes
        return None if n is None else (DEFAULT_THRESHOLD,) * n

    @property
    def in_channels(self) -> int | None:
        """Channels of the inputs: ``image_shape[0]``, else the builder's ``in_channels``."""
        if self.image_shape is not None:
            return self.image_shape[0]
        c = self.builder_kwargs.get("in_channels")
        return c if isinstance(c, int) else None

    @property
    def stats(self) -> Stats | None:
        """``(mean, std)`` when both are known, else ``None`` (inputs only scaled to [0, 1])."""
        if self.mean is None or self.std is None:
            return None
        return (self.mean, self.std)

    # Names of 0.2's ModelCard, kept so that code written against it reads the same facts.
    @property
    def model_name(self) -> str | None:
        """The builder's registry name (0.2's name for :attr:`builder`)."""
        return self.builder

    @property
    def model_kwargs(self) -> dict[str, Any]:
        """The builder's arguments (0.2's name for :attr:`builder_kwargs`)."""
        return self.builder_kwargs

    @property
    def info(self) -> dict[str, Any]:
        """How the model was trained (0.2's name for :attr:`training`)."""
        return self.training

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with ``changes`` applied (and checked).

        Example:
            >>> ModelCard("resnet20").replace(classes=("a", "b")).num_classes
            2
        """
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The card as plain data (lists, numbers, strings), as model files store it.

        Example:
            >>> ModelCard("resnet20", mean=(0.5,), std=(0.2,)).to_dict()["std"]
            [0.2]
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelCard:
        """A card from :meth:`to_dict`'s plain data, every field checked.

        Raises:
            ValueError: An unknown field, a field of the wrong type or out of range; one
                line naming the field and its value.

        Example:
            >>> ModelCard.from_dict({"builder": "resnet20", "std": [0.0]})
            Traceback (most recent call last):
                ...
            ValueError: card field std must be finite numbers > 0 (they divide the pixels); got [0.0].
        """  # noqa: E501  (the doctest's expected error is one long line)
        if not isinstance(raw, Mapping):
            raise ValueError(f"a model card must be a mapping of fields; got {type(raw).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in raw if k not in known)
        if unknown:
            raise ValueError(
                f"unknown card field(s) {unknown}; a card has {sorted(known)} (written by a "
                f"newer visionblocks? upgrade it)."
            )
        values: dict[str, Any] = dict(raw)
        for name in ("classes", "image_shape", "mean", "std", "thresholds"):
            value = values.get(name)
            if value is not None:
                if not isinstance(value, (list, tuple)):
                    raise ValueError(f"card field {name} must be a list; got {value!r}.")
                values[name] = tuple(value)
        for name in ("builder_kwargs", "training"):
            if values.get(name) is None:
                values[name] = {}
        return cls(**values)


def card_of(model: nn.Module) -> ModelCard | None:
    """The :class:`ModelCard` ``model`` carries (through DDP/compile wrappers), or ``None``.

    Example:
        >>> import visionblocks as vb
        >>> card_of(vb.resnet20(num_classes=5)).builder_kwargs
        {'num_classes': 5}
        >>> card_of(nn.Linear(2, 2)) is None
        True
    """
    for candidate in (model, getattr(model, "module", None), getattr(model, "_orig_mod", None)):
        card = getattr(candidate, CARD_ATTR, None)
        if isinstance(card, ModelCard):
            return card
    return None


def model_stats(model: nn.Module) -> Stats | None:
    """The ``(mean, std)`` ``model``'s inputs are normalized with, from its card.

    A ``visionblocks_stats`` attribute that 0.2 code set by hand is still read, with a
    :class:`DeprecationWarning`.

    Example:
        >>> model = attach_card(nn.Linear(2, 2), ModelCard(mean=(0.5,), std=(0.2,)))
        >>> model_stats(model)
        ((0.5,), (0.2,))
    """
    card = card_of(model)
    if card is not None and card.stats is not None:
        return card.stats
    legacy = getattr(model, STATS_ATTR, None)
    if legacy is None:
        return None
    warn_deprecated(
        f"the {STATS_ATTR} attribute of a model",
        "its card: attach_card(model, card.replace(mean=..., std=...))",
        stacklevel=3,
    )
    return (tuple(float(v) for v in legacy[0]), tuple(float(v) for v in legacy[1]))


def attach_card(model: nn.Module, card: ModelCard) -> nn.Module:
    """Give ``model`` its card (replacing any it had); returns ``model``.

    Example:
        >>> card_of(attach_card(nn.Linear(2, 2), ModelCard(classes=("a", "b")))).classes
        ('a', 'b')
    """
    if not isinstance(card, ModelCard):
        raise TypeError(f"card must be a ModelCard; got {type(card).__name__}.")
    object.__setattr__(model, CARD_ATTR, card)  # a plain attribute, not a submodule/buffer
    return model


def is_plain(value: object) -> bool:
    """Whether ``value`` is plain data a card can store (and a file read back safely).

    Example:
        >>> is_plain({"widths": (32, 64), "act": "relu"}), is_plain({"norm": nn.BatchNorm2d})
        (True, False)
    """
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_plain(v) for k, v in value.items())
    return False


def _fail(name: str, rule: str, value: object) -> ValueError:
    return ValueError(f"card field {name} must be {rule}; got {value!r}.")


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_card(card: ModelCard) -> None:
    if card.builder is not None and (not isinstance(card.builder, str) or not card.builder):
        raise _fail("builder", "a registered model name or None", card.builder)
    if not isinstance(card.builder_kwargs, dict) or not is_plain(card.builder_kwargs):
        raise _fail("builder_kwargs", "a dict of plain values", card.builder_kwargs)
    for key, low, high in (
        ("num_classes", 0, _MAX_CLASSES),
        ("in_channels", 1, _MAX_CHANNELS),
        ("image_size", 1, _MAX_SIDE),
    ):
        if key in card.builder_kwargs and not _is_int(card.builder_kwargs[key], low, high):
            raise _fail(f"builder_kwargs.{key}", f"an int in [{low}, {high}]",
                        card.builder_kwargs[key])  # fmt: skip
    _check_classes(card)
    shape = card.image_shape
    if shape is not None and not (
        len(shape) == 3
        and _is_int(shape[0], 1, _MAX_CHANNELS)
        and all(_is_int(s, 1, _MAX_SIDE) for s in shape[1:])
    ):
        raise _fail("image_shape", f"(C, H, W) with 1 <= C <= {_MAX_CHANNELS} and "
                    f"1 <= H, W <= {_MAX_SIDE}", shape)  # fmt: skip
    _check_stats(card)
    if card.resize not in RESIZE_RULES:
        raise _fail("resize", f"one of {RESIZE_RULES}", card.resize)
    if card.task not in TASKS:
        raise _fail("task", f"one of {TASKS}", card.task)
    _check_thresholds(card)
    if card.source is not None and not isinstance(card.source, str):
        raise _fail("source", "a string or None", card.source)
    if not isinstance(card.training, dict) or not is_plain(card.training):
        raise _fail("training", "a dict of plain values", card.training)


def _check_classes(card: ModelCard) -> None:
    classes = card.classes
    if classes is None:
        return
    if not (0 < len(classes) <= _MAX_CLASSES) or not all(isinstance(c, str) for c in classes):
        raise _fail("classes", f"1 to {_MAX_CLASSES:,} class names (strings)", classes[:5])
    declared = card.builder_kwargs.get("num_classes")
    if isinstance(declared, int) and declared not in (0, len(classes)):
        raise _fail("classes", f"{declared} names (builder_kwargs.num_classes)", len(classes))


def _check_thresholds(card: ModelCard) -> None:
    thresholds = card.thresholds
    if thresholds is None:
        return
    if card.task != "multilabel":
        raise _fail("thresholds", "None for a multi-class card (task 'multiclass': the most "
                    "probable class is predicted)", list(thresholds))  # fmt: skip
    in_range = all(
        isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t < 1 for t in thresholds
    )
    if not thresholds or not in_range:
        raise _fail("thresholds", "probabilities in (0, 1), one per label", list(thresholds))
    n = card.num_classes
    if n is not None and len(thresholds) != n:
        raise _fail("thresholds", f"{n} probabilities (one per label)", list(thresholds))


def _check_stats(card: ModelCard) -> None:
    channels = card.in_channels
    for name, values in (("mean", card.mean), ("std", card.std)):
        if values is None:
            continue
        finite = all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in values
        )
        if name == "std" and not (finite and all(v > 0 for v in values)):
            raise _fail("std", "finite numbers > 0 (they divide the pixels)", list(values))
        if not finite or not values:
            raise _fail(name, "finite numbers, one per channel", list(values))
        if channels is not None and len(values) != channels:
            raise _fail(name, f"{channels} numbers (one per channel)", list(values))
    if (card.mean is None) != (card.std is None):
        raise _fail("mean" if card.mean is None else "std", "given with the other", None)
