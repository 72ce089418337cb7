"""Classify images with a trained model: :func:`predict` and its :class:`Prediction`.

Each image is read the way training saw it (``_images``), then normalized with
:func:`visionblocks.data.normalize` and the model's stored statistics, the function every
training path feeds the network through. With ``tta=True`` the logits come from
``visionblocks._tta``, the flip test-time augmentation that ``evaluate(tta=True)`` uses.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from visionblocks._tta import model_logits
from visionblocks.data import normalize
from visionblocks.inference._images import ImageInput, expand_inputs, prepare_image
from visionblocks.inference._model_file import load_model, model_card
from visionblocks.model_file import DEFAULT_THRESHOLD, ModelCard, Stats, model_stats
from visionblocks.train import resolve_device

__all__ = ["Prediction", "predict"]


@dataclass(frozen=True)
class Prediction:
    """The classification of one input by :func:`predict`.

    A multi-label model (its card's ``task`` is ``"multilabel"``) gives each label its own
    probability, the sigmoid of its logit (they need not sum to 1), and predicts every
    label whose probability reaches the label's threshold (the card's ``thresholds``):
    those are ``labels``, possibly none. ``index``, ``label`` and ``probability`` are then
    the most probable label, predicted or not.

    Attributes:
        source: The file path, or a name such as ``"tensor[3]"`` or ``"image 0"``.
        index: The predicted class index.
        label: The predicted class name (the index as text when the model has no names).
        probability: Softmax probability of the predicted class.
        top_indices: The ``top_k`` most probable classes, most probable first.
        top_labels: Their names.
        top_probabilities: Their probabilities (non-increasing).
        probabilities: The softmax probability of every class, in class-index order
            (``probabilities[k]`` is class ``k``, named ``label`` when ``k == index``);
            they sum to 1. Plain floats, so ``torch.tensor([p.probabilities for p in
            found])`` is the ``(N, num_classes)`` matrix to threshold, calibrate or
            average. Left out of ``repr``; empty for a ``Prediction`` built without them.
        task: ``"multiclass"`` or ``"multilabel"``.
        indices: Every predicted class: ``(index,)``, or for a multi-label model each
            label at or above its threshold, most probable first.
        labels: Their names.
        label_probabilities: Their probabilities. These four are left out of ``repr``;
            ``str`` names a multi-label prediction's labels.

    Example:
        >>> p = Prediction("cat.png", 3, "cat", 0.9, (3, 5), ("cat", "dog"), (0.9, 0.05))
        >>> str(p)
        'cat.png: cat (90.0%)'
        >>> q = Prediction("a.png", 1, "dog", 0.75, (1,), ("dog",), (0.75,), (0.25, 0.75))
        >>> q.probabilities[q.index] == q.probability, sum(q.probabilities)
        (True, 1.0)
        >>> tags = Prediction("b.png", 0, "cat", 0.9, (0,), ("cat",), (0.9,), (0.9, 0.2, 0.6),
        ...                   "multilabel", (0, 2), ("cat", "sofa"), (0.9, 0.6))
        >>> str(tags)
        'b.png: cat (90.0%), sofa (60.0%)'
    """

    source: str
    index: int
    label: str
    probability: float
    top_indices: tuple[int, ...]
    top_labels: tuple[str, ...]
    top_probabilities: tuple[float, ...]
    probabilities: tuple[float, ...] = field(default=(), repr=False)
    task: str = field(default="multiclass", repr=False)
    indices: tuple[int, ...] = field(default=(), repr=False)
    labels: tuple[str, ...] = field(default=(), repr=False)
    label_probabilities: tuple[float, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        if self.task != "multilabel":
            return f"{self.source}: {self.label} ({self.probability:.1%})"
        if not self.labels:
            return f"{self.source}: no label (most probable {self.label} {self.probability:.1%})"
        pairs = zip(self.labels, self.label_probabilities, strict=True)
        return f"{self.source}: " + ", ".join(f"{name} ({p:.1%})" for name, p in pairs)


@dataclass(frozen=True)
class _Usage:
    """What :func:`predict` needs to know about a model, from its card."""

    classes: tuple[str, ...] | None
    stats: Stats | None
    channels: int | None
    size: tuple[int, int] | None
    resize: str
    multilabel: bool = False
    thresholds: tuple[float, ...] | None = None  # given: one per label; None: 0.5 each


def _usage(model: nn.Module) -> _Usage:
    card = model_card(model) or ModelCard()
    shape = card.image_shape
    channels = card.in_channels or getattr(model, "in_channels", None)
    return _Usage(
        classes=card.classes,
        stats=model_stats(model),
        channels=channels if isinstance(channels, int) else None,
        size=None if shape is None else (shape[1], shape[2]),
        resize=card.resize,
        multilabel=card.task == "multilabel",
        thresholds=card.thresholds,
    )


def predict(
    model_or_path: nn.Module | str | os.PathLike[str],
    inputs: ImageInput | Sequence[ImageInput],
    *,
    top_k: int = 1,
    tta: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "auto",
) -> list[Prediction]:
    """Classify images with a trained model: one :class:`Prediction` per image.

    A multi-label model (its card's ``task``) scores each label with a sigmoid and
    predicts every label at or above its threshold (``Prediction.labels``); a multi-class
    one takes the softmax and predicts the most probable class.

    Each image is prepared the way the model was trained: converted to its number of
    channels (RGB to grayscale with the ITU-R 601 weights Pillow uses, grayscale to RGB
    by repetition, alpha dropped), brought to the stored training size by the card's
    resize rule (``"squash"``: bilinear, antialiased, aspect ratio not kept;
    ``"shorter-side+center-crop"``: the folder reader's same rule) and
    normalized with the stored statistics. A model without a stored size gets its images
    at their own size; one without statistics gets them scaled to [0, 1] only.

    Args:
        model_or_path: A model (e.g. from :func:`load_model`, or trained by ``fit``) or
            the path of its model file.
        inputs: Image files (decoded by Pillow), folders (their
            image files, recursively, in sorted order), PIL images, or tensors: uint8
            (0-255) or float ([0, 1]), ``(C, H, W)`` or a batch ``(B, C, H, W)``; one input
            or a list of them.
        top_k: How many of the most probable classes each prediction lists (every
            prediction holds all the probabilities too, in ``probabilities``).
        tta: Test-time augmentation, as ``evaluate(tta=True)`` does it: average the logits
            of each image and of its horizontal mirror, then take the softmax. Twice the
            compute; it suits images whose mirror is as likely an image of the same
            class (photos, not text or digits).
        batch_size: Images per forward pass (they are decoded one batch at a time).
        device: ``"auto"`` keeps a model where it is (a model read from a file goes to
            the best device here); ``"cpu"``, ``"cuda"``, ... moves it there.

    Returns:
        The predictions, in the order of the inputs (a folder's files in sorted order).

    Raises:
        FileNotFoundError: An input path does not exist.
        ValueError: A file is not an image, a folder holds none, ``top_k`` is not in
            ``[1, num_classes]``, a tensor is not an image or batch of images, or it holds
            NaN or infinite values (the message names the input).
        TypeError: An input is of another type, or ``tta`` is not a bool.

    Warns:
        UserWarning: The model stores no class names: labels are the class indices.

    Example:
        >>> import torch, warnings, visionblocks as vb
        >>> model = vb.simple_cnn(num_classes=3, in_channels=1, image_size=28)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     found = predict(model, torch.zeros(2, 1, 28, 28), top_k=3)
        >>> len(found), found[0].top_labels[0] == str(found[0].index), str(caught[0].message)[:23]
        (2, True, 'the model stores no cla')
        >>> len(found[0].probabilities), round(sum(found[0].probabilities), 6)
        (3, 1.0)
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int; got {top_k!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if not isinstance(tta, bool):
        raise TypeError(f"tta must be True or False; got {tta!r}.")
    if isinstance(model_or_path, nn.Module):
        model = model_or_path
        target = None if device == "auto" else resolve_device(device)
    else:
        model = load_model(model_or_path)
        target = resolve_device(device)
    if target is not None:
        model.to(target)
    usage = _usage(model)
    num_classes = _num_classes(usage, model)
    if num_classes is not None and top_k > num_classes:
        raise ValueError(
            f"top_k={top_k} is more than the model's {num_classes} classes; use 1 to {num_classes}."
        )
    if usage.classes is None:
        warnings.warn(
            "the model stores no class names, so predictions are labelled by class index; "
            "train with fit() on data with class names (or `visionblocks train`), or pass "
            "save_checkpoint(..., extra={'classes': [...]}) "
            "to name them.",
            UserWarning,
            stacklevel=2,
        )
    items = list(expand_inputs(inputs))
    if not items:
        raise ValueError("predict needs at least one input; got an empty list.")
    param = next(model.parameters(), None)
    run_on = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    results: list[Prediction] = []
    try:
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            images = [
                prepare_image(
                    _finite(read(), source),
                    source,
                    usage.channels,
                    usage.size,
                    resize=usage.resize,
                )
                for source, read in chunk
            ]
            sources = [s for s, _ in chunk]
            results += _classify(model, sources, images, usage, top_k, tta, run_on)
    finally:
        model.train(was_training)
    return results


def _finite(image: torch.Tensor, source: str) -> torch.Tensor:
    """``image``, unless it holds NaN or infinity, which softmax would turn into a prediction."""
    if image.is_floating_point() and not bool(torch.isfinite(image).all()):
        bad = "NaN" if bool(torch.isnan(image).any()) else "infinite"
        raise ValueError(
            f"{source} holds {bad} values; pass finite pixel values in [0, 1], or the uint8 image."
        )
    return image


def _num_classes(usage: _Usage, model: nn.Module) -> int | None:
    if usage.classes is not None:
        return len(usage.classes)
    count = getattr(model, "num_classes", None)
    return count if isinstance(count, int) and count > 0 else None


def _classify(
    model: nn.Module,
    sources: list[str],
    images: list[torch.Tensor],
    usage: _Usage,
    top_k: int,
    tta: bool,
    device: torch.device,
) -> list[Prediction]:
    """Run ``images`` through ``model``; images of one shape and dtype share a batch."""
    groups: dict[tuple[tuple[int, ...], torch.dtype], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault((tuple(image.shape), image.dtype), []).append(i)
    probabilities: dict[int, torch.Tensor] = {}
    for members in groups.values():
        batch = torch.stack([images[i] for i in members]).to(device)  # (B, C, H, W)
        channels = batch.shape[1]
        mean, std = usage.stats or ((0.0,) * channels, (1.0,) * channels)
        with torch.no_grad():
            logits = model_logits(model, normalize(batch, mean, std), tta=tta)  # (B, K)
        # A multi-label model scores each label on its own: a sigmoid per logit.
        scores = logits.float().sigmoid() if usage.multilabel else logits.float().softmax(dim=1)
        for i, row in zip(members, scores.cpu(), strict=True):
            probabilities[i] = row
    results = []
    for i, source in enumerate(sources):
        row = probabilities[i]
        labels = usage.classes or tuple(str(k) for k in range(len(row)))
        if len(labels) != len(row):
            raise ValueError(
                f"the model has {len(row)} outputs but {len(labels)} stored class names; "
                f"save the class names of the data it was trained on."
            )
        if top_k > len(row):
            raise ValueError(
                f"top_k={top_k} is more than the model's {len(row)} classes; use 1 to {len(row)}."
            )
        values, indices = row.topk(top_k)
        top = [int(k) for k in indices]
        chosen = _chosen(row, usage) if usage.multilabel else [top[0]]
        results.append(
            Prediction(
                source=source,
                index=top[0],
                label=labels[top[0]],
                probability=float(values[0]),
                top_indices=tuple(top),
                top_labels=tuple(labels[k] for k in top),
                top_probabilities=tuple(float(v) for v in values),
                probabilities=tuple(row.tolist()),
                task="multilabel" if usage.multilabel else "multiclass",
                indices=tuple(chosen),
                labels=tuple(labels[k] for k in chosen),
                label_probabilities=tuple(float(row[k]) for k in chosen),
            )
        )
    return results


def _chosen(row: torch.Tensor, usage: _Usage) -> list[int]:
    """A multi-label row's labels at or above their thresholds, most probable first."""
    given = usage.thresholds
    if given is not None and len(given) != len(row):
        raise ValueError(
            f"the model has {len(row)} outputs but its card has {len(given)} thresholds; "
            f"give one threshold per label."
        )
    thresholds = torch.tensor(given or (DEFAULT_THRESHOLD,) * len(row), dtype=row.dtype)
    above = (row >= thresholds).nonzero().flatten()
    return [int(k) for k in above[row[above].argsort(descending=True, stable=True)]]
