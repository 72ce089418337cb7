"""Random resized crop back to the image's own size: the training crop of the photo preset.

Inception-style cropping (Szegedy et al. 2015, https://arxiv.org/abs/1409.4842; torchvision's
``RandomResizedCrop``): a box of a random share of the image's area (``scale``) and a random
aspect ratio (``ratio``, drawn uniformly in log space) at a random place, resized to the
image size. The pad-crop of the other presets only shifts a 28- or 32-pixel image by a few
pixels; photos vary in framing and scale, which this crop imitates.

:func:`batch_resized_crop` does it to a whole ``(B, C, H, W)`` batch on its device in one
``grid_sample``: each image's box is an affine map, and every random number comes from the
CPU generator it is given (a fixed count per batch), so a seed replays a batch exactly on
CPU and CUDA. The box is never larger than the image, so the resize only ever enlarges and
bilinear sampling needs no antialiasing.
"""

from __future__ import annotations

import math
import random

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.transforms import v2

__all__ = [
    "PHOTO_RATIO",
    "PHOTO_SCALE",
    "RandomResizedCropKeepSize",
    "batch_resized_crop",
    "resized_crop_image",
]

PHOTO_SCALE = (0.35, 1.0)
"""Share of the image's area a crop of the ``"photo"`` preset covers (torchvision's default is
(0.08, 1), tuned for ImageNet's 90-epoch schedules; 0.35 keeps most of the object in short
fine-tuning runs)."""
PHOTO_RATIO = (3 / 4, 4 / 3)
"""Aspect ratios (width / height) of a crop, as in torchvision's ``RandomResizedCrop``."""

# Boxes tried per image before the central fallback, as in torchvision.
_ATTEMPTS = 10


def _crop_boxes(
    count: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """``(count, 4)`` boxes ``(top, left, height, width)`` by torchvision's rule, batched.

    Ten candidate boxes per image; the first that fits is taken, else a central box of the
    ratio closest to the image's. Every draw is made for every image whatever the outcome,
    so the generator advances by the same amount each batch.
    """
    shares = torch.empty(count, _ATTEMPTS).uniform_(scale[0], scale[1], generator=generator)
    log_ratios = torch.empty(count, _ATTEMPTS).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    where = torch.rand(2, count, generator=generator)
    area = height * width
    aspect = log_ratios.exp()
    box_w = (area * shares * aspect).sqrt().round()
    box_h = (area * shares / aspect).sqrt().round()
    fits = (box_w >= 1) & (box_w <= width) & (box_h >= 1) & (box_h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # index of the first True
    box_w, box_h = box_w.gather(1, first).squeeze(1), box_h.gather(1, first).squeeze(1)
    fallback = _fallback_box(height, width, ratio)
    found = fits.any(dim=1)
    box_h = torch.where(found, box_h, float(fallback[0]))
    box_w = torch.where(found, box_w, float(fallback[1]))
    top = torch.where(found, (where[0] * (height - box_h + 1)).floor(), (height - box_h) // 2)
    left = torch.where(found, (where[1] * (width - box_w + 1)).floor(), (width - box_w) // 2)
    return torch.stack([top, left, box_h, box_w], dim=1)


def resized_crop_image(
    image: torch.Tensor,
    size: tuple[int, int],
    seed: int,
    *,
    scale: tuple[float, float] = PHOTO_SCALE,
    ratio: tuple[float, float] = PHOTO_RATIO,
    flip: bool = False,
) -> torch.Tensor:
    """A random resized crop of one decoded image of any size, straight to ``size``.

    The crop of :func:`batch_resized_crop` (torchvision's box rule) taken from the image as
    decoded rather than from a copy already resized to ``size``, so a small box keeps the
    file's resolution, and in one antialiased bilinear resize (the
    resampling of :func:`~visionblocks.data.resize_image`). The streaming loader runs it
    in its decoding workers; ``seed`` (drawn by the loader from the epoch's generator)
    makes it replayable.

    Args:
        image: A ``(C, h, w)`` uint8 (or float) image.
        size: ``(H, W)`` of the result.
        seed: Seeds the box's random draws.
        scale: ``(low, high)`` share of the image's area the box covers.
        ratio: ``(low, high)`` aspect ratio (width / height) of the box.
        flip: Also flip the result left-right with probability 0.5 (drawn after the box).

    Example:
        >>> image = torch.arange(120, dtype=torch.uint8).reshape(1, 10, 12)
        >>> out = resized_crop_image(image, (8, 8), seed=3)
        >>> out.shape, out.dtype, torch.equal(out, resized_crop_image(image, (8, 8), seed=3))
        (torch.Size([1, 8, 8]), torch.uint8, True)
    """
    rng = random.Random(seed)
    top, left, box_h, box_w = _crop_box(image.shape[-2], image.shape[-1], scale, ratio, rng)
    box = image[..., top : top + box_h, left : left + box_w]
    # interpolate, not torchvision's resize: the same kernel without its per-call checks.
    resized = F.interpolate(
        box.unsqueeze(0), size=size, mode="bilinear", antialias=True, align_corners=False
    )[0]
    if flip and rng.random() < 0.5:
        return resized.flip(-1)
    return resized


def _crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: random.Random,
) -> tuple[int, int, int, int]:
    """One box ``(top, left, height, width)`` by :func:`_crop_boxes`' rule, in plain Python.

    For one image the tensor version's dozens of tiny operations cost about 0.25 ms, as
    much as decoding the file; this costs a few microseconds.
    """
    area = height * width
    low, high = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(_ATTEMPTS):
        share = rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(low, high))
        box_w = round(math.sqrt(area * share * aspect))
        box_h = round(math.sqrt(area * share / aspect))
        if 1 <= box_w <= width and 1 <= box_h <= height:
            return rng.randint(0, height - box_h), rng.randint(0, width - box_w), box_h, box_w
    box_h, box_w = _fallback_box(height, width, ratio)
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def _fallback_box(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """``(height, width)`` of the box when no draw fits, as torchvision's rule has it.

    The whole image, cut down to the nearest allowed aspect ratio; the callers centre it.
    """
    if width / height < min(ratio):
        return round(width / min(ratio)), width
    if width / height > max(ratio):
        return height, round(height * max(ratio))
    return height, width


def batch_resized_crop(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = PHOTO_SCALE,
    ratio: tuple[float, float] = PHOTO_RATIO,
) -> torch.Tensor:
    """Crop a random box of each image of a ``(B, C, H, W)`` batch and resize it to ``(H, W)``.

    Boxes follow torchvision's ``RandomResizedCrop(scale, ratio)``; resampling is bilinear.

    Returns:
        Images of the input's shape, dtype and value range (uint8 results are rounded).

    Example:
        >>> x = torch.arange(64, dtype=torch.uint8).reshape(1, 1, 8, 8).repeat(4, 3, 1, 1)
        >>> out = batch_resized_crop(x, torch.Generator().manual_seed(0))
        >>> out.shape, out.dtype, torch.equal(out, x)
        (torch.Size([4, 3, 8, 8]), torch.uint8, False)
        >>> torch.equal(batch_resized_crop(x, torch.Generator(), scale=(1.0, 1.0),
        ...                                ratio=(1.0, 1.0)), x)  # the whole image: unchanged
        True
    """
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1; got {scale}.")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must be (low, high) with 0 < low <= high; got {ratio}.")
    b, _, h, w = images.shape
    top, left, box_h, box_w = _crop_boxes(b, h, w, scale, ratio, generator).unbind(1)
    # affine_grid maps output coordinates in [-1, 1] to input ones (align_corners=False:
    # -1 and 1 are the outer edges of the border pixels), so the box is a scale and a shift.
    zeros = torch.zeros(b)
    theta = torch.stack(
        [
            torch.stack([box_w / w, zeros, (2 * left + box_w) / w - 1], 1),
            torch.stack([zeros, box_h / h, (2 * top + box_h) / h - 1], 1),
        ],
        1,
    ).to(images.device)  # (B, 2, 3)
    x = images if images.is_floating_point() else images.to(torch.float32)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if images.is_floating_point():
        return out
    return out.round_().clamp_(0, 255).to(images.dtype)


class RandomResizedCropKeepSize(nn.Module):
    """``RandomResizedCrop`` back to the input's own size, for per-image pipelines.

    The per-image counterpart of :func:`batch_resized_crop`, for
    :func:`~visionblocks.data.augmentation`: like :class:`~visionblocks.data.RandomPadCrop`
    it needs no image size in advance.

    Example:
        >>> RandomResizedCropKeepSize()(torch.zeros(3, 10, 14, dtype=torch.uint8)).shape
        torch.Size([3, 10, 14])
    """

    def __init__(
        self, scale: tuple[float, float] = PHOTO_SCALE, ratio: tuple[float, float] = PHOTO_RATIO
    ) -> None:
        super().__init__()
        self.scale = scale
        self.ratio = ratio

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Crop and resize a ``(..., C, H, W)`` image tensor."""
        size = list(image.shape[-2:])
        crop = v2.RandomResizedCrop(size, scale=self.scale, ratio=self.ratio, antialias=True)
        out: torch.Tensor = crop(image)
        return out
