"""Read an image folder with one subfolder per class (torchvision's ``ImageFolder`` layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from visionblocks.data._errors import CorruptDatasetError, DatasetNotFoundError

__all__ = ["read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


def read_image_folder(
    folder: Path, *, image_size: int | tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read ``folder/<class>/<image>`` files into one uint8 tensor.

    Classes are the sorted subfolder names. Images are read as RGB unless every
    image is grayscale, in which case they stay single-channel.

    Args:
        folder: The root holding one subfolder per class.
        image_size: Resize every image to this ``size`` or ``(height, width)``; needed
            when the images differ in size.

    Returns:
        ``(images (N, C, H, W) uint8, labels (N,) int64, class names)``.
    """
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[tuple[Path, int]] = [
        (f, label)
        for label, name in enumerate(classes)
        for f in sorted((folder / name).rglob("*"))
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise DatasetNotFoundError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) found in class subfolders of {folder}; "
            f"lay it out as {folder}/<class name>/<image file>."
        )
    pil_images: list[Image.Image] = []
    for path, _ in files:
        try:
            with Image.open(path) as opened:
                opened.load()
                pil_images.append(opened.copy())
        except (OSError, UnidentifiedImageError) as err:
            raise CorruptDatasetError(f"cannot read image {path}: {err}") from err
    mode = "L" if all(im.mode in ("L", "1", "I;16", "I") for im in pil_images) else "RGB"
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    arrays = []
    for (path, _), original in zip(files, pil_images, strict=True):
        image = original.convert(mode)
        if size is not None:
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        elif image.size != pil_images[0].size:
            raise ValueError(
                f"images differ in size ({path} is {image.size[0]}x{image.size[1]}, "
                f"{files[0][0]} is {pil_images[0].size[0]}x{pil_images[0].size[1]}); pass "
                f"image_size=... to resize them all."
            )
        array = np.asarray(image, dtype=np.uint8)
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    images = torch.from_numpy(np.stack(arrays))
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return images, labels, classes
