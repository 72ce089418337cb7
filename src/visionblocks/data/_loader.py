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
from collections.abc import Iterator
from typing import Any

import torch

from visionblocks.data._batching import BatchLoader
from visionblocks.data._dataset import check_multi_hot
from visionblocks.data._loader_options import LoaderOptions, loader_options
from visionblocks.data.contract import InMemoryData, describe_data, normalization_stats, tensors_of

__all__ = ["DeviceLoader"]


class DeviceLoader(BatchLoader):
    """Iterate over shuffled, augmented, normalized batches of an in-memory dataset.

    Each epoch's order and augmentation come from generators seeded with
    ``(seed, epoch)``: call :meth:`~visionblocks.data.BatchLoader.set_epoch` before
    each epoch (as with ``DistributedSampler``) and a run resumed at an epoch boundary
    sees exactly the same batches. Without such calls the epoch advances by one after
    each complete pass, so plain loops still reshuffle.

    Args:
        data: An :class:`ImageDataset`, or an ``(images, labels)`` pair of tensors or NumPy arrays:
            ``(N, C, H, W)`` uint8 images (0-255) or floats in [0, 1], and ``(N,)`` labels
            (or ``(N, K)`` multi-hot labels of 0s and 1s: multi-label data).
            A dataset's per-sample ``transform`` is not used: augmentation is ``augment``.
        options: The settings it shares with every loader (batch size, shuffling or a
            class-balanced ``sampler``, ``augment``, ``device``, ``seed``, ``mean``/``std``,
            sharding, memory format): a :class:`~visionblocks.data.LoaderOptions`,
            documented there.
        num_classes: Number of classes for tensor data (default ``labels.max() + 1``, or the
            columns of multi-hot labels).
        cpu_threads: PyTorch threads used while preparing a batch on the CPU (restored
            before the batch is yielded); ``None`` keeps the global setting. One thread is
            the default because these small, memory-bound operations gain little from
            more, and on a busy machine every multi-threaded op can stall waiting for a
            descheduled thread (measured: 30x slower on 2 shared cores).
        **settings: :class:`~visionblocks.data.LoaderOptions` fields as keywords
            (``batch_size=64, augment="standard"``), in place of ``options`` or replacing
            its fields.

    Yields:
        ``(x, y)``: float32 ``(B, C, H, W)`` normalized images and int64 ``(B,)`` labels
        (float32 ``(B, K)`` for multi-hot labels), both on ``device``.

    Example:
        >>> from visionblocks.data import load_dataset
        >>> loader = DeviceLoader(load_dataset("sample"), batch_size=256, augment="standard")
        >>> len(loader), loader.num_classes, loader.dataset_size
        (8, 10, 2000)
        >>> x, y = next(iter(loader))
        >>> x.shape, x.dtype, y.shape, y.dtype
        (torch.Size([256, 1, 28, 28]), torch.float32, torch.Size([256]), torch.int64)
        >>> from visionblocks.data import LoaderOptions
        >>> options = LoaderOptions(batch_size=500, shuffle=False)
        >>> len(DeviceLoader(load_dataset("sample"), options)), options.shuffle
        (4, False)
    """

    def __init__(
        self,
        data: InMemoryData,
        options: LoaderOptions | None = None,
        *,
        num_classes: int | None = None,
        cpu_threads: int | None = 1,
        **settings: Any,
    ) -> None:
        if cpu_threads is not None and (not isinstance(cpu_threads, int) or cpu_threads < 1):
            raise ValueError(f"cpu_threads must be an int >= 1 or None; got {cpu_threads!r}.")
        options = loader_options(options, settings)
        given: object = data
        if isinstance(given, list) and len(given) == 2:  # a pair written as a list
            given = (given[0], given[1])
        images, labels = tensors_of(given)
        if labels.dim() == 2:  # multi-label: (N, K) multi-hot, one column per label
            labels = check_multi_hot(labels, num_classes)
        elif labels.is_floating_point() and not bool((labels == labels.round()).all()):
            bad = labels[labels != labels.round()][:3].tolist()
            raise ValueError(
                f"labels must be class indices; got non-integer values such as {bad}. "
                f"Pass integer labels."
            )
        given_stats = options.mean is not None and options.std is not None
        super().__init__(
            options,
            size=len(images),
            channels=images.shape[1],
            image_size=min(images.shape[-2:]),
            default_stats=None if given_stats or not len(images) else normalization_stats(given),
            labels=labels,
        )
        info = describe_data(given)
        if num_classes is None:
            num_classes = info.num_classes
        if labels.dim() == 1:
            largest = int(labels.max())
            if not 0 <= int(labels.min()) <= largest < num_classes:
                raise ValueError(
                    f"labels must lie in [0, num_classes={num_classes}); got "
                    f"[{int(labels.min())}, {largest}]."
                )
        self.images = images.to(self.device)  # uint8 stays uint8: 4x less device memory
        # (N,) int64 class indices, or (N, K) float32 multi-hot rows
        self.labels = labels.to(self.device, torch.int64 if labels.dim() == 1 else torch.float32)
        self.num_classes = num_classes
        self.classes = list(info.classes) or [str(c) for c in range(num_classes)]
        self.cpu_threads = cpu_threads

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)

    def __len__(self) -> int:
        if self.drop_last:
            return self.shard_size // self.batch_size
        return math.ceil(self.shard_size / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        order = self.epoch_indices(epoch).to(self.device)
        generator = self.augment_generator(epoch)
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
            y = self.labels.index_select(0, index)  # (B,), or (B, K) multi-hot
            return self.finish(x, generator), y
        finally:
            if limit:
                torch.set_num_threads(threads)

    def __repr__(self) -> str:
        return (
            f"DeviceLoader(size={self.dataset_size}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment!r}, device={str(self.device)!r}, "
            f"rank={self.rank}/{self.world_size})"
        )
