"""Turn whatever the user passes as training or validation data into a batch iterator."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence, Sized
from dataclasses import replace
from typing import Any, Protocol

import torch
import torch.multiprocessing
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
)

from visionblocks._device import resolve_device
from visionblocks.data import (
    BalancedSampler,
    DataLike,
    DeviceLoader,
    LoaderOptions,
    StreamingDataset,
    StreamLoader,
    dataset_labels,
    is_in_memory,
    normalization_stats,
    tensors_of,
)
from visionblocks.train._defaults import FIT_DEFAULTS

__all__ = [
    "AUTO",
    "Batches",
    "EvalShard",
    "check_world_size",
    "dataset_workers",
    "make_batches",
    "shard_loader",
]

AUTO = "auto"
"""``fit(augment=AUTO)``: the default preset where fit builds the batches, else none."""


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
        if isinstance(sampler, DistributedSampler | BalancedSampler):
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


def make_batches(data: DataLike, options: LoaderOptions, *, train: bool) -> Batches:
    """Wrap ``data`` in the fastest loader that fits it, set up by ``options``.

    In-memory data (:class:`~visionblocks.data.ImageDataset` or a tensor pair) goes
    to the on-device :class:`~visionblocks.data.DeviceLoader`, augmented a batch at a
    time; a :class:`~visionblocks.data.StreamingDataset` to a
    :class:`~visionblocks.data.StreamLoader` (decoded in workers, augmented the same way);
    anything else goes through a ``DataLoader`` (a ``DistributedSampler`` under DDP).
    ``train`` sets what differs between the two uses: training batches are shuffled,
    augmented with ``options.augment`` and, when a rank has more than one, all full;
    evaluation batches keep the data's order, unaugmented, and under DDP the ranks'
    shards cover each item once. ``augment="auto"`` (``fit``'s default) is
    ``FIT_DEFAULTS.augment`` for the first two and no augmentation for a user's
    ``Dataset`` or ``DataLoader``, which bring their own. ``options.sampler`` draws the
    training batches of all three (a ``Dataset`` through a
    :class:`~visionblocks.data.BalancedSampler`, which needs its labels: see
    :func:`~visionblocks.data.dataset_labels`); evaluation batches never use it.

    Example:
        >>> from visionblocks.data import LoaderOptions, load_dataset
        >>> options = LoaderOptions(batch_size=256, augment=AUTO)
        >>> batches = make_batches(load_dataset("sample"), options, train=True)
        >>> type(batches).__name__, len(batches), batches.augment is not None
        ('DeviceLoader', 7, True)
    """
    rank, world_size = options.rank, options.world_size
    if world_size > 1:
        check_world_size(data, world_size)
    augment = options.augment
    if augment == AUTO:  # fit's default: augment where fit builds the batches
        builds = is_in_memory(data) or isinstance(data, StreamingDataset)
        augment = FIT_DEFAULTS.augment if builds else None
    options = replace(
        options, shuffle=train, drop_last=False, augment=augment if train else None,
        sampler=options.sampler if train else None,
    )  # fmt: skip
    if is_in_memory(data):
        if world_size > 1 and not train:
            # The DeviceLoader's equal shards leave out up to world_size - 1 images, which an
            # evaluation must count: each rank takes every world_size-th image instead.
            if options.mean is None or options.std is None:
                mean, std = normalization_stats(data)
                options = replace(options, mean=options.mean or mean, std=options.std or std)
            images, labels = tensors_of(data)
            data = (images[rank::world_size], labels[rank::world_size])
            options = replace(options, rank=0, world_size=1)
        return DeviceLoader(data, _full_batches(options, len(tensors_of(data)[1]), train))
    if isinstance(data, StreamingDataset):  # decoded in workers, augmented on the device
        return StreamLoader(data, _full_batches(options, len(data), train))
    if not isinstance(data, Dataset | DataLoader):
        hint = f" (for the dataset named {data!r}, pass load_dataset({data!r}))"
        hint = hint if isinstance(data, str) else ""
        raise TypeError(
            f"cannot train on {type(data).__name__}{hint}; pass an ImageDataset (load_dataset), "
            f"an (images, labels) pair of tensors or NumPy arrays, a torch Dataset or a DataLoader."
        )
    if options.augment is not None:
        raise ValueError(
            f"augment={options.augment!r} applies where fit builds the batches (load_dataset(...) "
            f"or an (images, labels) pair); a {type(data).__name__} brings its own transforms: "
            f"pass augment=None (the default leaves it alone)."
        )
    device, seed = resolve_device(options.device), options.seed
    if isinstance(data, DataLoader):
        if options.sampler is not None:
            raise ValueError(
                f"sampler={options.sampler!r} builds the batches of a Dataset, but a DataLoader "
                f"has its own sampler: pass its dataset instead, or build the DataLoader with "
                f"sampler=visionblocks.data.BalancedSampler(labels) and no sampler= here."
            )
        loader = shard_loader(data, train=train, rank=rank, world_size=world_size, seed=seed)
        return _TorchBatches(loader, device, options.channels_last)
    sampler: Sampler[int] | None = None
    if options.sampler is not None:
        sampler = _balanced_sampler(data, options)
    elif world_size > 1:
        sampler = (
            DistributedSampler(data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
            if train
            else EvalShard(_length(data), rank=rank, world_size=world_size)
        )
    workers = dataset_workers(world_size)
    loader = DataLoader(
        data,
        batch_size=options.batch_size,
        shuffle=train and sampler is None,
        sampler=sampler,
        drop_last=train,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
    )
    return _TorchBatches(loader, device, options.channels_last)


def _balanced_sampler(data: Dataset[Any], options: LoaderOptions) -> BalancedSampler:
    """The :class:`~visionblocks.data.BalancedSampler` of a user's ``Dataset``, sharded by rank."""
    labels = dataset_labels(data)
    if labels is None:
        raise ValueError(
            f"sampler={options.sampler!r} draws by class, but the {type(data).__name__} does not "
            f"say its items' classes without loading them: give it a .targets attribute (one "
            f"class index per item, as torchvision's datasets have), or pass a TensorDataset."
        )
    if len(labels) != _length(data):
        raise ValueError(
            f"{type(data).__name__}.targets gives {len(labels)} classes for {_length(data)} "
            f"items; it needs one per item."
        )
    return BalancedSampler(
        labels, seed=options.seed, rank=options.rank, world_size=options.world_size
    )


def _full_batches(options: LoaderOptions, size: int, train: bool) -> LoaderOptions:
    """``options`` that drop the last, smaller training batch when a rank has more than one."""
    return replace(options, drop_last=train and size // options.world_size > options.batch_size)


def dataset_workers(world_size: int = 1) -> int:
    """Loading processes ``fit`` gives a plain ``Dataset``: ``min(4, cores // world_size)``.

    The cores are shared by the ``world_size`` training processes of the machine. Workers
    are used only where they start by ``fork`` (Linux); elsewhere they re-import the
    script and need a picklable dataset, which a class defined in a notebook is not, so
    there the data loads in the training process (0 workers).

    Example:
        >>> 0 <= dataset_workers(2) <= dataset_workers(1) <= 4
        True
    """
    if torch.multiprocessing.get_start_method() != "fork":
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(4, cores // max(1, world_size))


class EvalShard(Sampler[int]):
    """Items ``rank, rank + W, rank + 2W, ...`` of ``size``: shards that cover each item once.

    Unlike ``DistributedSampler``, it does not pad the shards to equal length by repeating
    items, so metrics summed over the ranks count every item exactly once. The shards
    differ by at most one item, so their batch counts may differ: use it only where no
    collective runs per batch (evaluation).

    Example:
        >>> [list(EvalShard(5, rank=r, world_size=2)) for r in range(2)]
        [[0, 2, 4], [1, 3]]
    """

    def __init__(self, size: int, *, rank: int, world_size: int) -> None:
        self.size, self.rank, self.world_size = size, rank, world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.size, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.world_size))


def check_world_size(data: object, world_size: int) -> None:
    """Raise if ``data`` has fewer images than there are processes to share them.

    Example:
        >>> check_world_size((torch.zeros(1, 1, 2, 2), torch.zeros(1)), 2)
        Traceback (most recent call last):
        ...
        ValueError: 1 images cannot be shared by 2 processes; run at most 1 (torchrun --nproc_per_node / --nnodes) or use more data.
    """  # noqa: E501
    if isinstance(data, DataLoader):
        data = data.dataset
    if is_in_memory(data):
        size = len(tensors_of(data)[1])
    elif isinstance(data, Sized) and not isinstance(data, IterableDataset):
        size = len(data)
    else:
        return
    if size < world_size:
        raise ValueError(
            f"{size} images cannot be shared by {world_size} processes; run at most {size} "
            f"(torchrun --nproc_per_node / --nnodes) or use more data."
        )


def shard_loader(
    loader: DataLoader[Any], *, train: bool, rank: int, world_size: int, seed: int = 0
) -> DataLoader[Any]:
    """``loader`` re-created to read only this rank's shard of its dataset under DDP.

    The new loader keeps the batch size, workers, collate function, pin_memory,
    drop_last and the rest of ``loader``'s settings. For training its sampler is a
    ``DistributedSampler`` that shuffles if ``loader`` did (a ``RandomSampler``); for
    evaluation an :class:`EvalShard`, which counts each item once. A loader whose sampler
    (or whose batch sampler's sampler) already is a ``DistributedSampler`` is returned as
    it is: that is the way to shard differently. So is one with a
    :class:`~visionblocks.data.BalancedSampler` made for ``world_size`` ranks (one made for
    another number is an error: every rank would train on the same draws).

    Raises:
        TypeError: The loader cannot be re-sharded: an ``IterableDataset``, a custom
            sampler or batch sampler, or a ``DataLoader`` subclass with its own ``__init__``.

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> data = TensorDataset(torch.arange(10))
        >>> loader = DataLoader(data, batch_size=3, shuffle=True, drop_last=True)
        >>> shard = shard_loader(loader, train=True, rank=1, world_size=2)
        >>> type(shard.sampler).__name__, shard.batch_size, shard.drop_last, len(shard)
        ('DistributedSampler', 3, True, 1)
    """
    if isinstance(loader.sampler, BalancedSampler) and loader.sampler.world_size != world_size:
        raise ValueError(
            f"the DataLoader's BalancedSampler is made for world_size="
            f"{loader.sampler.world_size}, but {world_size} processes train: build it with "
            f"rank=<this rank>, world_size={world_size} (or pass the Dataset and "
            f"sampler='balanced' to fit, which shards it)."
        )
    if world_size <= 1 or _is_sharded(loader):
        return loader
    name = type(loader).__name__
    if isinstance(loader.dataset, IterableDataset):
        raise TypeError(
            f"fit cannot shard the IterableDataset {type(loader.dataset).__name__} under DDP "
            f"(it has no sampler to replace); use a map-style Dataset (__getitem__, __len__)."
        )
    if loader.batch_size is None or type(loader.batch_sampler) is not BatchSampler:
        raise TypeError(
            f"fit cannot shard the {name}'s batch_sampler "
            f"{type(loader.batch_sampler).__name__} under DDP; build it on a "
            f"DistributedSampler (as its .sampler), and fit will use the loader as it is."
        )
    if type(loader.sampler) not in (RandomSampler, SequentialSampler):
        raise TypeError(
            f"fit cannot shard the {name}'s sampler {type(loader.sampler).__name__} under "
            f"DDP; pass sampler=DistributedSampler(dataset) (or a subclass), which fit keeps."
        )
    if type(loader).__init__ is not DataLoader.__init__:
        raise TypeError(
            f"fit cannot re-create the DataLoader subclass {name} under DDP; give it "
            f"sampler=DistributedSampler(dataset), and fit will use it as it is."
        )
    sampler: Sampler[int] = (
        DistributedSampler(
            loader.dataset,
            num_replicas=world_size,
            rank=rank,
            shuffle=isinstance(loader.sampler, RandomSampler),
            seed=seed,
        )
        if train
        else EvalShard(_length(loader.dataset), rank=rank, world_size=world_size)
    )
    kwargs: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "sampler": sampler,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "multiprocessing_context": loader.multiprocessing_context,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
        "in_order": getattr(loader, "in_order", True),
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    if loader.pin_memory_device:
        kwargs["pin_memory_device"] = loader.pin_memory_device
    return type(loader)(loader.dataset, **kwargs)


def _is_sharded(loader: DataLoader[Any]) -> bool:
    """The user sharded it: a DistributedSampler or BalancedSampler (or in its batch sampler)."""
    inner = getattr(loader.batch_sampler, "sampler", None)
    return any(isinstance(s, DistributedSampler | BalancedSampler) for s in (loader.sampler, inner))


def _length(dataset: object) -> int:
    if not isinstance(dataset, Sized):
        raise TypeError(
            f"fit shards data by index under DDP, which needs len() of the dataset; "
            f"{type(dataset).__name__} has no __len__."
        )
    return len(dataset)
