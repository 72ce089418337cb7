"""The settings every visionblocks loader shares, written and checked in one place.

:class:`~visionblocks.data.DeviceLoader`, :class:`~visionblocks.data.StreamLoader` and
``fit``'s choice of loader all read one :class:`LoaderOptions`, so an option is named,
defaulted, documented and validated once, and a new one reaches every loader at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from visionblocks.data._batch_augment import BatchAugmentFn
from visionblocks.data._sampler import SAMPLERS
from visionblocks.data.contract import check_stats

__all__ = ["LoaderOptions", "loader_options"]


@dataclass(frozen=True)
class LoaderOptions:
    """How a loader orders, augments, normalizes and places its batches.

    :class:`~visionblocks.data.DeviceLoader` and :class:`~visionblocks.data.StreamLoader`
    take one (``DeviceLoader(data, options)``) or its fields as keywords
    (``DeviceLoader(data, batch_size=64)``); keywords given with an object replace its
    fields. The numbers are checked when it is made; ``mean``/``std`` against the image
    channels, ``augment`` and ``device`` when a loader uses it.

    Attributes:
        batch_size: Images per batch (>= 1).
        shuffle: Shuffle every epoch (otherwise keep the dataset's order).
        drop_last: Drop the last, smaller batch.
        augment: ``None``, a preset name (see :func:`~visionblocks.data.augmentation`;
            ``"standard"`` and ``"cutout"`` run fully batched, the others image by image
            on the device), or a callable ``(images (B, C, H, W), generator) -> images``
            applied on the device to un-normalized images.
        device: Where batches are augmented and produced: ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA, then MPS, then CPU). A device this
            machine lacks is refused by the loader, with the alternatives.
        seed: Base seed of order and augmentation (>= 0).
        mean: Per-channel mean in [0, 1] units; default the dataset's.
        std: Per-channel standard deviation in [0, 1] units (> 0); default the dataset's.
        rank: This process's rank under distributed training (``0 <= rank < world_size``).
        world_size: Number of processes; each rank gets a disjoint, equal-sized shard of
            every epoch's permutation (up to ``world_size - 1`` images are left out per
            epoch, different ones each epoch when shuffling).
        channels_last: Yield batches in ``torch.channels_last`` memory format.
        padding: Random-crop padding used by presets (>= 0).
        cutout_size: Cutout square side used by presets (default half the image size).
        sampler: Which images an epoch visits: ``None``, each once (in a shuffled order
            with ``shuffle``); ``"balanced"``, a class-balanced draw: a class is drawn
            uniformly among those present, then one of its images, with replacement, as
            many draws per epoch as the dataset has images (so the epoch keeps its
            length). Drawn from ``(seed, epoch)`` alone, so an epoch replays exactly; needs
            ``shuffle``. Under distributed training each rank takes a disjoint share of
            the epoch's draws.

    Example:
        >>> import dataclasses
        >>> options = LoaderOptions(batch_size=64, augment="standard", seed=1)
        >>> options.shuffle, dataclasses.replace(options, seed=2).seed
        (True, 2)
        >>> LoaderOptions(batch_size=64, mean=[0.5], std=[0.25]).std
        (0.25,)
        >>> LoaderOptions(batch_size=64, sampler="balanced").sampler
        'balanced'
        >>> LoaderOptions(batch_size=0)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be an int >= 1; got 0.
    """

    batch_size: int
    shuffle: bool = True
    drop_last: bool = False
    augment: str | BatchAugmentFn | None = None
    device: str | torch.device = "cpu"
    seed: int = 0
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    rank: int = 0
    world_size: int = 1
    channels_last: bool = False
    padding: int = 4
    cutout_size: int | None = None
    sampler: str | None = None

    def __post_init__(self) -> None:
        for name, low in (
            ("batch_size", 1), ("seed", 0), ("rank", 0), ("world_size", 1), ("padding", 0),
        ):  # fmt: skip
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")
        if not self.rank < self.world_size:
            raise ValueError(
                f"need world_size >= 1 and 0 <= rank < world_size; got rank={self.rank}, "
                f"world_size={self.world_size}."
            )
        if self.sampler is not None:
            if self.sampler not in SAMPLERS:
                choices = ", ".join(repr(name) for name in SAMPLERS)
                raise ValueError(f"sampler must be None or one of {choices}; got {self.sampler!r}.")
            if not self.shuffle:
                raise ValueError(
                    f"sampler={self.sampler!r} draws a random order every epoch; it cannot "
                    f"keep the data's order: drop shuffle=False or the sampler."
                )
        size = self.cutout_size
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
            raise ValueError(f"cutout_size must be an int >= 1 or None; got {size!r}.")
        # Stored as tuples of floats, so the options stay immutable and comparable.
        stats: tuple[tuple[float, ...] | None, tuple[float, ...] | None] = (
            check_stats(self.mean, self.std)
            if self.mean is not None and self.std is not None
            else (_floats("mean", self.mean), _floats("std", self.std))
        )
        object.__setattr__(self, "mean", stats[0])
        object.__setattr__(self, "std", stats[1])


def loader_options(options: LoaderOptions | None, settings: Mapping[str, Any]) -> LoaderOptions:
    """``options`` with the keyword ``settings`` a loader was given in place of its fields.

    Example:
        >>> loader_options(LoaderOptions(batch_size=8), {"seed": 3}).seed
        3
        >>> loader_options(None, {"batch_size": 8, "shufle": False})
        Traceback (most recent call last):
        ...
        TypeError: unknown loader option 'shufle'; the options are the fields of LoaderOptions: batch_size, shuffle, drop_last, augment, device, seed, mean, std, rank, world_size, channels_last, padding, cutout_size, sampler.
    """  # noqa: E501
    names = [field.name for field in dataclasses.fields(LoaderOptions)]
    for key in settings:
        if key not in names:
            raise TypeError(
                f"unknown loader option {key!r}; the options are the fields of LoaderOptions: "
                f"{', '.join(names)}."
            )
    if options is None:
        if "batch_size" not in settings:
            raise TypeError("a loader needs batch_size=... (or a LoaderOptions with one).")
        return LoaderOptions(**settings)
    if not isinstance(options, LoaderOptions):
        raise TypeError(f"options must be a LoaderOptions; got {type(options).__name__}.")
    return dataclasses.replace(options, **settings) if settings else options


def _floats(name: str, values: Sequence[float] | None) -> tuple[float, ...] | None:
    if values is None:
        return None
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers; got {values!r}.") from None
