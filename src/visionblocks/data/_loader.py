"""A loader that keeps the whole dataset on the training device and augments batches there.

The usual ``DataLoader`` decodes, augments and collates one image at a time in
worker processes, which on a small machine costs more than the forward and
backward pass of a small CNN. Here the dataset is one uint8 tensor on the
device, a batch is one ``index_select``, and augmentation and normalization are
a handful of tensor operations on the whole batch (the approach of airbench,
https://github.com/KellerJordan/cifar10-airbench). See ``benchmarks/bench_loader.py``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from visionblocks._device import resolve_device
from visionblocks.data._batch_augment import BatchAugmentFn, batch_augment
from visionblocks.data.contract import (
    InMemoryData,
    check_stats,
    describe_data,
    normalization_stats,
    normalize,
    tensors_of,
)

__all__ = ["DeviceLoader", "epoch_order", "epoch_seed"]


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A well-mixed 63-bit seed for random ``stream`` (0: order, 1: augmentation) of an epoch.

    Example:
        >>> epoch_seed(0, 1, 0) == epoch_seed(0, 1, 0) != epoch_seed(0, 2, 0)
        True
    """
    state = np.random.SeedSequence([seed, epoch, stream]).generate_state(1, dtype=np.uint64)
    return int(state[0]) >> 1


def epoch_order(
    size: int, *, seed: int, epoch: int, shuffle: bool, rank: int = 0, world_size: int = 1
) -> torch.Tensor:
    """The indices of ``size`` images that ``rank`` visits in ``epoch``, in order.

    Shared by every visionblocks loader, so in-memory and streamed data see the same order.

    Example:
        >>> epoch_order(6, seed=0, epoch=0, shuffle=False, rank=1, world_size=2).tolist()
        [1, 3, 5]
    """
    if shuffle:
        generator = torch.Generator().manual_seed(epoch_seed(seed, epoch, 0))
        order = torch.randperm(size, generator=generator)
    else:
        order = torch.arange(size)
    # Disjoint, equal shards: drop the remainder, then deal indices out round-robin.
    return order[: size // world_size * world_size][rank::world_size]


class DeviceLoader:
    """Iterate over shuffled, augmented, normalized batches of an in-memory dataset.

    Each epoch's order and augmentation come from generators seeded with
    ``(seed, epoch)``: call :meth:`set_epoch` before each epoch (as with
    ``DistributedSampler``) and a run resumed at an epoch boundary sees exactly the
    same batches. Without calls to :meth:`set_epoch` the epoch advances by one after
    each complete pass, so plain loops still reshuffle.

    Args:
        data: An :class:`ImageDataset`, or an ``(images, labels)`` pair of tensors or NumPy arrays:
            ``(N, C, H, W)`` uint8 images (0-255) or floats in [0, 1], and ``(N,)`` labels.
            A dataset's per-sample ``transform`` is not used: augmentation is ``augment``.
        batch_size: Images per batch.
        shuffle: Shuffle every epoch (otherwise keep the dataset's order).
        drop_last: Drop the last, smaller batch.
        augment: ``None``, a preset name (see :func:`~visionblocks.data.augmentation`;
            ``"standard"`` and ``"cutout"`` run fully batched, the others image by image
            on the device), or a callable ``(images (B, C, H, W), generator) -> images``
            applied to un-normalized images.
        device: Where the data lives and batches are produced: ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"`` or ``"auto"`` (CUDA, then MPS, then CPU). A device this
            machine lacks is refused here, with the alternatives.
        seed: Base seed of order and augmentation (non-negative).
        mean: Per-channel mean in [0, 1] units; default the dataset's.
        std: Per-channel standard deviation in [0, 1] units (> 0); default the dataset's.
        rank: This process's rank under distributed training.
        world_size: Number of processes; each rank gets a disjoint, equal-sized shard of
            every epoch's permutation (up to ``world_size - 1`` images are left out per
            epoch, different ones each epoch when shuffling).
        channels_last: Yield batches in ``torch.channels_last`` memory format.
        num_classes: Number of classes for tensor data (default ``labels.max() + 1``).
        padding: Random-crop padding used by presets.
        cutout_size: Cutout square side used by presets (default half the image size).
        cpu_threads: PyTorch threads used while preparing a batch on the CPU (restored
            before the batch is yielded); ``None`` keeps the global setting. One thread is
            the default because these small, memory-bound operations gain little from
            more, and on a busy machine every multi-threaded op can stall waiting for a
            descheduled thread (measured: 30x slower on 2 shared cores).

    Yields:
        ``(x, y)``: float32 ``(B, C, H, W)`` normalized images and int64 ``(B,)`` labels,
        both on ``device``.

    Example:
        >>> from visionblocks.data import load_dataset
        >>> loader = DeviceLoader(load_dataset("sample"), batch_size=256, augment="standard")
        >>> len(loader), loader.num_classes, loader.dataset_size
        (8, 10, 2000)
        >>> x, y = next(iter(loader))
        >>> x.shape, x.dtype, y.shape, y.dtype
        (torch.Size([256, 1, 28, 28]), torch.float32, torch.Size([256]), torch.int64)
    """

    def __init__(
        self,
        data: InMemoryData,
        *,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        augment: str | BatchAugmentFn | None = None,
        device: str | torch.device = "cpu",
        seed: int = 0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        rank: int = 0,
        world_size: int = 1,
        channels_last: bool = False,
        num_classes: int | None = None,
        padding: int = 4,
        cutout_size: int | None = None,
        cpu_threads: int | None = 1,
    ) -> None:
        for name, value, low in (
            ("batch_size", batch_size, 1), ("seed", seed, 0), ("rank", rank, 0),
            ("world_size", world_size, 1), ("padding", padding, 0),
        ):  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(
                f"need world_size >= 1 and 0 <= rank < world_size; got rank={rank}, "
                f"world_size={world_size}."
            )
        if cpu_threads is not None and (not isinstance(cpu_threads, int) or cpu_threads < 1):
            raise ValueError(f"cpu_threads must be an int >= 1 or None; got {cpu_threads!r}.")
        self.device = resolve_device(device)
        given: object = data
        if isinstance(given, list) and len(given) == 2:  # a pair written as a list
            given = (given[0], given[1])
        images, labels = tensors_of(given)
        if len(images) == 0:
            raise ValueError("data is empty (0 images); pass at least one image.")
        if labels.is_floating_point() and not bool((labels == labels.round()).all()):
            bad = labels[labels != labels.round()][:3].tolist()
            raise ValueError(
                f"labels must be class indices; got non-integer values such as {bad}. "
                f"Pass integer labels."
            )
        info = describe_data(given)
        if len(images) < world_size:
            raise ValueError(f"{len(images)} images cannot be shared by {world_size} ranks.")
        largest = int(labels.max())
        if num_classes is None:
            num_classes = info.num_classes
        if not 0 <= int(labels.min()) <= largest < num_classes:
            raise ValueError(
                f"labels must lie in [0, num_classes={num_classes}); got "
                f"[{int(labels.min())}, {largest}]."
            )
        self.images = images.to(self.device)  # uint8 stays uint8: 4x less device memory
        self.labels = labels.to(self.device, torch.int64)
        self.dataset_size = len(images)
        self.num_classes = num_classes
        self.classes = list(info.classes) or [str(c) for c in range(num_classes)]
        channels = images.shape[1]
        if mean is not None and std is not None:
            self.mean, self.std = check_stats(mean, std, channels)
        else:
            stats = normalization_stats(given)
            mean = stats[0] if mean is None else mean
            std = stats[1] if std is None else std
            if len(mean) != channels or len(std) != channels:
                raise ValueError(f"mean and std need {channels} values; got {mean} and {std}.")
            self.mean, self.std = tuple(mean), tuple(std)
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device)
        if isinstance(augment, str):
            self.augment = batch_augment(
                augment,
                padding=padding,
                cutout_size=cutout_size,
                image_size=min(images.shape[-2:]),
                in_channels=channels,
            )
        else:
            self.augment = augment
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        self.cpu_threads = cpu_threads
        self.epoch = 0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)

    @property
    def shard_size(self) -> int:
        """Images this rank sees per epoch."""
        return self.dataset_size // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration replays."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0; got {epoch}.")
        self.epoch = epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.shard_size // self.batch_size
        return math.ceil(self.shard_size / self.batch_size)

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """The dataset indices this rank visits in ``epoch`` (default: the current one), in order.

        Example:
            >>> images = torch.zeros(10, 1, 4, 4, dtype=torch.uint8)
            >>> pair = (images, torch.zeros(10, dtype=torch.int64))
            >>> ranks = [DeviceLoader(pair, batch_size=2, rank=r, world_size=3) for r in range(3)]
            >>> [len(r.epoch_indices()) for r in ranks]
            [3, 3, 3]
            >>> len(set(torch.cat([r.epoch_indices() for r in ranks]).tolist()))
            9
        """
        epoch = self.epoch if epoch is None else epoch
        return epoch_order(
            self.dataset_size, seed=self.seed, epoch=epoch, shuffle=self.shuffle,
            rank=self.rank, world_size=self.world_size,
        )  # fmt: skip

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        order = self.epoch_indices(epoch).to(self.device)
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, epoch, 1))
        for start in range(0, len(order), self.batch_size):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                break
            yield self._batch(index, generator)
        self.epoch = epoch + 1

    def _batch(
        self, index: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        threads = torch.get_num_threads()
        wanted = self.cpu_threads if self.device.type == "cpu" else None
        limit = wanted is not None and wanted < threads
        if limit and wanted is not None:
            torch.set_num_threads(wanted)
        try:
            x = self.images.index_select(0, index)  # (B, C, H, W), raw pixel values
            y = self.labels.index_select(0, index)  # (B,)
            if self.augment is not None:
                x = self.augment(x, generator)
            return self.normalize(x), y
        finally:
            if limit:
                torch.set_num_threads(threads)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Raw ``(B, C, H, W)`` images to network input: :func:`~visionblocks.data.normalize`."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return normalize(images, self._mean, self._std, memory_format=memory_format)

    def __repr__(self) -> str:
        return (
            f"DeviceLoader(size={self.dataset_size}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment!r}, device={str(self.device)!r}, "
            f"rank={self.rank}/{self.world_size})"
        )
