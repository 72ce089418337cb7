"""The "photo" preset: a batched random resized crop, replayable, checked against torchvision."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from visionblocks.data import (
    BatchAugment,
    DeviceLoader,
    LoaderOptions,
    StreamLoader,
    augmentation,
    batch_augment,
    batch_resized_crop,
    load_dataset,
)
from visionblocks.data._augment_photo import PHOTO_RATIO, PHOTO_SCALE, _crop_box, _crop_boxes


def _photos(n: int, channels: int, dtype: torch.dtype, size: tuple[int, int] = (24, 32)):
    images = torch.randint(0, 256, (n, channels, *size), generator=torch.Generator().manual_seed(1))
    return images.to(torch.uint8) if dtype == torch.uint8 else images.float() / 255


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float"])
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_and_range_are_kept(channels: int, dtype: torch.dtype) -> None:
    # Fails if the crop returns the box size, float 0-255 for uint8, or values out of range.
    images = _photos(6, channels, dtype)
    out = batch_resized_crop(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    assert out.dtype == dtype
    assert 0 <= float(out.min()) <= float(out.max()) <= (255 if dtype == torch.uint8 else 1)


def test_a_seed_replays_and_another_seed_does_not() -> None:
    images = _photos(8, 3, torch.uint8)
    a, b, c = (batch_resized_crop(images, torch.Generator().manual_seed(s)) for s in (5, 5, 6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_the_loader_replays_an_epoch_exactly_and_varies_between_epochs() -> None:
    # Fails if the preset draws from the global random state instead of the loader's generator.
    data = load_dataset("sample", "test")
    loader = DeviceLoader(data, batch_size=64, augment="photo", shuffle=False, seed=3)
    first = next(iter(loader))[0]
    torch.manual_seed(999)  # the global state must not matter
    loader.set_epoch(0)
    again = next(iter(loader))[0]
    loader.set_epoch(1)
    other = next(iter(loader))[0]
    assert first.shape == (64, 1, 28, 28)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def _one_by_one(count: int, height: int, width: int) -> torch.Tensor:
    """``count`` boxes of the streaming path's per-image rule, one seed each."""
    boxes = [
        _crop_box(height, width, PHOTO_SCALE, PHOTO_RATIO, random.Random(s)) for s in range(count)
    ]
    return torch.tensor(boxes, dtype=torch.float32)


@pytest.mark.parametrize("draw", ["batched", "per-image"])
def test_crops_vary_in_place_size_and_shape_within_the_preset_ranges(draw: str) -> None:
    # Fails if every image gets one box, or if scale is applied to the side instead of the area.
    height, width = 224, 224
    if draw == "batched":
        boxes = _crop_boxes(2000, height, width, PHOTO_SCALE, PHOTO_RATIO, torch.Generator())
    else:
        boxes = _one_by_one(2000, height, width)
    top, left, box_h, box_w = boxes.unbind(1)
    share = box_h * box_w / (height * width)
    aspect = box_w / box_h
    assert bool((top >= 0).all() and (left >= 0).all())
    assert bool((top + box_h <= height).all() and (left + box_w <= width).all())
    assert float(share.min()) >= 0.35 - 0.01
    assert float(share.max()) <= 1.0
    assert float(aspect.min()) >= 3 / 4 - 0.01
    assert float(aspect.max()) <= 4 / 3 + 0.01
    # Boxes that do not fit (a wide box at 95% of the area) are redrawn, so the mean share is
    # a little under the uniform (0.35 + 1) / 2.
    assert 0.58 < float(share.mean()) < 0.68
    assert len({tuple(b) for b in boxes.tolist()}) > 1500
    # The same picture eight times comes out as eight different crops.
    same = _photos(1, 3, torch.uint8).expand(8, -1, -1, -1).contiguous()
    out = batch_resized_crop(same, torch.Generator().manual_seed(0))
    assert len({bytes(o.flatten().tolist()) for o in out}) == 8


def test_each_image_is_its_box_resized_as_torchvision_resizes_it() -> None:
    # The reference: torchvision's resized_crop of the drawn box (bilinear; the box is never
    # larger than the image, so no antialiasing). Fails on a half-pixel or box offset error.
    # The outermost output pixels differ by design: torchvision cuts the box out first and
    # repeats its edge, the batched crop samples the real pixels just outside the box.
    images = _photos(5, 3, torch.float32, size=(20, 30))
    boxes = _crop_boxes(5, 20, 30, PHOTO_SCALE, PHOTO_RATIO, torch.Generator().manual_seed(4))
    out = batch_resized_crop(images, torch.Generator().manual_seed(4))
    for image, box, result in zip(images, boxes.int().tolist(), out, strict=True):
        top, left, h, w = box
        reference = TF.resized_crop(
            image, top, left, h, w, [20, 30], InterpolationMode.BILINEAR, antialias=False
        )
        inner = (..., slice(1, -1), slice(1, -1))
        torch.testing.assert_close(result[inner], reference[inner], atol=1e-5, rtol=0)


def test_the_whole_image_box_is_the_identity() -> None:
    images = _photos(3, 3, torch.uint8)
    whole = batch_resized_crop(images, torch.Generator(), scale=(1.0, 1.0), ratio=(4 / 3, 4 / 3))
    assert torch.equal(whole, images)  # 24x32 is 4:3 wide: the box is the image


def test_the_photo_preset_in_both_paths() -> None:
    aug = batch_augment("photo")
    assert isinstance(aug, BatchAugment)
    assert aug.resized_crop == PHOTO_SCALE
    per_image = augmentation("photo")
    out = per_image(_photos(1, 3, torch.uint8)[0])
    assert out.shape == (3, 24, 32)
    with pytest.raises(ValueError, match=r"scale must be \(low, high\)"):
        batch_resized_crop(_photos(1, 1, torch.uint8), torch.Generator(), scale=(0.0, 1.0))


def _checkerboard_folder(root: Path, count: int = 4, side: int = 448) -> Path:
    """``count`` RGB PNGs of a one-pixel black-and-white checkerboard, in two class folders."""
    board = ((torch.arange(side)[:, None] + torch.arange(side)[None, :]) % 2 * 255).to(torch.uint8)
    for i in range(count):
        (root / f"boards{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(board.numpy(), "L").convert("RGB").save(
            root / f"boards{i % 2}" / f"{i}.png"
        )
    return root


def test_a_streamed_photo_crop_is_cut_from_the_files_own_pixels(tmp_path: Path) -> None:
    # A 448-pixel one-pixel checkerboard sized to 224 first (the old path, and the in-memory
    # one) averages to flat gray; a box of a quarter of the file's area cut from the decoded
    # file and resized by at most ~15% keeps most of the pattern's contrast.
    folder = _checkerboard_folder(tmp_path)
    stream = load_dataset(folder, image_size=224, in_memory=False)
    memory = load_dataset(folder, image_size=224, in_memory=True)
    crop = BatchAugment(resized_crop=(0.25, 0.25), flip=False)
    options = LoaderOptions(batch_size=4, augment=crop, mean=(0.0,) * 3, std=(1.0,) * 3)
    streamed, _ = next(iter(StreamLoader(stream, options, num_workers=0)))
    in_memory, _ = next(iter(DeviceLoader(memory, options)))
    assert in_memory.std() * 255 < 5  # sized first: nothing left to crop but gray
    assert streamed.std() * 255 > 20  # about 36: resampled, not averaged away


def test_streamed_photo_crops_replay_per_epoch_and_differ_between_epochs(tmp_path: Path) -> None:
    folder = _checkerboard_folder(tmp_path, side=97)
    stream = load_dataset(folder, image_size=32, in_memory=False)
    options = LoaderOptions(batch_size=4, augment="photo", seed=5, shuffle=False)
    loader = StreamLoader(stream, options, num_workers=0)
    first = [x for x, _ in loader]
    second = [x for x, _ in loader]
    again = [x for x, _ in StreamLoader(stream, options, num_workers=2)]  # workers: same crops
    assert torch.equal(first[0], again[0])
    assert not torch.equal(first[0], second[0])


def test_streamed_photo_crops_flip_about_half_the_images_when_the_preset_flips(
    tmp_path: Path,
) -> None:
    ramp = torch.linspace(0, 255, 40).round().to(torch.uint8).expand(40, 40)  # dark to bright
    for i in range(32):
        (tmp_path / f"c{i % 2}").mkdir(exist_ok=True)
        Image.fromarray(ramp.numpy(), "L").save(tmp_path / f"c{i % 2}" / f"{i}.png")
    stream = load_dataset(tmp_path, image_size=40, in_memory=False)
    flipped = {}
    for flip in (False, True):
        whole = BatchAugment(resized_crop=(1.0, 1.0), flip=flip)  # the box is the whole image
        options = LoaderOptions(batch_size=32, augment=whole, mean=(0.0,), std=(1.0,), seed=1)
        x, _ = next(iter(StreamLoader(stream, options, num_workers=0)))
        flipped[flip] = int(
            (x[..., :20].mean(dim=(1, 2, 3)) > x[..., 20:].mean(dim=(1, 2, 3))).sum()
        )
    assert flipped[False] == 0
    assert 8 <= flipped[True] <= 24  # Binomial(32, 0.5): outside this with p < 0.01
