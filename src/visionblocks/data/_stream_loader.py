"""Batches of a streaming dataset: decoded in worker processes, augmented on the device.

Worker processes only read and decode files and collate them into uint8 batches
(4x smaller than float32 to pin and copy). Augmentation and normalization run on the
whole batch on the training device with the same code, order and random streams as
:class:`~visionblocks.data.DeviceLoader`, so a folder streamed or held in memory
gives the same batches. Per-image PIL transforms in the workers are what this
replaces; see ``benchmarks/bench_folder_stream.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

from visionblocks.data._batch_augment import BatchAugment
from visionblocks.data._batching import BatchLoader
from visionblocks.data._loader_options import LoaderOptions
from visionblocks.data._stream import StreamingDataset

__all__ = ["StreamLoader", "default_num_workers"]


def default_num_workers() -> int:
    """Decoding workers for this machine: ``min(4, usable CPU cores)``.

    Four workers decode well over 10,000 small PNGs a second, more than a GPU step
    on them needs; more would only take cores from the training process.

    Example:
        >>> 1 <= default_num_workers() <= 4
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


class _EpochSampler(Sampler[Any]):
    """Yields the indices it is given; the loader sets them before each epoch.

    With ``crop`` (a ``(low, high)`` area share and whether to flip) and ``seeds`` (one per
    index), it yields the dataset's crop keys ``(index, seed, scale, flip)`` instead.
    """

    def __init__(self, indices: list[int]) -> None:
        self.indices = indices
        self.seeds: list[int] = []
        self.crop: tuple[tuple[float, float], bool] | None = None

    def __iter__(self) -> Iterator[Any]:
        if self.crop is None:
            return iter(self.indices)
        scale, flip = self.crop
        return ((i, s, scale, flip) for i, s in zip(self.indices, self.seeds, strict=True))

    def __len__(self) -> int:
        return len(self.indices)


class StreamLoader(BatchLoader):
    """Iterate over shuffled, augmented, normalized batches of a streaming dataset.

    The arguments and the batches are those of :class:`~visionblocks.data.DeviceLoader`:
    the same ``seed`` and epoch give the same order and the same augmentation.

    Args:
        data: The :class:`~visionblocks.data.StreamingDataset`.
        options: The settings it shares with :class:`~visionblocks.data.DeviceLoader`: a
            :class:`~visionblocks.data.LoaderOptions`, documented there (``augment`` runs on
            ``device``, on the uint8 batch).
        num_workers: Decoding processes (default :func:`default_num_workers`; 0 decodes
            in this process). They live as long as the loader.
        **settings: :class:`~visionblocks.data.LoaderOptions` fields as keywords, in place
            of ``options`` or replacing its fields.

    Yields:
        ``(x, y)``: float32 ``(B, C, H, W)`` normalized images and int64 ``(B,)`` labels,
        both on ``device``. Batches come from pinned memory when ``device`` is CUDA.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from torchvision.io import write_png
        >>> from visionblocks.data import StreamingDataset
        >>> folder = Path(tempfile.mkdtemp())
        >>> for i in range(6):
        ...     image = torch.full((1, 8, 8), 40 * i, dtype=torch.uint8)
        ...     _ = write_png(image, str(folder / f"{i}.png"))
        >>> ds = StreamingDataset(sorted(folder.glob("*.png")), [0, 1] * 3, ["a", "b"],
        ...                       channels=1, image_size=(8, 8))
        >>> loader = StreamLoader(ds, batch_size=4, augment="standard", num_workers=0)
        >>> [tuple(x.shape) for x, y in loader]
        [(4, 1, 8, 8), (2, 1, 8, 8)]
    """

    def __init__(
        self,
        data: StreamingDataset,
        options: LoaderOptions | None = None,
        *,
        num_workers: int | None = None,
        **settings: Any,
    ) -> None:
        if not isinstance(data, StreamingDataset):
            raise TypeError(
                f"StreamLoader reads a StreamingDataset (load_dataset(folder, in_memory=False)); "
                f"got {type(data).__name__}. In-memory data goes to DeviceLoader."
            )
        workers = default_num_workers() if num_workers is None else num_workers
        if not isinstance(workers, int) or workers < 0:
            raise ValueError(f"num_workers must be an int >= 0 or None; got {num_workers!r}.")
        super().__init__(
            options,
            size=len(data),
            channels=data.channels,
            image_size=min(data.image_size),
            default_stats=(tuple(data.mean), tuple(data.std)),
            labels=data.labels,
            **settings,
        )
        self.data = data
        self.num_workers = workers
        self.classes = list(data.classes)
        self.num_classes = data.num_classes
        self._sampler = _EpochSampler(self.epoch_indices(0).tolist())
        if isinstance(self.augment, BatchAugment) and self.augment.resized_crop is not None:
            # The photo crop and flip run in the workers, on each file as decoded: one
            # resize from the file's own pixels instead of two (see resized_crop_image), and
            # less work in this process; the rest of the pipeline still runs on the batch.
            self._sampler.crop = (self.augment.resized_crop, self.augment.flip)
            self.augment = self.augment.without_crop_and_flip()
        self.loader: DataLoader[Any] = DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=self._sampler,
            drop_last=self.drop_last,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=workers > 0,
            # Its own generator: iterating must not draw from the global RNG (dropout's).
            generator=torch.Generator().manual_seed(self.seed),
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every image."""
        return self.data.image_shape

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.epoch
        self._sampler.indices = self.epoch_indices(epoch).tolist()
        generator = self.augment_generator(epoch)
        if self._sampler.crop is not None:
            count = len(self._sampler.indices)
            self._sampler.seeds = torch.randint(0, 2**62, (count,), generator=generator).tolist()
        for images, labels in self.loader:
            x = images.to(self.device, non_blocking=True)  # (B, C, H, W) uint8
            y = labels.to(self.device, non_blocking=True)  # (B,)
            yield self.finish(x, generator), y
        self.epoch = epoch + 1

    def __repr__(self) -> str:
        return (
            f"StreamLoader(size={len(self.data)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment!r}, device={str(self.device)!r}, "
            f"num_workers={self.num_workers}, rank={self.rank}/{self.world_size})"
        )
