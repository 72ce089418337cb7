"""An image folder that is decoded image by image when read, for folders larger than memory.

:func:`~visionblocks.data.load_dataset` returns one for a folder with
``in_memory=False``, or by itself when the decoded folder would not fit comfortably
in memory (:func:`streams_by_default`). Training reads it through
:class:`~visionblocks.data.StreamLoader`: worker processes decode files into uint8
tensors, and augmentation and normalization then run a batch at a time on the
training device, as they do for in-memory data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import Dataset

from visionblocks.data._augment_photo import resized_crop_image
from visionblocks.data._dataset import check_multi_hot
from visionblocks.data._decode import decode_image_file
from visionblocks.data._resize import check_resize_rule

__all__ = ["STATS_SAMPLE", "CropKey", "StreamingDataset", "stream_threshold", "streams_by_default"]

STATS_SAMPLE = 1000
"""Images (drawn with a fixed seed) that a :class:`StreamingDataset`'s ``mean``/``std`` are
estimated from; the estimate of a 1x28x28 Fashion-MNIST mean is within 0.005 of the full
data's."""

_MAX_IN_MEMORY = 2 * 1024**3  # bytes

CropKey = tuple[int, int, tuple[float, float], bool]
"""``(index, seed, scale, flip)``: image ``index`` of a :class:`StreamingDataset`, randomly
cropped and resized with ``seed`` over ``scale`` of its area, and with ``flip`` flipped
left-right with probability 0.5 (see :meth:`StreamingDataset.__getitem__`)."""


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), if known."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def stream_threshold() -> int:
    """Decoded size (bytes) above which a folder streams: min(2 GiB, 25% of available memory).

    Example:
        >>> 0 < stream_threshold() <= 2 * 1024**3
        True
    """
    available = _available_memory()
    return _MAX_IN_MEMORY if available is None else min(_MAX_IN_MEMORY, available // 4)


def streams_by_default(decoded_bytes: int) -> bool:
    """Whether a folder of ``decoded_bytes`` streams when ``in_memory`` is not given.

    It does above :func:`stream_threshold`; ``decoded_bytes`` is ``N * C * H * W`` (uint8).

    Example:
        >>> streams_by_default(60_000 * 28 * 28), streams_by_default(10**13)
        (False, True)
    """
    return decoded_bytes > stream_threshold()


class StreamingDataset(Dataset[tuple[torch.Tensor, int | torch.Tensor]]):
    """Image files with labels, decoded to uint8 ``(C, H, W)`` tensors when read.

    Every image is decoded by :func:`~visionblocks.data.decode_image_file` to
    ``channels`` channels and brought to ``image_size`` by the ``resize`` rule, as the
    in-memory folder reader and :func:`~visionblocks.inference.predict` do, so all three
    give the same pixels.

    Args:
        files: Image files.
        labels: Class index of each file, or ``(N, K)`` multi-hot labels (multi-label data:
            an item's label is then its ``(K,)`` row).
        classes: Class names; ``classes[label]`` names a label.
        channels: 1 (grayscale) or 3 (RGB).
        image_size: ``(height, width)`` of every decoded image.
        name: Where the data came from, e.g. ``"photos/train"``.
        resize: How an image of another size is brought to ``image_size``: a rule of
            :func:`~visionblocks.data.resize_image`, ``"squash"`` or
            ``"shorter-side+center-crop"``.
        mean: Per-channel mean in [0, 1] units; estimated when left empty (see ``std``).
        std: Per-channel standard deviation in [0, 1] units. When either is empty, both
            are estimated on first use from :data:`STATS_SAMPLE` images drawn with a
            fixed seed (all images when there are fewer).

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> for i in range(4):
        ...     Image.new("L", (8, 8), 60 * i).save(folder / f"{i}.png")
        >>> ds = StreamingDataset(sorted(folder.glob("*.png")), [0, 0, 1, 1], ["a", "b"],
        ...                       channels=1, image_size=(8, 8))
        >>> ds
        StreamingDataset(name='images', size=4, image_shape=(1, 8, 8), num_classes=2)
        >>> image, label = ds[3]
        >>> image.shape, image.dtype, label, round(ds.mean[0] * 255)
        (torch.Size([1, 8, 8]), torch.uint8, 1, 90)
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        labels: Sequence[int] | torch.Tensor,
        classes: Sequence[str],
        *,
        channels: int,
        image_size: tuple[int, int],
        name: str = "images",
        resize: str = "squash",
        mean: Sequence[float] = (),
        std: Sequence[float] = (),
    ) -> None:
        self.files = tuple(Path(f) for f in files)
        self.classes = list(classes)
        given = torch.as_tensor(labels)
        if given.dim() == 2:  # multi-label: (N, K) multi-hot
            self.labels = check_multi_hot(given, len(self.classes))
        else:
            self.labels = given.to(torch.int64).reshape(-1)
        if len(self.labels) != len(self.files):
            raise ValueError(
                f"need one label per file; got {len(self.labels)} labels for "
                f"{len(self.files)} files."
            )
        low, high = (int(self.labels.min()), int(self.labels.max())) if len(self.labels) else (0, 0)
        if self.labels.dim() == 1 and not 0 <= low <= high < max(1, len(self.classes)):
            raise ValueError(
                f"labels must lie in [0, {len(self.classes)}) for {len(self.classes)} classes; "
                f"got [{low}, {high}]."
            )
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB); got {channels!r}.")
        self.channels = channels
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.name = name
        self.resize = check_resize_rule(resize)
        self._stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None
        if mean and std:
            if len(mean) != channels or len(std) != channels:
                raise ValueError(
                    f"mean and std need one value per channel ({channels}); got {mean} and {std}."
                )
            self._stats = (tuple(mean), tuple(std))

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every decoded image."""
        return (self.channels, *self.image_size)

    @property
    def mean(self) -> tuple[float, ...]:
        """Per-channel mean in [0, 1] units (estimated from a sample; see the class)."""
        return self._sample_stats()[0]

    @property
    def std(self) -> tuple[float, ...]:
        """Per-channel standard deviation in [0, 1] units (estimated from a sample)."""
        return self._sample_stats()[1]

    def _sample_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        if self._stats is None:
            if not self.files:
                raise ValueError(f"{self.name} has no images to estimate mean and std from.")
            generator = torch.Generator().manual_seed(0)
            picks = torch.randperm(len(self.files), generator=generator)[:STATS_SAMPLE]
            total = torch.zeros(self.channels, dtype=torch.float64)
            squares = torch.zeros(self.channels, dtype=torch.float64)
            for i in picks.tolist():
                x = self[i][0].to(torch.float64) / 255  # (C, H, W)
                total += x.sum(dim=(1, 2))
                squares += (x * x).sum(dim=(1, 2))
            count = len(picks) * self.image_size[0] * self.image_size[1]
            mean = total / count
            std = (squares / count - mean * mean).clamp_min(0).sqrt()
            self._stats = (tuple(mean.tolist()), tuple(std.tolist()))
        return self._stats

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: int | CropKey) -> tuple[torch.Tensor, int | torch.Tensor]:
        """Image ``key``, decoded and sized by the resize rule, and its label.

        A :data:`CropKey` ``(index, seed, scale, flip)`` instead takes a random resized crop
        of the decoded file (:func:`resized_crop_image`, which also flips) in place of the
        resize rule: :class:`~visionblocks.data.StreamLoader` asks for those when it trains
        with the ``"photo"`` preset.
        """
        if isinstance(key, tuple):
            index, seed, scale, flip = key
            image = decode_image_file(self.files[index], self.channels)
            image = resized_crop_image(image, self.image_size, seed, scale=scale, flip=flip)
        else:
            index = key
            size, rule = self.image_size, self.resize
            image = decode_image_file(self.files[index], self.channels, size, rule)
        if self.labels.dim() == 2:
            return image, self.labels[index]  # (K,) multi-hot
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"StreamingDataset(name={self.name!r}, size={len(self)}, image_shape=({c}, {h}, {w}), "
            f"num_classes={self.num_classes})"
        )
