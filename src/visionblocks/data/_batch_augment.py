"""Batch augmentation pipelines: the presets of ``augmentation`` for a whole batch at once.

A pipeline is any callable ``(images (B, C, H, W), generator) -> images`` that
draws all its randomness from the generator it is given, which is what lets
:class:`~visionblocks.data.DeviceLoader` replay an epoch exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from visionblocks.data._augment import PRESET_SPECS, augment_ops, preset_spec
from visionblocks.data._augment_photo import batch_resized_crop
from visionblocks.data._batch_ops import (
    batch_color_jitter,
    batch_cutout,
    batch_flip,
    batch_pad_crop,
    batch_rotate,
)

__all__ = ["BATCHED_PRESETS", "BatchAugment", "BatchAugmentFn", "PerSampleAugment", "batch_augment"]


class BatchAugmentFn(Protocol):
    """What :class:`~visionblocks.data.DeviceLoader` accepts as ``augment``.

    Any callable ``(images, generator) -> images``: ``images`` is a ``(B, C, H, W)``
    uint8 (0-255) or float ([0, 1]) batch on the loader's device; the result must have
    the same shape and dtype. The loader normalizes by dtype (uint8 divided by 255,
    floats taken as they are), so uint8 pixels returned as float 0-255 would train on
    inputs 255 times brighter than the test images. All randomness must come from
    ``generator`` (a CPU generator), which is what makes epochs replayable.

    Example:
        >>> from visionblocks.data import DeviceLoader
        >>> def invert(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        ...     return 255 - images  # uint8 in, uint8 out; draws nothing from generator
        >>> images, labels = torch.zeros(4, 1, 8, 8, dtype=torch.uint8), torch.tensor([0, 1, 0, 1])
        >>> loader = DeviceLoader((images, labels), batch_size=2, augment=invert, mean=(0.5,),
        ...                       std=(0.5,))
        >>> batch, _ = next(iter(loader))
        >>> batch.unique().tolist()  # black images made white, then normalized: (1 - 0.5) / 0.5
        [1.0]
    """

    def __call__(self, images: torch.Tensor, generator: torch.Generator, /) -> torch.Tensor:
        """Augment a batch."""
        ...


BATCHED_PRESETS = tuple(name for name, spec in PRESET_SPECS.items() if spec.policy is None)
"""Presets with a fully batched implementation; the others run image by image."""


class BatchAugment:
    """Crop, flip, colour jitter, rotation and cutout, in that order, on a whole batch.

    The result has the dtype and value range of the input (uint8 stays uint8).

    Args:
        padding: Zero padding of the random crop (0 disables it).
        resized_crop: ``(low, high)`` share of the area a random resized crop keeps
            (:func:`~visionblocks.data.batch_resized_crop`, aspect 3:4 to 4:3, back to the
            image size), instead of the pad-crop; ``None``: the pad-crop.
        flip: Flip left-right with probability 0.5.
        color_jitter: Brightness, contrast and saturation strength (``ColorJitter(s, s, s)``);
            0 disables it.
        rotation: Maximum rotation in degrees (``RandomRotation(rotation)``); 0 disables it.
        cutout_size: Side of the cutout square, or ``None`` for no cutout.

    Example:
        >>> aug = BatchAugment(padding=4, cutout_size=8)
        >>> x = torch.full((5, 3, 32, 32), 200, dtype=torch.uint8)
        >>> y = aug(x, torch.Generator().manual_seed(0))
        >>> y.shape, y.dtype
        (torch.Size([5, 3, 32, 32]), torch.uint8)
    """

    def __init__(
        self,
        *,
        padding: int = 4,
        flip: bool = True,
        color_jitter: float = 0.0,
        rotation: float = 0.0,
        cutout_size: int | None = None,
        resized_crop: tuple[float, float] | None = None,
    ) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0; got {padding}.")
        if not 0 <= color_jitter <= 1:
            raise ValueError(f"color_jitter must be in [0, 1]; got {color_jitter}.")
        if rotation < 0:
            raise ValueError(f"rotation must be >= 0 degrees; got {rotation}.")
        if cutout_size is not None and cutout_size < 1:
            raise ValueError(f"cutout_size must be >= 1 or None; got {cutout_size}.")
        self.padding = padding
        self.flip = flip
        self.color_jitter = color_jitter
        self.rotation = rotation
        self.cutout_size = cutout_size
        self.resized_crop = resized_crop

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a ``(B, C, H, W)`` batch; the same generator state gives the same result."""
        if self.resized_crop is None:
            images = batch_pad_crop(images, self.padding, generator)
        else:
            images = batch_resized_crop(images, generator, scale=self.resized_crop)
        if self.flip:
            images = batch_flip(images, generator)
        if self.color_jitter:
            s = self.color_jitter
            images = batch_color_jitter(images, generator, brightness=s, contrast=s, saturation=s)
        if self.rotation:
            images = batch_rotate(images, self.rotation, generator)
        if self.cutout_size is not None:
            images = batch_cutout(images, self.cutout_size, generator)
        return images

    def without_crop_and_flip(self) -> BatchAugment:
        """This pipeline without its crop (pad-crop or resized crop) and flip.

        The rest, for loaders that crop and flip each image before batching.
        """
        return BatchAugment(
            padding=0,
            flip=False,
            color_jitter=self.color_jitter,
            rotation=self.rotation,
            cutout_size=self.cutout_size,
        )

    def __repr__(self) -> str:
        return (
            f"BatchAugment(padding={self.padding}, flip={self.flip}, "
            f"color_jitter={self.color_jitter}, rotation={self.rotation}, "
            f"cutout_size={self.cutout_size}"
            + ("" if self.resized_crop is None else f", resized_crop={self.resized_crop}")
            + ")"
        )


class PerSampleAugment:
    """Run per-sample transforms over a batch, one image at a time, on the batch's device.

    For operations with no batched version (AutoAugment, RandAugment, ...). They draw
    from PyTorch's global random state, so that state is forked and seeded from the
    loader's generator for every batch: results stay reproducible and the caller's
    global random state is left untouched.

    Example:
        >>> from torchvision.transforms import v2
        >>> aug = PerSampleAugment([v2.RandomHorizontalFlip(p=1.0)])
        >>> aug(torch.arange(2.0).reshape(1, 1, 1, 2), torch.Generator()).flatten().tolist()
        [1.0, 0.0]
    """

    def __init__(self, transforms: Sequence[Callable[[torch.Tensor], torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment a ``(B, C, H, W)`` batch image by image."""
        seed = int(torch.randint(0, 2**62, (), generator=generator))
        devices = [images.device] if images.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            out = []
            for image in images:
                for transform in self.transforms:
                    image = transform(image)
                out.append(image)
        return torch.stack(out)

    def __repr__(self) -> str:
        return f"PerSampleAugment({self.transforms!r})"


def batch_augment(
    preset: str,
    *,
    padding: int = 4,
    cutout_size: int | None = None,
    image_size: int = 32,
    in_channels: int | None = None,
) -> BatchAugmentFn | None:
    """The batched version of an :func:`~visionblocks.data.augmentation` preset.

    ``"standard"``, ``"lab"``, ``"cutout"`` and ``"photo"`` run fully batched; the others
    fall back to :class:`PerSampleAugment` with the same torchvision operations. ``"none"``
    gives ``None``.

    Args:
        preset: One of :data:`~visionblocks.data.AUGMENT_PRESETS`.
        padding: Zero padding of the random crop.
        cutout_size: Side of the cutout square (default: half of ``image_size``).
        image_size: Shorter side of the images, to default ``cutout_size``.
        in_channels: Number of image channels, checked against the preset.

    Example:
        >>> batch_augment("cutout", image_size=28)
        BatchAugment(padding=4, flip=True, color_jitter=0.0, rotation=0.0, cutout_size=14)
        >>> batch_augment("photo").resized_crop
        (0.35, 1.0)
    """
    spec = preset_spec(preset, in_channels=in_channels)
    if not spec.augment:
        return None
    if spec.policy is None:
        return BatchAugment(
            padding=padding,
            color_jitter=spec.color_jitter,
            rotation=spec.rotation,
            cutout_size=(cutout_size or image_size // 2) if spec.cutout else None,
            resized_crop=spec.resized_crop,
        )
    return PerSampleAugment(augment_ops(preset, padding=padding, cutout_size=cutout_size))
