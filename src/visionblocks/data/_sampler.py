"""Which images an epoch visits, in what order: a seeded permutation, or a class-balanced draw.

Every visionblocks loader (in memory, streamed, and ``fit``'s ``DataLoader`` for a user's
``Dataset``) takes its epoch's indices from here, drawn by a generator seeded with
``(seed, epoch)`` alone. Nothing carries over from one epoch to the next, so a run
resumed at epoch ``e`` draws exactly what the uninterrupted run drew, and the ranks of
a distributed run, drawing the same sequence, each keep a disjoint share of it.

The balanced draw (``sampler="balanced"``) picks a class uniformly among the classes
present, then an image of that class uniformly: each class is drawn equally often in
expectation, however rare, and its images with replacement. An epoch draws as many
images as the dataset holds, so its number of steps (and a schedule's length) stays the
one a plain epoch has; a rare class's images then recur within an epoch and a common
class's images are not all seen. This is torch's ``WeightedRandomSampler`` with weights
``1 / n_c`` and ``replacement=True``, drawn in two steps (a class, then an image): no
``(N,)`` weight vector is normalized, and the counts are exact integers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, Subset, TensorDataset

from visionblocks.data.contract import labels_of

__all__ = [
    "SAMPLERS",
    "BalancedSampler",
    "balanced_draw",
    "dataset_labels",
    "epoch_order",
    "epoch_seed",
    "shard",
]

SAMPLERS = ("balanced",)
"""The values of ``LoaderOptions.sampler`` and ``fit(sampler=...)`` besides ``None``."""


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A well-mixed 63-bit seed for random ``stream`` (0: order, 1: augmentation) of an epoch.

    Example:
        >>> epoch_seed(0, 1, 0) == epoch_seed(0, 1, 0) != epoch_seed(0, 2, 0)
        True
    """
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


def shard(order: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """``rank``'s disjoint, equal share of an epoch's ``order``: every ``world_size``-th entry.

    The last ``len(order) % world_size`` entries are left out, so that every rank takes
    as many batches (DDP runs a collective per step).

    Example:
        >>> shard(torch.arange(7), 1, 3).tolist()
        [1, 4]
    """
    usable = len(order) - len(order) % world_size
    return order[:usable][rank::world_size]


def balanced_draw(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``len(labels)`` indices drawn with replacement, each class present equally likely.

    A class is drawn uniformly among those with at least one image, then one of its
    images uniformly.

    Example:
        >>> labels = torch.tensor([0] * 9800 + [1] * 100 + [2] * 100)
        >>> drawn = balanced_draw(labels, torch.Generator().manual_seed(0))
        >>> len(drawn), labels[drawn].bincount().tolist()  # about a third each
        (10000, [3320, 3311, 3369])
    """
    labels = labels.detach().long().cpu()
    counts = torch.bincount(labels)
    present = counts.nonzero().flatten()  # (P,) the classes that can be drawn
    by_class = torch.argsort(labels, stable=True)  # (N,) indices grouped by class
    starts = counts.cumsum(0) - counts  # where each class's group begins in by_class
    size = len(labels)
    classes = present[torch.randint(len(present), (size,), generator=generator)]
    # float64 makes floor(u * n_c) uniform over the class's images for any count that fits
    # in memory; the clamp guards the one rounding of u * n_c up to n_c.
    u = torch.rand(size, generator=generator, dtype=torch.float64)
    within = (u * counts[classes]).long().clamp_(max=counts[classes] - 1)
    return by_class[starts[classes] + within]


def epoch_order(
    size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    rank: int = 0,
    world_size: int = 1,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """The indices of ``size`` images that ``rank`` visits in ``epoch``, in order.

    Shared by every visionblocks loader, so in-memory and streamed data see the same order.
    With ``labels`` (the ``(size,)`` class of every image) the epoch is a
    :func:`balanced_draw` instead of a permutation (``shuffle`` must then be true).

    Example:
        >>> epoch_order(6, seed=0, epoch=0, shuffle=False, rank=1, world_size=2).tolist()
        [1, 3, 5]
        >>> labels = torch.tensor([0, 0, 0, 0, 0, 1])
        >>> order = epoch_order(6, seed=0, epoch=0, shuffle=True, labels=labels)
        >>> len(order), int((labels[order] == 1).sum()) > 1  # the one class-1 image recurs
        (6, True)
    """
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, 0))
    if labels is not None:
        if len(labels) != size:
            raise ValueError(f"labels must give the class of all {size} images; got {len(labels)}.")
        if not shuffle:
            raise ValueError("a balanced draw is random: it needs shuffle=True.")
        order = balanced_draw(labels, generator)
    elif shuffle:
        order = torch.randperm(size, generator=generator)
    else:
        order = torch.arange(size)
    return shard(order, rank, world_size)


class BalancedSampler(Sampler[int]):
    """A class-balanced, seeded, resumable sampler for a ``DataLoader``.

    Each epoch draws ``len(labels) // world_size`` indices for this rank: classes
    equally likely, images with replacement (see the module notes), from a generator
    seeded with ``(seed, epoch)``. Call :meth:`set_epoch` before each epoch, as with
    ``DistributedSampler``; ``fit`` does. Under DDP every rank gets a disjoint share of
    the same draw.

    Args:
        labels: The class index of every item of the dataset (see :func:`dataset_labels`).
        seed: Base seed of the draws (>= 0).
        rank: This process's rank (``0 <= rank < world_size``).
        world_size: Number of processes sharing each epoch's draw.

    Example:
        >>> sampler = BalancedSampler([0, 0, 0, 0, 0, 0, 1, 2], seed=0)
        >>> sampler.set_epoch(1)
        >>> len(sampler), sorted(set(sampler)) != list(range(8))
        (8, True)
        >>> first = list(sampler)
        >>> sampler.set_epoch(1)
        >>> first == list(sampler)  # an epoch replays exactly
        True
    """

    def __init__(
        self,
        labels: Sequence[int] | torch.Tensor,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        for name, value, low in (
            ("seed", seed, 0),
            ("rank", rank, 0),
            ("world_size", world_size, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")
        if not rank < world_size:
            raise ValueError(
                f"need 0 <= rank < world_size; got rank={rank}, world_size={world_size}."
            )
        self.labels = _class_indices(labels, "labels")
        if len(self.labels) < world_size:
            raise ValueError(f"{len(self.labels)} items cannot be shared by {world_size} ranks.")
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose draw the next iteration replays."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0; got {epoch}.")
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        order = epoch_order(
            len(self.labels), seed=self.seed, epoch=self.epoch, shuffle=True,
            rank=self.rank, world_size=self.world_size, labels=self.labels,
        )  # fmt: skip
        return iter(order.tolist())

    def __len__(self) -> int:
        return len(self.labels) // self.world_size

    def __repr__(self) -> str:
        return (
            f"BalancedSampler(size={len(self.labels)}, seed={self.seed}, "
            f"rank={self.rank}/{self.world_size})"
        )


def dataset_labels(data: object) -> torch.Tensor | None:
    """The ``(N,)`` class of every item of ``data``, read without loading any image.

    In-memory data and a :class:`~visionblocks.data.StreamingDataset` (see
    :func:`~visionblocks.data.labels_of`), a ``TensorDataset`` (its second tensor), a
    ``Dataset`` with a ``targets`` attribute (torchvision's datasets have one; a 2-D
    tensor of multi-hot rows is returned as it is) and a ``Subset`` of any of these;
    ``None`` for anything else.

    Example:
        >>> from torch.utils.data import Subset, TensorDataset
        >>> pairs = TensorDataset(torch.zeros(4, 1, 2, 2), torch.tensor([3, 1, 2, 0]))
        >>> dataset_labels(Subset(pairs, [0, 2])).tolist()
        [3, 2]
        >>> dataset_labels(object()) is None
        True
    """
    known = labels_of(data)
    if known is not None:
        return known
    if isinstance(data, Subset):
        parent = dataset_labels(data.dataset)
        return None if parent is None else parent[torch.as_tensor(list(data.indices))]
    if isinstance(data, TensorDataset):
        return data.tensors[1] if len(data.tensors) >= 2 else None
    targets: Any = getattr(data, "targets", None) if isinstance(data, Dataset) else None
    if targets is None:
        return None
    if isinstance(targets, torch.Tensor) and targets.dim() == 2:
        return targets.detach().cpu()  # (N, K) multi-hot, as a TensorDataset's labels
    return _class_indices(targets, f"{type(data).__name__}.targets")


def _class_indices(labels: Sequence[int] | torch.Tensor, name: str) -> torch.Tensor:
    """``labels`` as an int64 ``(N,)`` CPU tensor of class indices, or a one-line error."""
    try:
        values = torch.as_tensor(labels).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(
            f"{name} must be a sequence of class indices; got {type(labels).__name__}."
        ) from None
    if values.dim() == 2:
        raise ValueError(
            f"{name} are multi-label, shape {tuple(values.shape)}: a class-balanced draw needs "
            f"one class per item. For multi-label data use class_weight='balanced' (a "
            f"pos_weight per label) instead of sampler='balanced'."
        )
    if values.dim() != 1 or values.is_complex() or values.dtype == torch.bool:
        raise ValueError(
            f"{name} must be one class index per item, shape (N,); got shape "
            f"{tuple(values.shape)} of {values.dtype}."
        )
    if values.is_floating_point() and not bool((values == values.round()).all()):
        raise ValueError(f"{name} must be whole class indices; got {values[:3].tolist()} ...")
    values = values.long()
    if len(values) and int(values.min()) < 0:
        raise ValueError(f"{name} must be class indices >= 0; got {int(values.min())}.")
    return values
