"""The "photo" preset: a batched random resized crop, replayable, checked against torchvision."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from visionblocks.data import (
    BatchAugment,
    DeviceLoader,
    augmentation,
    batch_augment,
    batch_resized_crop,
    load_dataset,
)
from visionblocks.data._augment_photo import PHOTO_RATIO, PHOTO_SCALE, _crop_boxes


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


def test_crops_vary_in_place_size_and_shape_within_the_preset_ranges() -> None:
    # Fails if every image gets one box, or if scale is applied to the side instead of the area.
    height, width = 224, 224
    boxes = _crop_boxes(2000, height, width, PHOTO_SCALE, PHOTO_RATIO, torch.Generator())
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
