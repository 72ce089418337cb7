"""One decoder: a file gives the same uint8 tensor to training (in memory, streamed) and predict.

Every file is written here with Pillow, in the modes whose pixels are not plain 8-bit
L/RGB: palette (with and without transparency), 16-bit grayscale PNG and PGM, RGBA, LA,
CMYK JPEG and TIFF, and an EXIF-rotated JPEG. Each is checked against the colours it
holds (computed here, not by the decoder), then through every path that reads it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from visionblocks.data import ImageDataset, StreamingDataset, decode_image_file, load_dataset
from visionblocks.inference._images import expand_inputs, prepare_image

_RNG = np.random.default_rng(24)
_PALETTE = np.array([[200, 30, 60], [10, 220, 90], [40, 40, 250], [255, 255, 0]], np.uint8)


def _palette(path: Path, *, transparent: bool) -> np.ndarray:
    indices = _RNG.integers(0, len(_PALETTE), (5, 7), dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette(_PALETTE.flatten().tolist())
    if transparent:  # index 1 is see-through: its colour is kept, the alpha dropped
        image.save(path, transparency=1)
    else:
        image.save(path)
    return _PALETTE[indices]


def _gray16(path: Path) -> np.ndarray:
    # Every high byte, with low bytes that round differently under / 257 (0x00ff -> 1, not 0).
    values = (np.arange(35, dtype=np.uint16).reshape(5, 7) * 1927 + 0x00FF).astype(np.uint16)
    Image.fromarray(values).save(path)
    return (values >> 8).astype(np.uint8)[..., None]


def _rgba(path: Path) -> np.ndarray:
    pixels = _RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    Image.fromarray(pixels, "RGBA").save(path)
    return pixels[..., :3]


def _la(path: Path) -> np.ndarray:
    pixels = _RNG.integers(0, 256, (5, 7, 2), dtype=np.uint8)
    Image.fromarray(pixels, "LA").save(path)
    return pixels[..., :1]


def _cmyk_pixels(shape: tuple[int, int]) -> np.ndarray:
    cmyk = np.zeros((*shape, 4), np.uint8)
    cmyk[..., :3] = _RNG.integers(0, 256, (*shape, 3), dtype=np.uint8)
    return cmyk  # K = 0, so the RGB colour is 255 - (C, M, Y)


def _cmyk_tiff(path: Path) -> np.ndarray:
    cmyk = _cmyk_pixels((5, 7))
    Image.fromarray(cmyk, "CMYK").save(path)
    return 255 - cmyk[..., :3]


def _cmyk_jpeg(path: Path) -> np.ndarray:
    # Flat 8x8 blocks (one per JPEG block) so the lossy file keeps its colours to a few levels.
    cmyk = _cmyk_pixels((2, 3)).repeat(8, axis=0).repeat(8, axis=1)
    Image.fromarray(cmyk, "CMYK").save(path, quality=100, subsampling=0)
    return 255 - cmyk[..., :3]


def _exif_rotated_jpeg(path: Path) -> np.ndarray:
    upright = _RNG.integers(0, 256, (3, 2, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    stored = np.rot90(upright, k=1)  # (16, 24, 3): turned a quarter counter-clockwise ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... and tagged "rotate 90 degrees clockwise to display"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=100, subsampling=0, exif=exif)
    return upright  # (24, 16, 3)


def _pgm16(path: Path) -> np.ndarray:
    values = np.arange(35, dtype=np.uint16).reshape(5, 7) * 1900 + 0x00FF
    path.write_bytes(b"P5 7 5 65535\n" + values.astype(">u2").tobytes())
    return (values >> 8).astype(np.uint8)[..., None]


# name -> (file name, writer returning the (H, W, C) pixels the file holds, tolerance)
CASES: dict[str, tuple[str, Callable[[Path], np.ndarray], int]] = {
    "palette": ("p.png", lambda p: _palette(p, transparent=False), 0),
    "palette-transparent": ("pt.png", lambda p: _palette(p, transparent=True), 0),
    "palette-gif": ("p.gif", lambda p: _palette(p, transparent=False), 0),
    "gray-16-bit-png": ("g16.png", _gray16, 0),
    "gray-16-bit-pgm": ("g16.ppm", _pgm16, 0),  # a P5 (gray) file; .ppm is the suffix read
    "rgba": ("rgba.png", _rgba, 0),
    "la": ("la.png", _la, 0),
    "cmyk-tiff": ("cmyk.tiff", _cmyk_tiff, 0),
    "cmyk-jpeg": ("cmyk.jpg", _cmyk_jpeg, 6),  # JPEG is lossy
    "exif-rotated-jpeg": ("rotated.jpg", _exif_rotated_jpeg, 6),
}


def _write_case(folder: Path, case: str) -> tuple[Path, torch.Tensor, int]:
    """The case's file in ``folder`` and its true pixels as a uint8 ``(C, H, W)`` tensor."""
    name, write, tolerance = CASES[case]
    path = folder / name
    expected = write(path)
    return path, torch.from_numpy(np.ascontiguousarray(expected)).permute(2, 0, 1), tolerance


def _predicted(source: Path | Image.Image, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """The pixels ``predict`` feeds a model taking ``channels`` x ``size`` (before normalizing)."""
    ((name, read),) = expand_inputs(source)
    return prepare_image(read(), name, channels, size)


@pytest.mark.parametrize("case", CASES)
def test_a_file_decodes_to_the_colours_it_holds(tmp_path: Path, case: str) -> None:
    # Catches palette indices read as pixels, EXIF orientation ignored, CMYK read as
    # RGB + alpha, and 16-bit values clipped or rounded other than by >> 8.
    path, expected, tolerance = _write_case(tmp_path, case)
    decoded = decode_image_file(path)
    assert decoded.dtype == torch.uint8
    assert decoded.shape == expected.shape
    error = (decoded.to(torch.int16) - expected.to(torch.int16)).abs().max()
    assert int(error) <= tolerance


@pytest.mark.parametrize("image_size", [None, (5, 9)])
@pytest.mark.parametrize("case", CASES)
def test_training_and_predict_see_the_same_pixels(
    tmp_path: Path, case: str, image_size: tuple[int, int] | None
) -> None:
    # Class "a" holds the case's file, class "b" a grayscale image: the folder is RGB
    # exactly when the file has colour.
    path, expected, tolerance = _write_case(tmp_path, case)
    (tmp_path / "a").mkdir()
    path = path.rename(tmp_path / "a" / path.name)
    (tmp_path / "b").mkdir()
    height, width = expected.shape[1:]
    Image.new("L", (width, height), 7).save(tmp_path / "b" / "x.png")

    in_memory = load_dataset(tmp_path, image_size=image_size, in_memory=True)
    streamed = load_dataset(tmp_path, image_size=image_size, in_memory=False)
    assert isinstance(in_memory, ImageDataset)
    assert isinstance(streamed, StreamingDataset)
    channels, size = len(expected), image_size or (height, width)
    trained = in_memory.images[0]
    assert trained.shape == (channels, *size)
    assert torch.equal(streamed[0][0], trained)
    assert torch.equal(_predicted(path, channels, size), trained)
    with Image.open(path) as opened:
        assert torch.equal(_predicted(opened, channels, size), trained)
    # And they are the file's true pixels, resized the same way.
    reference = TF.resize(expected, list(size), InterpolationMode.BILINEAR, antialias=True)
    assert int((trained.to(torch.int16) - reference.to(torch.int16)).abs().max()) <= tolerance


def test_a_grayscale_model_sees_the_folder_readers_gray(tmp_path: Path) -> None:
    # A colour file given to a 1-channel model: predict's RGB -> gray is the folder's.
    path, _, _ = _write_case(tmp_path, "palette")
    from_decoder = decode_image_file(path, channels=1, size=(4, 6))
    assert torch.equal(_predicted(path, 1, (4, 6)), from_decoder)
    # The reference: Pillow's own "L" of the palette colours.
    with Image.open(path) as opened:
        gray = torch.from_numpy(np.array(opened.convert("RGB").convert("L")))[None]
    assert torch.equal(decode_image_file(path, channels=1), gray)
