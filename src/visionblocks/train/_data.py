"""Turn whatever the user passes as training or validation data into a batch iterator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from visionblocks.data import DeviceLoader, ImageDataset
from visionblocks.data._batch_augment import BatchAugmentFn

__all__ = ["Batches", "DataLike", "make_batches", "stats_of"]

DataLike = ImageDataset | tuple[torch.Tensor, torch.Tensor] | Dataset[Any] | DataLoader[Any]
"""What ``fit``/``evaluate`` accept: a dataset from :func:`~visionblocks.data.load_dataset`,
an ``(images, labels)`` tensor pair, any map-style ``Dataset`` or a ``DataLoader``."""


class Batches(Protocol):
    """A re-iterable source of ``(x, y)`` batches that knows its length."""

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (order and augmentation) of the next pass."""


class _TorchBatches:
    """A ``DataLoader`` whose batches are moved to the device in the plan's memory format."""

    def __init__(self, loader: DataLoader[Any], device: torch.device, channels_last: bool) -> None:
        self.loader = loader
        self.device = device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        sampler = self.loader.sampler
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in self.loader:
            if not isinstance(batch, Sequence) or len(batch) < 2:
                raise TypeError(
                    "each batch must be an (images, labels) pair; got "
                    f"{type(batch).__name__}. Wrap your dataset so __getitem__ returns (x, y)."
                )
            x, y = batch[0], batch[1]
            if x.dtype == torch.uint8:
                x = x.float().div_(255)
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            yield x, torch.as_tensor(y).to(self.device, non_blocking=True)


def stats_of(data: object) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The normalization statistics carried by ``data``, if any."""
    if isinstance(data, ImageDataset):
        return data.mean, data.std
    return None


def make_batches(
    data: DataLike,
    *,
    batch_size: int,
    train: bool,
    device: torch.device,
    channels_last: bool,
    augment: str | BatchAugmentFn | None = None,
    seed: int = 0,
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Batches:
    """Wrap ``data`` in the fastest loader that fits it.

    In-memory data (:class:`~visionblocks.data.ImageDataset` or a tensor pair) goes
    to the on-device :class:`~visionblocks.data.DeviceLoader`, augmented a batch at a
    time; anything else goes through a ``DataLoader`` (a ``DistributedSampler`` under DDP).
    """
    if isinstance(data, ImageDataset) or (
        isinstance(data, tuple)
        and len(data) == 2
        and all(isinstance(t, torch.Tensor) for t in data)
    ):
        mean, std = stats if stats is not None else (None, None)
        return DeviceLoader(
            data,
            batch_size=batch_size,
            shuffle=train,
            drop_last=train and len(data[1] if isinstance(data, tuple) else data) > batch_size,
            augment=augment if train else None,
            device=device,
            seed=seed,
            mean=mean,
            std=std,
            rank=rank,
            world_size=world_size,
            channels_last=channels_last,
        )
    if augment is not None and train:
        raise ValueError(
            f"augment={augment!r} applies to in-memory data (load_dataset(...) or an "
            f"(images, labels) pair); give your {type(data).__name__} its own transform instead."
        )
    if isinstance(data, DataLoader):
        return _TorchBatches(data, device, channels_last)
    if isinstance(data, Dataset):
        sampler: DistributedSampler[Any] | None = (
            DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=train, seed=seed)
            if world_size > 1
            else None
        )
        loader: DataLoader[Any] = DataLoader(
            data,
            batch_size=batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            drop_last=train,
            generator=torch.Generator().manual_seed(seed),
        )
        return _TorchBatches(loader, device, channels_last)
    raise TypeError(
        f"cannot train on {type(data).__name__}; pass an ImageDataset (load_dataset), an "
        f"(images, labels) tensor pair, a torch Dataset or a DataLoader."
    )
