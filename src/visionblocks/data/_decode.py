"""One decoder from image file (or PIL image) to uint8 tensor, for training and prediction.

:func:`~visionblocks.data.load_dataset` (in memory and streamed) and
:func:`~visionblocks.inference.predict` both call :func:`decode_image_file`, so a file
gives the same pixels to a model in training and in prediction. The rules:

* orientation: the EXIF orientation tag is applied (the picture a viewer shows);
* colour: palette (with or without transparency), CMYK, YCbCr, RGBA and the other
  colour modes become RGB with Pillow's conversions; ``1``, ``L`` and ``LA`` become
  grayscale. Alpha is dropped, keeping the colour under it;
* 16-bit grayscale (PNG/TIFF ``I;16``, PGM with a maxval above 255) keeps its high
  byte, ``v >> 8``: the exact inverse of the standard 8-to-16-bit expansion
  ``v * 257``, and what Pillow itself does to 16-bit RGB PNGs;
* 32-bit integer (``I``) and float (``F``) images are refused: they have no fixed
  0-255 scale to read them in, and clipping them to 0-255 saturates them silently.

Why Pillow for every format: torchvision 0.29 deprecates ``torchvision.io.decode_image``,
which also read palette PNGs as their indices rather than their colours, and ignored EXIF
orientation. It costs nothing measurable: a 28x28 Fashion-MNIST PNG (the folder
``benchmarks/bench_folder_stream.py`` writes) decodes in about 130 us either way on the
2-core development machine, because the pixels are taken from Pillow with one
``tobytes()`` copy (``numpy.array(image)`` instead adds about 50 us per image).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from PIL import ExifTags, Image

from visionblocks.data._errors import CorruptDatasetError
from visionblocks.data._resize import check_resize_rule, resize_image

__all__ = ["decode_image_file", "image_header"]

_GRAY_MODES = frozenset({"1", "L", "LA", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Orientation tag values that swap width and height (a quarter turn, with or without a flip).
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _channels(image: Image.Image, source: str) -> int:
    """1 or 3: the channels ``image`` decodes to; refuses modes without a 0-255 scale."""
    mode = image.mode
    if mode in _GRAY_MODES or mode in _SIXTEEN_BIT_MODES or _is_16_bit_pgm(image):
        return 1
    if mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "32-bit float"
        raise ValueError(
            f"{source} holds {kind} pixels (Pillow mode {mode!r}), which have no fixed 0-255 "
            f"scale; save it as an 8-bit or 16-bit image (PNG mode 'L', 'RGB' or 'I;16'), "
            f"scaled as you intend."
        )
    return 3


def _is_16_bit_pgm(image: Image.Image) -> bool:
    # Pillow opens a PGM with maxval > 255 as mode "I", rescaled to 0-65535.
    return image.mode == "I" and image.format == "PPM"


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1-8; 1 is upright), read without decoding the pixels."""
    if "exif" not in image.info and image.format != "TIFF":
        return 1  # no EXIF block; PNG's getexif() would decode the whole image to look
    value = image.getexif().get(ExifTags.Base.Orientation, 1)
    return value if isinstance(value, int) and value in range(1, 9) else 1


def image_header(path: str | os.PathLike[str]) -> tuple[tuple[int, int], int]:
    """``((height, width), channels)`` that :func:`decode_image_file` gives, from the header.

    Pillow reads only the first bytes of the file; the size is after EXIF orientation.

    Raises:
        CorruptDatasetError: Pillow cannot read the file; the message names it.
        ValueError: The image is too large for Pillow's decompression-bomb limit, or has
            32-bit pixels (modes ``I``, ``F``).
    """
    with _opened(os.fspath(path), load=False) as image:
        width, height = image.size
        if _orientation(image) in _QUARTER_TURNS:
            width, height = height, width
        return (height, width), _channels(image, str(path))


def decode_image_file(
    image: str | os.PathLike[str] | Image.Image,
    channels: int | None = None,
    size: tuple[int, int] | None = None,
    resize: str = "squash",
) -> torch.Tensor:
    """Decode an image file, or an opened PIL image, to a uint8 ``(C, H, W)`` tensor.

    The module's rules bring it to 1 (grayscale) or 3 (RGB) channels. ``channels``
    then converts: grayscale is repeated to RGB, RGB becomes grayscale with Pillow's
    ITU-R 601 integer weights. ``size`` brings the image to ``(height, width)`` by the
    ``resize`` rule (:func:`~visionblocks.data.resize_image`: ``"squash"`` does not keep
    the aspect ratio, ``"shorter-side+center-crop"`` does and cuts the centre), the one
    resize :func:`~visionblocks.inference.predict` uses too. ``None`` keeps either as it is.

    Raises:
        CorruptDatasetError: The file cannot be decoded; the message names it.
        ValueError: The image is too large for Pillow's decompression-bomb limit, or has
            32-bit pixels (modes ``I``, ``F``); the message names the file. An unknown
            ``resize`` rule.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = tempfile.mkdtemp() + "/red.png"
        >>> palette = Image.new("P", (6, 4), 1)  # every pixel is index 1 ...
        >>> palette.putpalette([0, 0, 0, 255, 0, 0])  # ... which is red
        >>> palette.save(path)
        >>> decode_image_file(path)[:, 0, 0].tolist()  # the colour, not the index
        [255, 0, 0]
        >>> image = decode_image_file(path, channels=1, size=(2, 3))
        >>> image.shape, image.dtype, int(image[0, 0, 0])  # 255 * 0.299
        (torch.Size([1, 2, 3]), torch.uint8, 76)
    """
    check_resize_rule(resize)
    if isinstance(image, Image.Image):
        source = str(getattr(image, "filename", "") or "the PIL image")
        tensor = _to_tensor(image, source)
    else:
        with _opened(os.fspath(image), load=True) as opened:
            tensor = _to_tensor(opened, str(image))
    if channels is not None:
        tensor = _to_channels(tensor, channels)
    if size is not None:
        return resize_image(tensor, size, resize)
    return tensor


@contextmanager
def _opened(path: str, *, load: bool) -> Iterator[Image.Image]:
    """``path`` opened (and with ``load``, decoded) by Pillow; its failures name the file."""
    try:
        image = Image.open(path)
        if load:
            image.load()
    except Image.DecompressionBombError:
        limit = Image.MAX_IMAGE_PIXELS or 0
        raise ValueError(
            f"{path} has more than {2 * limit:,} pixels, which Pillow refuses as a possible "
            f"decompression bomb (twice PIL.Image.MAX_IMAGE_PIXELS); resize the file, or set "
            f"PIL.Image.MAX_IMAGE_PIXELS = None before loading if you trust it."
        ) from None
    except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CorruptDatasetError(
            f"{path} is not an image file Pillow can decode ({reason}); replace or remove it."
        ) from err
    with image:
        yield image


def _to_tensor(image: Image.Image, source: str) -> torch.Tensor:
    """``image`` by the module's rules as a uint8 ``(1 or 3, H, W)`` tensor."""
    channels = _channels(image, source)
    orientation = _orientation(image)  # before converting, which drops the format
    if image.mode in _SIXTEEN_BIT_MODES or _is_16_bit_pgm(image):
        image = Image.fromarray((np.asarray(image).astype(np.uint32) >> 8).astype(np.uint8))
    elif image.mode in ("P", "PA"):
        # Through RGBA: Pillow warns when a palette with transparency goes straight to RGB.
        image = image.convert("RGBA").convert("RGB")
    elif image.mode not in ("L", "RGB"):
        image = image.convert("L" if channels == 1 else "RGB")
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        image = image.transpose(method)
    # A bytearray is a writable copy, which torch.frombuffer needs; Pillow stores pixels
    # interleaved, (H, W, C). RGB stays in that memory, a (C, H, W) view with channels-last
    # strides: resizing it is about 1.5x faster than from planar memory, and a copy to
    # planar memory would cost as much as the copy out of Pillow.
    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
    if channels == 1:
        return pixels.view(1, image.height, image.width)
    return pixels.view(image.height, image.width, channels).permute(2, 0, 1)


def _to_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    count = image.shape[0]
    if count == channels:
        return image
    if count == 1:
        return image.expand(channels, -1, -1).contiguous()
    # Pillow's "L": (299 R + 587 G + 114 B) / 1000 in 16-bit fixed point, rounded.
    weights = torch.tensor([19595, 38470, 7471], dtype=torch.int32).reshape(3, 1, 1)
    gray = (image.to(torch.int32) * weights).sum(0, keepdim=True).add_(0x8000) >> 16
    return gray.to(torch.uint8)
