"""The inputs of :func:`~visionblocks.inference.predict`: find, decode and prepare images.

Inputs are expanded into ``(source name, reader)`` pairs first, so that a missing file
fails before anything is decoded; each reader gives a ``(C, H, W)`` tensor in pixel units,
which :func:`prepare_image` brings to the model's number of channels and image size.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TypeAlias

import torch
from PIL import Image

# The same files, decoded and resized to the same pixels, as load_dataset(folder) reads.
from visionblocks.data import IMAGE_SUFFIXES, decode_image_file, resize_image

__all__ = ["IMAGE_SUFFIXES", "ImageInput", "Reader", "expand_inputs", "prepare_image"]

ImageInput: TypeAlias = "str | os.PathLike[str] | Image.Image | torch.Tensor"
"""One input of :func:`~visionblocks.inference.predict`: an image file or a folder of them,
a PIL image, or a uint8 (0-255) / float ([0, 1]) tensor ``(C, H, W)`` or batch ``(B, C, H, W)``."""

Reader: TypeAlias = Callable[[], torch.Tensor]


def expand_inputs(inputs: ImageInput | Sequence[ImageInput]) -> Iterator[tuple[str, Reader]]:
    """``(source name, reader of its (C, H, W) image)`` for every image in ``inputs``.

    Paths are checked here, before any image is decoded, so a missing file fails at once.
    """
    if isinstance(inputs, (str, os.PathLike, Image.Image, torch.Tensor)):
        inputs = [inputs]
    elif not isinstance(inputs, Sequence):
        raise TypeError(
            f"inputs must be an image path, folder, PIL image or tensor, or a list of them; "
            f"got {type(inputs).__name__}."
        )
    single = len(inputs) == 1
    for j, item in enumerate(inputs):
        if isinstance(item, torch.Tensor):
            name = "tensor" if single else f"tensor {j}"
            if item.dim() == 3:
                yield name, partial(_same, item)
            elif item.dim() == 4:
                for i in range(len(item)):
                    yield f"{name}[{i}]", partial(_same, item[i])
            else:
                raise ValueError(
                    f"{name} has shape {tuple(item.shape)}; pass an image (C, H, W) or a batch "
                    f"(B, C, H, W)."
                )
        elif isinstance(item, Image.Image):
            filename = getattr(item, "filename", "")
            yield (str(filename) if filename else f"image {j}"), partial(_from_pil, item)
        elif isinstance(item, (str, os.PathLike)):
            path = Path(item)
            if path.is_dir():
                found = sorted(f for f in path.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
                broken = [f for f in found if f.is_symlink() and not f.exists()]
                if broken:
                    raise FileNotFoundError(
                        f"{broken[0]} is a broken symbolic link (its target "
                        f"{os.readlink(broken[0])} does not exist); point it at the image or "
                        f"delete it."
                    )
                files = [f for f in found if f.is_file()]
                if not files:
                    raise ValueError(
                        f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder {str(path)!r}."
                    )
                for file in files:
                    yield str(file), partial(_read_file, file)
            elif path.is_file():
                yield str(path), partial(_read_file, path)
            else:
                raise FileNotFoundError(f"no image file or folder at {str(path)!r}.")
        else:
            raise TypeError(
                f"input {j} is a {type(item).__name__}; pass image paths, folders, PIL images or "
                f"tensors."
            )


def _same(image: torch.Tensor) -> torch.Tensor:
    return image


def _from_pil(image: Image.Image) -> torch.Tensor:
    """A PIL image as a uint8 ``(C, H, W)`` tensor with 1 (grayscale) or 3 (RGB) channels."""
    return decode_image_file(image)


def _read_file(path: Path) -> torch.Tensor:
    """Decode an image file into a uint8 ``(C, H, W)`` tensor, or fail naming the file.

    The decoder is load_dataset's, so a file gives the model the pixels it was trained on
    (palette colours, EXIF orientation, 16-bit scaling); its errors are ValueErrors.
    """
    return decode_image_file(path)


def prepare_image(
    image: torch.Tensor,
    source: str,
    channels: int | None,
    size: tuple[int, int] | None,
    *,
    resize: str = "squash",
) -> torch.Tensor:
    """One ``(C, H, W)`` image in ``channels`` and ``size`` (``None``: as it is), in pixel units.

    ``resize`` is the model card's rule (:func:`~visionblocks.data.resize_image`), the one
    the folder reader sized the training images with, so a file prepared here is the
    tensor ``load_dataset(..., image_size=size, resize=resize)`` gives for it.

    Example:
        >>> photo = torch.zeros(3, 40, 60, dtype=torch.uint8)  # a 3:2 landscape picture
        >>> prepare_image(photo, "photo", 1, (32, 32), resize="shorter-side+center-crop").shape
        torch.Size([1, 32, 32])
    """
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise ValueError(
            f"{source} is a {image.dtype} tensor; pass uint8 (0-255) or float ([0, 1]) images."
        )
    image = image.detach().cpu()
    if image.is_floating_point() and image.numel():
        low, high = float(image.min()), float(image.max())
        if low < -1e-3 or high > 1 + 1e-3:
            raise ValueError(
                f"{source} holds float values in [{low:.3g}, {high:.3g}], but float images must "
                f"be pixel values in [0, 1] (predict normalizes them itself); pass x / 255 or "
                f"the uint8 image."
            )
    image = _match_channels(image, source, channels)
    if size is not None:
        image = resize_image(image, size, resize)
    return image


def _match_channels(image: torch.Tensor, source: str, channels: int | None) -> torch.Tensor:
    count = image.shape[0]
    if channels is None or count == channels:
        return image
    if count in (2, 4):  # grayscale + alpha, RGB + alpha: the alpha channel is dropped
        image, count = image[: count - 1], count - 1
    if count == channels:
        return image
    if count == 1 and channels == 3:
        return image.expand(3, -1, -1)
    if count == 3 and channels == 1:
        return _rgb_to_gray(image)
    raise ValueError(
        f"{source} has shape {tuple(image.shape)}: {count} channels, but the model takes "
        f"{channels}; tensors are (C, H, W) (an (H, W, C) array needs .permute(2, 0, 1))."
    )


def _rgb_to_gray(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` -> ``(1, H, W)`` with ITU-R 601 weights, bit-exact with Pillow's ``"L"``.

    Pillow (which the folder reader converts with) computes uint8 gray in 16-bit fixed
    point, ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``; the same formula here gives the
    same pixels, so a color file and its grayscale version get the same prediction.
    """
    if image.is_floating_point():
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype).view(3, 1, 1)
        return (image * weights).sum(dim=0, keepdim=True)
    weights = torch.tensor([19595, 38470, 7471], dtype=torch.int32).view(3, 1, 1)
    gray = ((image.to(torch.int32) * weights).sum(dim=0, keepdim=True) + 2**15) >> 16
    return gray.to(torch.uint8)
