"""Use a trained model: rebuild it from its ``model.pt`` and classify image files with it.

A model file written by ``visionblocks train`` (or by :func:`~visionblocks.train.save_checkpoint`
with the same entries) holds the weights and everything needed to use them: the
registry name and builder arguments, the class names, the normalization statistics
and the ``(C, H, W)`` shape of the training images. :func:`load_model` turns it back
into a model with a :class:`ModelCard` attached; :func:`predict` then reads images the
way training saw them: converted to the trained number of channels, resized to the
trained size, and normalized with :func:`visionblocks.data.normalize` and the stored
statistics, the function every training path feeds the network through.

Example:
    >>> import tempfile, torch, visionblocks as vb
    >>> path = vb.save_checkpoint(
    ...     f"{tempfile.mkdtemp()}/model.pt", vb.resnet20(num_classes=2, in_channels=1),
    ...     model_name="resnet20", model_kwargs={"num_classes": 2, "in_channels": 1},
    ...     extra={"classes": ["cat", "dog"], "stats": [[0.5], [0.25]], "image_shape": [1, 28, 28]},
    ... )
    >>> model = load_model(path)
    >>> model.visionblocks_card.classes
    ('cat', 'dog')
    >>> [p.label in ("cat", "dog") for p in predict(model, torch.zeros(3, 1, 40, 40))]
    [True, True, True]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from visionblocks.data import normalize
from visionblocks.models import create_model
from visionblocks.train import load_checkpoint, resolve_device, strip_wrapper_prefixes

__all__ = [
    "CARD_ATTR",
    "IMAGE_SUFFIXES",
    "ImageInput",
    "ModelCard",
    "Prediction",
    "load_model",
    "model_card",
    "predict",
]

CARD_ATTR = "visionblocks_card"
"""Attribute :func:`load_model` sets on the model it returns: its :class:`ModelCard`."""
STATS_ATTR = "visionblocks_stats"
# ``fit`` sets STATS_ATTR on the model it trains and ``evaluate`` normalizes with it.

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
"""File suffixes :func:`predict` takes from a folder (other files there are skipped)."""

ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | torch.Tensor"
"""One input of :func:`predict`: an image file or a folder of them, a PIL image, or a
uint8 (0-255) / float ([0, 1]) tensor ``(C, H, W)`` or batch ``(B, C, H, W)``."""

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


@dataclass(frozen=True)
class Prediction:
    """The classification of one input by :func:`predict`.

    Attributes:
        source: The file path, or a name such as ``"tensor[3]"`` or ``"image 0"``.
        index: The predicted class index.
        label: The predicted class name (the index as text when the model has no names).
        probability: Softmax probability of the predicted class.
        top_indices: The ``top_k`` most probable classes, most probable first.
        top_labels: Their names.
        top_probabilities: Their probabilities (non-increasing).

    Example:
        >>> p = Prediction("cat.png", 3, "cat", 0.9, (3, 5), ("cat", "dog"), (0.9, 0.05))
        >>> str(p)
        'cat.png: cat (90.0%)'
    """

    source: str
    index: int
    label: str
    probability: float
    top_indices: tuple[int, ...]
    top_labels: tuple[str, ...]
    top_probabilities: tuple[float, ...]

    def __str__(self) -> str:
        return f"{self.source}: {self.label} ({self.probability:.1%})"


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


@dataclass(frozen=True)
class _Usage:
    """What :func:`predict` needs to know about a model, from its card or its attributes."""

    classes: tuple[str, ...] | None
    stats: Stats | None
    channels: int | None
    size: tuple[int, int] | None


def _usage(model: nn.Module) -> _Usage:
    card = model_card(model)
    stats = getattr(model, STATS_ATTR, None)
    if card is not None and card.stats is not None:
        stats = card.stats
    shape = card.image_shape if card is not None else None
    channels = shape[0] if shape is not None else getattr(model, "in_channels", None)
    return _Usage(
        classes=card.classes if card is not None else None,
        stats=None if stats is None else (tuple(stats[0]), tuple(stats[1])),
        channels=channels if isinstance(channels, int) else None,
        size=None if shape is None else (shape[1], shape[2]),
    )


def predict(
    model_or_path: nn.Module | str | os.PathLike[str],
    inputs: ImageInput | Sequence[ImageInput],
    *,
    top_k: int = 1,
    batch_size: int = 64,
    device: str | torch.device = "auto",
) -> list[Prediction]:
    """Classify images with a trained model: one :class:`Prediction` per image.

    Each image is prepared the way the model was trained: converted to its number of
    channels (RGB to grayscale with the ITU-R 601 weights Pillow uses, grayscale to RGB
    by repetition, alpha dropped), resized to the stored training size (bilinear,
    antialiased, as the folder reader resizes; the aspect ratio is not kept) and
    normalized with the stored statistics. A model without a stored size gets its images
    at their own size; one without statistics gets them scaled to [0, 1] only.

    Args:
        model_or_path: A model (e.g. from :func:`load_model`, or trained by ``fit``) or
            the path of its model file.
        inputs: Image files (decoded by Pillow), folders (their
            image files, recursively, in sorted order), PIL images, or tensors: uint8
            (0-255) or float ([0, 1]), ``(C, H, W)`` or a batch ``(B, C, H, W)``; one input
            or a list of them.
        top_k: How many of the most probable classes each prediction lists.
        batch_size: Images per forward pass (they are decoded one batch at a time).
        device: ``"auto"`` keeps a model where it is (a model read from a file goes to
            the best device here); ``"cpu"``, ``"cuda"``, ... moves it there.

    Returns:
        The predictions, in the order of the inputs (a folder's files in sorted order).

    Raises:
        FileNotFoundError: An input path does not exist.
        ValueError: A file is not an image, a folder holds none, ``top_k`` is not in
            ``[1, num_classes]``, or a tensor is not an image or batch of images.
        TypeError: An input is of another type.

    Warns:
        UserWarning: The model stores no class names: labels are the class indices.

    Example:
        >>> import torch, warnings, visionblocks as vb
        >>> model = vb.simple_cnn(num_classes=3, in_channels=1, image_size=28)
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     found = predict(model, torch.zeros(2, 1, 28, 28), top_k=3)
        >>> len(found), found[0].top_labels[0] == str(found[0].index), str(caught[0].message)[:23]
        (2, True, 'the model stores no cla')
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int; got {top_k!r}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
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
            "train with `visionblocks train` or save_checkpoint(..., extra={'classes': [...]}) "
            "to name them.",
            UserWarning,
            stacklevel=2,
        )
    items = list(_expand(inputs))
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
            images = [_prepare(read(), source, usage) for source, read in chunk]
            results += _classify(model, [s for s, _ in chunk], images, usage, top_k, run_on)
    finally:
        model.train(was_training)
    return results


def _num_classes(usage: _Usage, model: nn.Module) -> int | None:
    if usage.classes is not None:
        return len(usage.classes)
    count = getattr(model, "num_classes", None)
    return count if isinstance(count, int) and count > 0 else None


_Reader: TypeAlias = Callable[[], torch.Tensor]


def _expand(inputs: ImageInput | Sequence[ImageInput]) -> Iterator[tuple[str, _Reader]]:
    """``(source name, reader of its (C, H, W) image)`` for every image in ``inputs``.

    Paths are checked here, before any image is decoded, so a missing file fails at once.
    """
    if isinstance(inputs, (str, os.PathLike, Image.Image, torch.Tensor)):
        inputs = [inputs]
    elif not isinstance(inputs, Sequence):
        raise TypeError(
            f"inputs must be an image path, folder, PIL image or tensor, or a list of them; "
            f"got {type(inputs).__name__}."
        )
    single = len(inputs) == 1
    for j, item in enumerate(inputs):
        if isinstance(item, torch.Tensor):
            name = "tensor" if single else f"tensor {j}"
            if item.dim() == 3:
                yield name, partial(_same, item)
            elif item.dim() == 4:
                for i in range(len(item)):
                    yield f"{name}[{i}]", partial(_same, item[i])
            else:
                raise ValueError(
                    f"{name} has shape {tuple(item.shape)}; pass an image (C, H, W) or a batch "
                    f"(B, C, H, W)."
                )
        elif isinstance(item, Image.Image):
            filename = getattr(item, "filename", "")
            yield (str(filename) if filename else f"image {j}"), partial(_from_pil, item)
        elif isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if path.is_dir():
                files = sorted(
                    f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
                )
                if not files:
                    raise ValueError(
                        f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder {str(path)!r}."
                    )
                for file in files:
                    yield str(file), partial(_read_file, file)
            elif path.is_file():
                yield str(path), partial(_read_file, path)
            else:
                raise FileNotFoundError(f"no image file or folder at {str(path)!r}.")
        else:
            raise TypeError(
                f"input {j} is a {type(item).__name__}; pass image paths, folders, PIL images or "
                f"tensors."
            )


def _same(image: torch.Tensor) -> torch.Tensor:
    return image


def _from_pil(image: Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 ``(C, H, W)`` tensor with 1 (grayscale) or 3 (RGB) channels."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grayscale: scaled, not clipped
        array = np.asarray(image, dtype=np.float64) * (255 / 65535)
        return torch.from_numpy(np.clip(np.rint(array), 0, 255).astype(np.uint8))[None]
    if image.mode not in ("L", "RGB"):
        # Palette, CMYK and alpha to RGB (as the folder reader does); 1-bit and float to gray.
        image = image.convert("L" if image.mode in ("1", "F", "LA") else "RGB")
    tensor: torch.Tensor = TF.pil_to_tensor(image)
    return tensor


def _read_file(path: Path) -> torch.Tensor:
    """Decode an image file into a uint8 ``(C, H, W)`` tensor, or fail naming the file.

    Pillow decodes it: torchvision 0.29 deprecated ``decode_image`` in favour of TorchCodec,
    and Pillow reads every format the folder reader accepts. Lossless formats (PNG, BMP,
    TIFF) give the same pixels as the folder reader's decoder.
    """
    try:
        with Image.open(path) as opened:
            return _from_pil(opened)
    except (OSError, ValueError, SyntaxError):
        raise ValueError(
            f"cannot read {str(path)!r}: not an image file Pillow can decode (PNG, JPEG, GIF, "
            f"WebP, BMP, TIFF, ...)."
        ) from None


def _prepare(image: torch.Tensor, source: str, usage: _Usage) -> torch.Tensor:
    """One ``(C, H, W)`` image in the model's channels and size, still in pixel units."""
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise ValueError(
            f"{source} is a {image.dtype} tensor; pass uint8 (0-255) or float ([0, 1]) images."
        )
    image = image.detach().cpu()
    if image.is_floating_point() and image.numel():
        low, high = float(image.min()), float(image.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"{source} holds float values in [{low:.3g}, {high:.3g}], but float images must "
                f"be pixel values in [0, 1] (predict normalizes them itself); pass x / 255 or "
                f"the uint8 image."
            )
    image = _match_channels(image, source, usage.channels)
    if usage.size is not None and tuple(image.shape[-2:]) != usage.size:
        image = TF.resize(
            image, list(usage.size), interpolation=InterpolationMode.BILINEAR, antialias=True
        )
    return image


def _match_channels(image: torch.Tensor, source: str, channels: int | None) -> torch.Tensor:
    count = image.shape[0]
    if channels is None or count == channels:
        return image
    if count in (2, 4):  # grayscale + alpha, RGB + alpha: the alpha channel is dropped
        image, count = image[: count - 1], count - 1
    if count == channels:
        return image
    if count == 1 and channels == 3:
        return image.expand(3, -1, -1)
    if count == 3 and channels == 1:
        return _rgb_to_gray(image)
    raise ValueError(
        f"{source} has shape {tuple(image.shape)}: {count} channels, but the model takes "
        f"{channels}; tensors are (C, H, W) (an (H, W, C) array needs .permute(2, 0, 1))."
    )


def _rgb_to_gray(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` -> ``(1, H, W)`` with ITU-R 601 weights, bit-exact with Pillow's ``"L"``.

    Pillow (which the folder reader converts with) computes uint8 gray in 16-bit fixed
    point, ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``; the same formula here gives the
    same pixels, so a color file and its grayscale version get the same prediction.
    """
    if image.is_floating_point():
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype).view(3, 1, 1)
        return (image * weights).sum(dim=0, keepdim=True)
    weights = torch.tensor([19595, 38470, 7471], dtype=torch.int32).view(3, 1, 1)
    gray = ((image.to(torch.int32) * weights).sum(dim=0, keepdim=True) + 2**15) >> 16
    return gray.to(torch.uint8)


def _classify(
    model: nn.Module,
    sources: list[str],
    images: list[torch.Tensor],
    usage: _Usage,
    top_k: int,
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
            logits = model(normalize(batch, mean, std))  # (B, K)
        for i, row in zip(members, logits.float().softmax(dim=1).cpu(), strict=True):
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
        results.append(
            Prediction(
                source=source,
                index=top[0],
                label=labels[top[0]],
                probability=float(values[0]),
                top_indices=tuple(top),
                top_labels=tuple(labels[k] for k in top),
                top_probabilities=tuple(float(v) for v in values),
            )
        )
    return results
