"""What every visionblocks loader shares: sharding, epochs, augmentation and normalization.

:class:`~visionblocks.data.DeviceLoader` (a dataset held as one tensor) and
:class:`~visionblocks.data.StreamLoader` (images decoded by worker processes) differ
only in how a batch of raw pixels reaches the device. Everything after that, and the
order the images come in, is decided here once, so a folder streamed or held in
memory gives the same batches bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from visionblocks._device import resolve_device
from visionblocks.data._batch_augment import BatchAugmentFn, batch_augment
from visionblocks.data.contract import Stats, check_stats, normalize

__all__ = ["BatchLoader", "epoch_order", "epoch_seed"]


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
    usable = size - size % world_size
    return order[:usable][rank::world_size]


class BatchLoader:
    """Base of the loaders: checked settings, the epoch's order, augment + normalize a batch.

    :class:`~visionblocks.data.DeviceLoader` and :class:`~visionblocks.data.StreamLoader`
    subclass it: they fetch the raw ``(B, C, H, W)`` pixels of the indices
    :meth:`epoch_indices` gives and pass them through :meth:`finish`. Every epoch's order
    and augmentation come from generators seeded with ``(seed, epoch)``, so
    :meth:`set_epoch` replays an epoch exactly.

    Example:
        >>> loader = BatchLoader(
        ...     size=6, channels=1, image_size=4, default_stats=((0.5,), (0.25,)),
        ...     batch_size=2, shuffle=False, drop_last=False, augment=None, device="cpu",
        ...     seed=0, mean=None, std=None, rank=0, world_size=1, channels_last=False,
        ...     padding=4, cutout_size=None)
        >>> loader.epoch_indices().tolist()
        [0, 1, 2, 3, 4, 5]
        >>> raw = torch.full((1, 1, 4, 4), 255, dtype=torch.uint8)
        >>> loader.finish(raw, loader.augment_generator(0)).flatten()[0].item()  # (1 - .5) / .25
        2.0
    """

    def __init__(
        self,
        *,
        size: int,
        channels: int,
        image_size: int,
        default_stats: Stats | None,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        augment: str | BatchAugmentFn | None,
        device: str | torch.device,
        seed: int,
        mean: Sequence[float] | None,
        std: Sequence[float] | None,
        rank: int,
        world_size: int,
        channels_last: bool,
        padding: int,
        cutout_size: int | None,
    ) -> None:
        for name, value, low in (
            ("batch_size", batch_size, 1), ("seed", seed, 0), ("rank", rank, 0),
            ("world_size", world_size, 1), ("padding", padding, 0),
        ):  # fmt: skip
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an int >= {low}; got {value!r}.")
        if not rank < world_size:
            raise ValueError(
                f"need world_size >= 1 and 0 <= rank < world_size; got rank={rank}, "
                f"world_size={world_size}."
            )
        if size == 0:
            raise ValueError("data is empty (0 images); pass at least one image.")
        if size < world_size:
            raise ValueError(f"{size} images cannot be shared by {world_size} ranks.")
        self.device = resolve_device(device)
        self.dataset_size = size
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.channels_last = channels_last
        self.epoch = 0
        if mean is not None and std is not None:
            self.mean, self.std = check_stats(mean, std, channels)
        else:
            assert default_stats is not None  # None only when both are given (see the callers)
            mean = default_stats[0] if mean is None else mean
            std = default_stats[1] if std is None else std
            if len(mean) != channels or len(std) != channels:
                raise ValueError(f"mean and std need {channels} values; got {mean} and {std}.")
            self.mean, self.std = tuple(mean), tuple(std)
        self._mean = torch.tensor(self.mean, dtype=torch.float32, device=self.device)
        self._std = torch.tensor(self.std, dtype=torch.float32, device=self.device)
        self.augment: BatchAugmentFn | None = None
        if isinstance(augment, str):
            self.augment = batch_augment(
                augment,
                padding=padding,
                cutout_size=cutout_size,
                image_size=image_size,
                in_channels=channels,
            )
        else:
            self.augment = augment

    @property
    def shard_size(self) -> int:
        """Images this rank sees per epoch."""
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
            rank=self.rank, world_size=self.world_size,
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
