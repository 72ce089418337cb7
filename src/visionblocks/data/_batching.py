"""What every visionblocks loader shares: sharding, epochs, augmentation and normalization.

:class:`~visionblocks.data.DeviceLoader` (a dataset held as one tensor) and
:class:`~visionblocks.data.StreamLoader` (images decoded by worker processes) differ
only in how a batch of raw pixels reaches the device. Everything after that, and the
order the images come in (:mod:`visionblocks.data._sampler`: a permutation or a
class-balanced draw), is decided here once, so a folder streamed or held in memory
gives the same batches bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch

from visionblocks._device import resolve_device
from visionblocks.data._batch_augment import BatchAugmentFn, batch_augment
from visionblocks.data._loader_options import LoaderOptions, loader_options
from visionblocks.data._sampler import epoch_order, epoch_seed
from visionblocks.data.contract import Stats, check_stats, normalize

__all__ = ["BatchLoader"]


class BatchLoader:
    """Base of the loaders: checked settings, the epoch's order, augment + normalize a batch.

    :class:`~visionblocks.data.DeviceLoader` and :class:`~visionblocks.data.StreamLoader`
    subclass it: they fetch the raw ``(B, C, H, W)`` pixels of the indices
    :meth:`epoch_indices` gives and pass them through :meth:`finish`. Every epoch's order
    and augmentation come from generators seeded with ``(seed, epoch)``, so
    :meth:`set_epoch` replays an epoch exactly.

    Args:
        options: The shared settings (see :class:`~visionblocks.data.LoaderOptions`).
        size: Images in the dataset.
        channels: Channels of every image.
        image_size: Shorter side of the images (what presets default ``cutout_size`` from).
        default_stats: The dataset's ``(mean, std)``, used where ``options`` gives none
            (``None`` only when it gives both).
        labels: The ``(size,)`` class of every image; needed by ``sampler="balanced"``.
        **settings: :class:`~visionblocks.data.LoaderOptions` fields as keywords, in place
            of ``options`` or replacing its fields.

    Example:
        >>> loader = BatchLoader(
        ...     size=6, channels=1, image_size=4, default_stats=((0.5,), (0.25,)),
        ...     batch_size=2, shuffle=False)
        >>> loader.epoch_indices().tolist()
        [0, 1, 2, 3, 4, 5]
        >>> raw = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
        >>> loader.finish(raw, loader.augment_generator(0)).flatten()[0].item()  # (1 - .5) / .25
        2.0
    """

    def __init__(
        self,
        options: LoaderOptions | None = None,
        *,
        size: int,
        channels: int,
        image_size: int,
        default_stats: Stats | None,
        labels: torch.Tensor | None = None,
        **settings: Any,
    ) -> None:
        options = loader_options(options, settings)
        if size == 0:
            raise ValueError("data is empty (0 images); pass at least one image.")
        if size < options.world_size:
            raise ValueError(f"{size} images cannot be shared by {options.world_size} ranks.")
        self.sampler = options.sampler
        # The classes a balanced draw reads, on the CPU where the draw is made.
        self._draw_labels: torch.Tensor | None = None
        if options.sampler is not None:
            if labels is None:
                raise ValueError(
                    f"sampler={options.sampler!r} needs the class of every image; this "
                    f"loader was given none."
                )
            if len(labels) != size:
                raise ValueError(
                    f"labels must give the class of all {size} images; got {len(labels)}."
                )
            if labels.dim() != 1:
                raise ValueError(
                    f"sampler={options.sampler!r} draws by class, one per image, but these "
                    f"labels are multi-hot {tuple(labels.shape)} (multi-label); drop the "
                    f"sampler (fit's class_weight='balanced' weighs each label's positives)."
                )
            self._draw_labels = labels.detach().long().cpu()
        self.options = options
        self.device = resolve_device(options.device)
        self.dataset_size = size
        self.batch_size, self.shuffle = options.batch_size, options.shuffle
        self.drop_last, self.seed = options.drop_last, options.seed
        self.rank, self.world_size = options.rank, options.world_size
        self.channels_last = options.channels_last
        self.epoch = 0
        if options.mean is not None and options.std is not None:
            self.mean, self.std = check_stats(options.mean, options.std, channels)
        else:
            if default_stats is None:  # the subclasses give them whenever options lack one
                raise ValueError("this data has no stats of its own: pass mean= and std=.")
            mean = default_stats[0] if options.mean is None else options.mean
            std = default_stats[1] if options.std is None else options.std
            if len(mean) != channels or len(std) != channels:
                raise ValueError(f"mean and std need {channels} values; got {mean} and {std}.")
            self.mean, self.std = tuple(mean), tuple(std)
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device)
        self.augment: BatchAugmentFn | None = None
        if isinstance(options.augment, str):
            self.augment = batch_augment(
                options.augment,
                padding=options.padding,
                cutout_size=options.cutout_size,
                image_size=image_size,
                in_channels=channels,
            )
        else:
            self.augment = options.augment

    @property
    def shard_size(self) -> int:
        """Images this rank sees per epoch (also with a balanced draw: an epoch draws ``size``)."""
        return self.dataset_size // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration replays."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0; got {epoch}.")
        self.epoch = epoch

    def epoch_indices(self, epoch: int | None = None) -> torch.Tensor:
        """The dataset indices this rank visits in ``epoch`` (default: the current one), in order.

        Example:
            >>> from visionblocks.data import DeviceLoader
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
            rank=self.rank, world_size=self.world_size, labels=self._draw_labels,
        )  # fmt: skip

    def augment_generator(self, epoch: int) -> torch.Generator:
        """The generator of ``epoch``'s augmentation stream."""
        return torch.Generator().manual_seed(epoch_seed(self.seed, epoch, 1))

    def finish(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment (with ``generator``) and normalize a raw ``(B, C, H, W)`` batch on the device."""
        if self.augment is not None:
            images = self.augment(images, generator)
        return self.normalize(images)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Raw ``(B, C, H, W)`` images to network input: :func:`~visionblocks.data.normalize`."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        return normalize(images, self._mean, self._std, memory_format=memory_format)
