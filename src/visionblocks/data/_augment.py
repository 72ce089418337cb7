"""Per-sample augmentation presets built on ``torchvision.transforms.v2``.

These are the transforms for the classic ``Dataset`` + ``DataLoader`` way (one
image at a time, in worker processes). :class:`visionblocks.data.DeviceLoader`
runs the same presets a whole batch at a time on the training device instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch
from torch import nn
from torchvision.transforms import v2

from visionblocks.data._augment_photo import PHOTO_SCALE, RandomResizedCropKeepSize

__all__ = [
    "AUGMENT_PRESETS",
    "PRESET_SPECS",
    "Cutout",
    "PresetSpec",
    "RandomPadCrop",
    "augment_ops",
    "augmentation",
    "preset_spec",
]


@dataclass(frozen=True)
class PresetSpec:
    """The operations of one augmentation preset, read by the per-image and the batched path.

    Every preset but ``"none"`` starts with a random crop (a pad-crop, or a resized crop
    with ``resized_crop``) and a horizontal flip; the other operations follow in the
    order of the fields.

    Attributes:
        augment: ``False`` for the preset that does nothing at all.
        resized_crop: ``(low, high)`` share of the image area a random resized crop keeps
            (scaled back to the image size), instead of the pad-crop; ``None`` for the
            pad-crop.
        color_jitter: Brightness, contrast and saturation strength, as in
            ``ColorJitter(s, s, s)``; 0 for none.
        rotation: Maximum rotation in degrees, as in ``RandomRotation(rotation)``; 0 for none.
        cutout: Zero a random square (side: ``cutout_size``, default half the image side).
        policy: Builds a torchvision policy (AutoAugment, ...) that has no batched
            version, so the batched path runs the preset image by image.
    """

    augment: bool = True
    resized_crop: tuple[float, float] | None = None
    color_jitter: float = 0.0
    rotation: float = 0.0
    cutout: bool = False
    policy: Callable[[], nn.Module] | None = None

    @property
    def uses_color(self) -> bool:
        """Whether an operation is defined for grayscale (1) and RGB (3) images only."""
        return self.color_jitter > 0 or self.policy is not None


def _autoaugment_cifar10() -> nn.Module:
    policy: nn.Module = v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)
    return policy


PRESET_SPECS: Mapping[str, PresetSpec] = MappingProxyType(
    {
        "none": PresetSpec(augment=False),
        "standard": PresetSpec(),
        "lab": PresetSpec(color_jitter=0.2, rotation=15.0),  # the lab's Exercise 4 recipe
        "cutout": PresetSpec(cutout=True),  # DeVries & Taylor 2017 (16x16 on CIFAR-10)
        # Cubuk et al. 2019 (https://arxiv.org/abs/1805.09501), the policy searched on CIFAR-10.
        "autoaugment": PresetSpec(policy=_autoaugment_cifar10),
        "randaugment": PresetSpec(policy=v2.RandAugment),  # Cubuk et al. 2020, 2 ops at 9
        "trivialaugment": PresetSpec(policy=v2.TrivialAugmentWide),  # Müller & Hutter 2021
        # Photos (any size, e.g. 224 px): Inception-style random resized crop + flip.
        "photo": PresetSpec(resized_crop=PHOTO_SCALE),
    }
)
"""Every augmentation preset, by name: the one table both augmentation paths read."""

AUGMENT_PRESETS = tuple(PRESET_SPECS)
"""The names :func:`augmentation` and :class:`~visionblocks.data.DeviceLoader` accept."""


def preset_spec(preset: str, *, in_channels: int | None = None) -> PresetSpec:
    """The :class:`PresetSpec` of ``preset``, checked against ``in_channels`` if given.

    Example:
        >>> preset_spec("lab").rotation
        15.0
    """
    if preset not in PRESET_SPECS:
        raise ValueError(
            f"unknown augmentation preset {preset!r}; choose one of {AUGMENT_PRESETS}."
        )
    spec = PRESET_SPECS[preset]
    if in_channels is not None and spec.uses_color and in_channels not in (1, 3):
        raise ValueError(
            f"preset {preset!r} uses colour operations defined for 1- or 3-channel images; "
            f"got {in_channels} channels. Use 'standard' or 'cutout' instead."
        )
    return spec


class RandomPadCrop(nn.Module):
    """Zero-pad by ``padding`` on every side, then crop back to the input size at random.

    The same distribution as ``v2.RandomCrop(size, padding=padding)`` (offsets uniform
    in ``[0, 2 * padding]``), without having to know the image size in advance.

    Example:
        >>> x = torch.ones(1, 4, 4, dtype=torch.uint8)
        >>> RandomPadCrop(2)(x).shape
        torch.Size([1, 4, 4])
    """

    def __init__(self, padding: int = 4) -> None:
        super().__init__()
        if padding < 0:
            raise ValueError(f"padding must be >= 0; got {padding}.")
        self.padding = padding

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Crop a ``(..., C, H, W)`` image tensor."""
        p = self.padding
        if p == 0:
            return image
        h, w = image.shape[-2:]
        padded = nn.functional.pad(image, (p, p, p, p))
        top, left = torch.randint(0, 2 * p + 1, (2,)).tolist()
        return padded[..., top : top + h, left : left + w]


class Cutout(nn.Module):
    """Zero a ``size`` x ``size`` square centred anywhere in the image (clipped at the border).

    DeVries & Taylor 2017, https://arxiv.org/abs/1708.04552 (16x16 on CIFAR-10).

    Args:
        size: Side of the square in pixels; ``None``: half the image's shorter side.

    Example:
        >>> Cutout(2)(torch.ones(1, 4, 4)).sum().item() < 16
        True
    """

    def __init__(self, size: int | None = None) -> None:
        super().__init__()
        if size is not None and size < 1:
            raise ValueError(f"cutout size must be >= 1 pixel or None; got {size}.")
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Apply to a ``(..., C, H, W)`` image tensor (a copy; the input is not changed)."""
        h, w = image.shape[-2:]
        size = self.size if self.size is not None else min(h, w) // 2
        cy, cx = int(torch.randint(0, h, ())), int(torch.randint(0, w, ()))
        top, left = cy - size // 2, cx - size // 2
        image = image.clone()
        # Slices clip at the far border; clamp the near one so it does not wrap around.
        image[..., max(top, 0) : top + size, max(left, 0) : left + size] = 0
        return image


def augment_ops(
    preset: str,
    *,
    padding: int = 4,
    cutout_size: int | None = None,
    in_channels: int | None = None,
) -> list[nn.Module]:
    """The random operations of a training preset, on uint8 ``(C, H, W)`` tensors.

    Args:
        preset: One of :data:`AUGMENT_PRESETS`.
        padding: Zero padding of the random crop, in pixels.
        cutout_size: Side of the cutout square; default half the image side (16 for CIFAR).
        in_channels: If known, checked against what the preset supports.
    """
    spec = preset_spec(preset, in_channels=in_channels)
    if not spec.augment:
        return []
    crop = (
        RandomPadCrop(padding)
        if spec.resized_crop is None
        else RandomResizedCropKeepSize(scale=spec.resized_crop)
    )
    ops: list[nn.Module] = [crop, v2.RandomHorizontalFlip()]
    if spec.color_jitter:
        s = spec.color_jitter
        ops.append(v2.ColorJitter(brightness=s, contrast=s, saturation=s))
    if spec.rotation:
        ops.append(v2.RandomRotation(spec.rotation))
    if spec.cutout:
        ops.append(Cutout(cutout_size))
    if spec.policy is not None:
        ops.append(spec.policy())
    return ops


def augmentation(
    preset: str = "standard",
    *,
    train: bool = True,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    padding: int = 4,
    cutout_size: int | None = None,
    in_channels: int | None = None,
) -> v2.Compose:
    """A per-sample transform: preset augmentations (train only), then float conversion.

    The result maps a PIL image or a uint8 ``(C, H, W)`` tensor to a float32 tensor in
    [0, 1], normalized with ``(x - mean) / std`` when ``mean`` and ``std`` are given.
    ``train=False`` returns a transform that never augments, whatever the preset, and
    every call returns a new object, so train and eval transforms are never shared.

    Args:
        preset: ``"none"``, ``"standard"`` (pad-4 random crop + horizontal flip),
            ``"lab"`` (standard + ``ColorJitter(0.2, 0.2, 0.2)`` + ``RandomRotation(15)``),
            ``"cutout"`` (standard + cutout), ``"autoaugment"`` (standard + the CIFAR-10
            AutoAugment policy), ``"randaugment"``, ``"trivialaugment"``, ``"photo"``
            (random resized crop of 35-100% of the area, aspect 3:4 to 4:3, back to the
            image size, + horizontal flip; for photos at 224 px and the like).
        train: Augment (training) or not (evaluation).
        mean: Per-channel mean in [0, 1] units, e.g. ``dataset.mean``.
        std: Per-channel standard deviation in [0, 1] units.
        padding: Zero padding of the random crop.
        cutout_size: Side of the cutout square (default: half the image side).
        in_channels: Number of image channels, if known, to reject unsupported presets early.

    Example:
        >>> train_tf = augmentation("standard", mean=(0.5,), std=(0.5,))
        >>> x = torch.full((1, 28, 28), 255, dtype=torch.uint8)
        >>> y = train_tf(x)
        >>> y.dtype, y.shape, y.max().item()
        (torch.float32, torch.Size([1, 28, 28]), 1.0)
        >>> bool((augmentation("lab", train=False)(x) == 1.0).all())  # eval never augments
        True
    """
    ops = augment_ops(
        preset,
        padding=padding,
        cutout_size=cutout_size,
        in_channels=in_channels,
    )
    steps: list[nn.Module] = [
        v2.ToImage(),
        *(ops if train else []),
        v2.ToDtype(torch.float32, scale=True),
    ]
    if (mean is None) != (std is None):
        raise ValueError("pass both mean and std (e.g. dataset.mean, dataset.std) or neither.")
    if mean is not None and std is not None:
        steps.append(v2.Normalize(list(mean), list(std)))
    steps.append(v2.ToPureTensor())  # a plain tensor, not a tv_tensors.Image
    return v2.Compose(steps)
