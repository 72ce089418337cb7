"""An image classification dataset held as one uint8 tensor in memory.

Every dataset visionblocks loads fits in memory (CIFAR-10's 50,000 training
images are 150 MB as uint8), so it is kept as a single ``(N, C, H, W)`` tensor:
indexing, subsetting, shuffling and moving to the GPU are then single tensor
operations instead of 50,000 Python objects.

Labels are either one class index per image, ``(N,)`` int64 (multi-class: each image is
one of the classes), or a multi-hot ``(N, K)`` float32 matrix of 0s and 1s (multi-label:
``labels[i, k] == 1`` when label ``k`` applies to image ``i``, any number of them per
image). The shape decides the task (:func:`label_task`), here and in every loader,
``fit`` and ``evaluate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch.utils.data import Dataset

__all__ = [
    "ImageDataset",
    "Task",
    "channel_stats",
    "check_multi_hot",
    "label_task",
    "multi_hot",
    "subset",
]

Task = Literal["multiclass", "multilabel"]
"""What labels mean: ``"multiclass"``, one class per image (``(N,)`` class indices);
``"multilabel"``, any set of labels per image (``(N, K)`` multi-hot)."""


def label_task(labels: torch.Tensor) -> Task:
    """The task that ``labels`` are for: ``"multilabel"`` for ``(N, K)``, else ``"multiclass"``.

    Example:
        >>> label_task(torch.tensor([0, 2, 1])), label_task(torch.tensor([[1.0, 0.0, 1.0]]))
        ('multiclass', 'multilabel')
    """
    return "multilabel" if labels.dim() == 2 else "multiclass"


def check_multi_hot(
    labels: torch.Tensor, num_classes: int | None = None, name: str = "labels"
) -> torch.Tensor:
    """``(N, K)`` multi-hot labels as float32, checked: every value 0 or 1 (bool, int or float).

    Args:
        labels: ``(N, K)`` targets; ``labels[i, k]`` is 1 when label ``k`` applies to image ``i``.
        num_classes: The number of labels ``K`` they must have, when known.
        name: What to call them in an error.

    Raises:
        ValueError: Not 2-D, ``K`` other than ``num_classes``, or a value other than 0 and 1
            (soft targets come from MixUp/CutMix inside ``fit``, not from the data).

    Example:
        >>> check_multi_hot(torch.tensor([[True, False], [True, True]]))
        tensor([[1., 0.],
                [1., 1.]])
        >>> check_multi_hot(torch.tensor([[0.5, 1.0]]))
        Traceback (most recent call last):
            ...
        ValueError: labels must be multi-hot, 0 or 1 for each label; got values such as [0.5].
    """
    if labels.dim() != 2 or labels.is_complex():
        raise ValueError(
            f"{name} must be (N, K) multi-hot (1 where a label applies); got shape "
            f"{tuple(labels.shape)}."
        )
    if num_classes is not None and labels.shape[1] != num_classes:
        raise ValueError(
            f"{name} are multi-hot over {labels.shape[1]} labels but {num_classes} classes "
            f"are named; multi-hot labels have one column per class."
        )
    values = labels.to(torch.float32)
    bad = (values != 0) & (values != 1)
    if bool(bad.any()):
        raise ValueError(
            f"{name} must be multi-hot, 0 or 1 for each label; got values such as "
            f"{values[bad][:3].tolist()}."
        )
    return values


def multi_hot(label_sets: Sequence[Iterable[int]], num_classes: int) -> torch.Tensor:
    """``(N, K)`` float32 multi-hot labels from the label indices of each of ``N`` images.

    Args:
        label_sets: For each image, the indices of the labels that apply (any number,
            none included; a repeated index counts once).
        num_classes: ``K``, the number of labels.

    Raises:
        ValueError: ``num_classes`` < 1, or an index outside ``[0, num_classes)``.

    Example:
        >>> multi_hot([[0, 2], [], [1]], num_classes=3)
        tensor([[1., 0., 1.],
                [0., 0., 0.],
                [0., 1., 0.]])
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1; got {num_classes!r}.")
    out = torch.zeros(len(label_sets), num_classes, dtype=torch.float32)
    for i, indices in enumerate(label_sets):
        for k in indices:
            if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < num_classes:
                raise ValueError(
                    f"label_sets[{i}] has the label index {k!r}; indices lie in "
                    f"[0, {num_classes}) for num_classes={num_classes}."
                )
            out[i, k] = 1.0
    return out


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) standard deviation in [0, 1] units.

    Args:
        images: ``(N, C, H, W)`` uint8 images (0-255) or floats in [0, 1].

    Example:
        >>> x = torch.tensor([[[[0, 255]]], [[[255, 255]]]], dtype=torch.uint8)
        >>> channel_stats(x)
        ((0.75,), (0.4330127018922193,))
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(images.shape)}.")
    scale = 255.0 if images.dtype == torch.uint8 else 1.0
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    # Chunks keep the float64 copy small (all of CIFAR-10 in float64 would be 1.2 GB).
    for chunk in torch.split(images, 4096):
        x = chunk.to(torch.float64) / scale
        total += x.sum(dim=(0, 2, 3)).cpu()
        squares += (x * x).sum(dim=(0, 2, 3)).cpu()
    count = images.numel() // channels
    mean = total / count
    std = (squares / count - mean * mean).clamp_min(0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())


@dataclass(eq=False)
class ImageDataset(Dataset[tuple[torch.Tensor, int | torch.Tensor]]):
    """Images and labels in memory, with class names and normalization statistics.

    Attributes:
        images: ``(N, C, H, W)`` uint8 tensor, 0-255.
        labels: ``(N,)`` int64 tensor of class indices, or for multi-label data an
            ``(N, K)`` float32 multi-hot tensor (given as bool, int or float 0/1: see
            :func:`multi_hot` to build one from each image's label indices).
        classes: Class names; ``classes[label]`` names a label (``classes[k]`` names
            column ``k`` of multi-hot labels).
        name: Where the data came from, e.g. ``"fashion-mnist/train"``.
        mean: Per-channel mean in [0, 1] units; computed from ``images`` when left empty.
        std: Per-channel standard deviation in [0, 1] units; computed when left empty.
        transform: Optional per-sample transform applied by ``__getitem__`` to the
            ``(C, H, W)`` uint8 image, e.g. :func:`visionblocks.data.augmentation`.
        resize: How the images were brought to their size (``load_dataset(resize=...)``):
            ``"squash"`` or ``"shorter-side+center-crop"``. A model trained on them records
            it in its card, so ``predict`` sizes new images the same way.

    Example:
        >>> ds = ImageDataset(
        ...     torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1]), ["a", "b"]
        ... )
        >>> len(ds), ds.num_classes, ds.image_shape, ds.mean
        (4, 2, (1, 8, 8), (0.0,))
        >>> image, label = ds[1]
        >>> image.shape, label
        (torch.Size([1, 8, 8]), 1)
        >>> tags = ImageDataset(torch.zeros(2, 1, 8, 8, dtype=torch.uint8),
        ...                     multi_hot([[0, 2], [1]], 3), ["cat", "dog", "sofa"])
        >>> tags.task, tags.num_classes, tags[0][1].tolist()
        ('multilabel', 3, [1.0, 0.0, 1.0])
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = "images"
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    resize: str = "squash"

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 (N, C, H, W) tensor; got {self.images.dtype} with "
                f"shape {tuple(self.images.shape)}. Convert floats in [0, 1] with "
                f"(x * 255).round().to(torch.uint8)."
            )
        if self.labels.dim() not in (1, 2) or len(self.labels) != len(self.images):
            raise ValueError(
                f"labels must be (N,) class indices or (N, K) multi-hot with N={len(self.images)} "
                f"like the images; got shape {tuple(self.labels.shape)}."
            )
        if self.labels.dim() == 2:
            self.labels = check_multi_hot(self.labels, len(self.classes))
        else:
            self.labels = self.labels.to(torch.int64)
        single = self.labels.dim() == 1 and len(self.labels) > 0
        if single and not 0 <= int(self.labels.min()) <= int(self.labels.max()) < len(self.classes):
            raise ValueError(
                f"labels must lie in [0, {len(self.classes)}) for {len(self.classes)} classes; "
                f"got [{int(self.labels.min())}, {int(self.labels.max())}]."
            )
        if not self.mean or not self.std:
            self.mean, self.std = channel_stats(self.images)
        channels = self.images.shape[1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"mean and std need one value per channel ({channels}); got {self.mean} and "
                f"{self.std}."
            )

    @property
    def num_classes(self) -> int:
        """Number of classes (of labels, for multi-label data)."""
        return len(self.classes)

    @property
    def task(self) -> Task:
        """``"multilabel"`` for ``(N, K)`` multi-hot labels, else ``"multiclass"``."""
        return label_task(self.labels)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        """Image ``index`` (transformed) and its label: class index or ``(K,)`` multi-hot row."""
        image = self.images[index]  # (C, H, W) uint8
        if self.transform is not None:
            image = self.transform(image)
        if self.labels.dim() == 2:
            return image, self.labels[index]
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"ImageDataset(name={self.name!r}, size={len(self)}, image_shape=({c}, {h}, {w}), "
            f"num_classes={self.num_classes})"
        )

    def with_transform(
        self, transform: Callable[[torch.Tensor], torch.Tensor] | None
    ) -> ImageDataset:
        """Return a view of this dataset (sharing its tensors) with another per-sample transform.

        Train and eval views of the same data are then distinct objects (the lab's pitfall:
        one transform object shared by both).
        """
        return dataclasses.replace(self, transform=transform)


def subset(
    dataset: ImageDataset, fraction: float, *, stratified: bool = True, seed: int = 0
) -> ImageDataset:
    """Keep a random ``fraction`` of a dataset, by default the same fraction of every class.

    The kept images stay in their original order. The subset keeps the parent's
    ``mean``/``std`` so that it is normalized exactly like the full data.

    Args:
        dataset: The dataset to sample from.
        fraction: Share of images to keep, in (0, 1].
        stratified: Keep ``round(fraction * n_c)`` images of each class ``c`` (at least one
            per non-empty class), so class balance is preserved; otherwise sample uniformly.
            Multi-label data, whose images have no single class, is always sampled uniformly.
        seed: Seed of the random choice; the same seed always keeps the same images.

    Example:
        >>> ds = ImageDataset(torch.zeros(10, 1, 2, 2, dtype=torch.uint8),
        ...                   torch.tensor([0] * 5 + [1] * 5), ["a", "b"])
        >>> small = subset(ds, 0.4)
        >>> len(small), small.labels.tolist(), small.name
        (4, [0, 0, 1, 1], 'images[40%]')
    """
    index = subset_indices(dataset, fraction, stratified=stratified, seed=seed)
    return dataclasses.replace(
        dataset,
        images=dataset.images[index],
        labels=dataset.labels[index],
        classes=list(dataset.classes),
        name=f"{dataset.name}[{fraction:.0%}]",
    )


def subset_indices(
    dataset: ImageDataset, fraction: float, *, stratified: bool = True, seed: int = 0
) -> torch.Tensor:
    """The sorted indices of the images :func:`subset` keeps (same arguments).

    Example:
        >>> ds = ImageDataset(torch.zeros(10, 1, 2, 2, dtype=torch.uint8),
        ...                   torch.tensor([0] * 5 + [1] * 5), ["a", "b"])
        >>> len(subset_indices(ds, 0.4))
        4
    """
    if not isinstance(fraction, int | float) or isinstance(fraction, bool):
        raise TypeError(f"fraction must be a number in (0, 1], e.g. 0.1 for 10%; got {fraction!r}.")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], e.g. 0.1 for 10%; got {fraction!r}.")
    generator = torch.Generator().manual_seed(seed)
    if stratified and dataset.labels.dim() == 1:
        picks = []
        for c in range(dataset.num_classes):
            members = torch.nonzero(dataset.labels == c).flatten()
            if len(members) == 0:
                continue
            keep = max(1, round(fraction * len(members)))
            picks.append(members[torch.randperm(len(members), generator=generator)[:keep]])
        index = torch.cat(picks) if picks else torch.zeros(0, dtype=torch.int64)
    else:
        keep = max(1, round(fraction * len(dataset)))
        index = torch.randperm(len(dataset), generator=generator)[:keep]
    return index.sort().values
