"""The resize rules: one function, the same tensor on every path, torchvision as the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from visionblocks.data import (
    RESIZE_RULES,
    ImageDataset,
    StreamingDataset,
    decode_image_file,
    load_dataset,
    resize_image,
)
from visionblocks.inference._images import prepare_image


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A random RGB picture (H, W, 3): every pixel different, so any offset shows."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("rule", RESIZE_RULES)
def test_a_file_gives_the_same_tensor_in_memory_streamed_and_predicted(
    tmp_path: Path, rule: str
) -> None:
    # Fails if any path sizes images its own way (a second resize, another rule or order).
    shapes = [(30, 50), (50, 30), (24, 24), (17, 40)]  # landscape, portrait, square, odd
    for i, (h, w) in enumerate(shapes):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(_photo(h, w, i)).save(tmp_path / f"c{i % 2}" / f"{i}.png")
    memory = load_dataset(tmp_path, image_size=(16, 20), resize=rule, in_memory=True)
    stream = load_dataset(tmp_path, image_size=(16, 20), resize=rule, in_memory=False)
    assert isinstance(memory, ImageDataset)
    assert isinstance(stream, StreamingDataset)
    assert stream.resize == rule
    for i, path in enumerate(stream.files):
        predicted = prepare_image(decode_image_file(path), str(path), 3, (16, 20), resize=rule)
        assert torch.equal(memory.images[i], stream[i][0])
        assert torch.equal(memory.images[i], predicted)
        assert predicted.shape == (3, 16, 20)


@pytest.mark.parametrize(("height", "width"), [(30, 50), (50, 30), (33, 47), (24, 24), (8, 100)])
@pytest.mark.parametrize("side", [16, 23])
def test_shorter_side_crop_is_torchvisions_resize_then_center_crop(
    height: int, width: int, side: int
) -> None:
    # The reference: Resize(N) + CenterCrop(N). Fails on an off-by-one in the scaled side
    # (rounding instead of torchvision's truncation) or in the crop offset.
    image = torch.from_numpy(_photo(height, width)).permute(2, 0, 1).contiguous()
    reference = v2.Compose([v2.Resize(side, antialias=True), v2.CenterCrop(side)])(image)
    assert torch.equal(resize_image(image, (side, side), "shorter-side+center-crop"), reference)


def test_squash_keeps_the_whole_picture_and_the_crop_keeps_its_proportions() -> None:
    # A 20x40 picture: black left quarter, white middle half, black right quarter.
    image = torch.zeros(1, 20, 40, dtype=torch.uint8)
    image[..., 10:30] = 255
    squashed = resize_image(image, (10, 10), "squash")
    cropped = resize_image(image, (10, 10), "shorter-side+center-crop")
    assert squashed[0, :, 0].max() < 60  # the black side is still there, squeezed
    # The centre square is white (its edge columns get a little of the black beside them
    # through the antialiasing filter).
    assert cropped[..., 1:-1].min() == 255
    assert cropped.min() > 200
    # A non-square target from a square image: the picture scales to 30x30 and loses rows.
    rows = torch.arange(30, dtype=torch.uint8).view(1, 30, 1).expand(1, 30, 30).contiguous()
    wide = resize_image(rows, (10, 30), "shorter-side+center-crop")
    assert wide[0, :, 0].tolist() == list(range(10, 20))


def test_an_image_of_the_size_is_untouched_by_every_rule() -> None:
    image = torch.from_numpy(_photo(12, 9)).permute(2, 0, 1)
    for rule in RESIZE_RULES:
        assert resize_image(image, (12, 9), rule) is image


def test_bad_rules_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"resize must be one of 'squash', 'shorter-side"):
        resize_image(torch.zeros(1, 4, 4), (2, 2), "crop")
    with pytest.raises(ValueError, match=r"resize must be one of"):
        load_dataset("sample", resize="center")
    with pytest.raises(ValueError, match=r"resize='shorter-side\+center-crop' .* pass image_size"):
        load_dataset(tmp_path, resize="shorter-side+center-crop")
