"""DeviceLoader: coverage, order, exact replay per epoch, DDP shards, normalization, devices."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from visionblocks.data import DeviceLoader, ImageDataset, load_dataset


def _pair(n: int = 50, channels: int = 1, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    # Image i is filled with the value i + 1 (< 256) so batches reveal which images they hold.
    images = (torch.arange(n) + 1).to(torch.uint8).reshape(n, 1, 1, 1)
    return images.expand(n, channels, size, size).contiguous(), torch.arange(n) % 7


def _raw(loader: DeviceLoader, x: torch.Tensor) -> torch.Tensor:
    """Undo the loader's normalization: back to 0-255 pixel values."""
    mean = torch.tensor(loader.mean, device=x.device)[:, None, None]
    std = torch.tensor(loader.std, device=x.device)[:, None, None]
    return ((x * std + mean) * 255).round()


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize(("batch_size", "drop_last"), [(16, False), (16, True), (50, False)])
def test_each_image_once_per_epoch(shuffle: bool, batch_size: int, drop_last: bool) -> None:
    images, labels = _pair()
    loader = DeviceLoader(
        (images, labels), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last
    )
    batches = list(loader)
    assert len(batches) == len(loader) == (3 if drop_last else -(-50 // batch_size))
    seen = torch.cat([y for _, y in batches])
    ids = torch.cat([_raw(loader, x)[:, 0, 0, 0] for x, _ in batches]).long() - 1
    assert torch.equal(labels[ids], seen)  # images and labels stay paired
    if drop_last:
        assert len(ids) == 48
        assert len(set(ids.tolist())) == 48
    else:
        assert sorted(ids.tolist()) == list(range(50))
    if not shuffle:
        assert ids.tolist() == sorted(ids.tolist())


def test_batches_are_float32_and_normalized() -> None:
    ds = load_dataset("sample", "test")
    loader = DeviceLoader(ds, batch_size=100, shuffle=False)
    x, y = next(iter(loader))
    assert x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert (loader.mean, loader.std) == (ds.mean, ds.std)
    expected = (ds.images[:100].float() / 255 - ds.mean[0]) / ds.std[0]
    torch.testing.assert_close(x, expected)
    assert torch.equal(y, ds.labels[:100])
    whole = torch.cat([x for x, _ in loader])
    assert float(whole.mean()) == pytest.approx(0.0, abs=1e-4)  # its own stats: mean 0, std 1
    assert float(whole.std()) == pytest.approx(1.0, abs=1e-3)


def test_explicit_stats_and_float_images() -> None:
    images = torch.rand(10, 3, 4, 4)
    loader = DeviceLoader(
        (images, torch.zeros(10, dtype=torch.int64)),
        batch_size=10,
        shuffle=False,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
    x, _ = next(iter(loader))
    torch.testing.assert_close(x, (images - 0.5) / 0.5)


def test_same_epoch_same_batches_even_in_a_new_loader() -> None:
    ds = load_dataset("sample", "test")

    def epoch(loader: DeviceLoader, e: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader.set_epoch(e)
        return list(loader)

    first = DeviceLoader(ds, batch_size=128, augment="cutout", seed=7)
    runs = [epoch(first, e) for e in range(3)]
    resumed = DeviceLoader(ds, batch_size=128, augment="cutout", seed=7)
    replay = epoch(resumed, 2)  # a run resumed at the start of epoch 2
    for (xa, ya), (xb, yb) in zip(runs[2], replay, strict=True):
        assert torch.equal(xa, xb)
        assert torch.equal(ya, yb)
    assert not torch.equal(runs[0][0][1], runs[1][0][1])  # order changes across epochs
    other_seed = epoch(DeviceLoader(ds, batch_size=128, augment="cutout", seed=8), 2)
    assert not torch.equal(other_seed[0][1], replay[0][1])


def test_epoch_advances_without_set_epoch() -> None:
    loader = DeviceLoader(_pair(), batch_size=50)
    a = next(iter(loader))[1]  # an abandoned pass does not advance the epoch
    full_pass = list(loader)  # a complete pass does
    b = full_pass[0][1]
    c = next(iter(loader))[1]
    assert torch.equal(a, b)
    assert not torch.equal(b, c)
    assert loader.epoch == 1


def test_same_order_whatever_the_augmentation() -> None:
    plain = DeviceLoader(_pair(), batch_size=10, seed=3)
    augmented = DeviceLoader(_pair(), batch_size=10, seed=3, augment="standard")
    for (_, ya), (_, yb) in zip(plain, augmented, strict=True):
        assert torch.equal(ya, yb)


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_ddp_shards_are_disjoint_and_equal(world_size: int) -> None:
    pair = _pair(n=50)
    loaders = [
        DeviceLoader(pair, batch_size=4, rank=r, world_size=world_size, seed=1)
        for r in range(world_size)
    ]
    shards = [torch.cat([_raw(ld, x)[:, 0, 0, 0] for x, _ in ld]).long() for ld in loaders]
    assert {len(s) for s in shards} == {50 // world_size}
    assert len({len(ld) for ld in loaders}) == 1
    union = torch.cat(shards)
    assert len(set(union.tolist())) == len(union) == 50 // world_size * world_size


def test_standard_crops_stay_within_padding() -> None:
    # Pixel values encode position; after undoing normalization each output must be a
    # (possibly flipped) window of the zero-padded image at offsets in [0, 2 * padding].
    image = torch.arange(1, 65, dtype=torch.uint8).reshape(1, 1, 8, 8)
    images = image.repeat(200, 1, 1, 1)
    loader = DeviceLoader(
        (images, torch.zeros(200, dtype=torch.int64)),
        batch_size=64,
        augment="standard",
        mean=(0.0,),
        std=(1.0,),
        padding=2,
    )
    padded = F.pad(image[0], (2, 2, 2, 2))
    windows = {
        (dy, dx, flip): (
            padded[:, dy : dy + 8, dx : dx + 8].flip(-1)
            if flip
            else padded[:, dy : dy + 8, dx : dx + 8]
        )
        for dy in range(5)
        for dx in range(5)
        for flip in (False, True)
    }
    used = set()
    for x, _ in loader:
        for out in _raw(loader, x).to(torch.uint8):
            match = [k for k, w in windows.items() if torch.equal(out, w)]
            assert len(match) == 1
            used.add(match[0])
    assert len(used) > 40  # offsets and flips are really random


def test_channels_last_and_repr() -> None:
    loader = DeviceLoader(_pair(channels=3), batch_size=8, channels_last=True)
    x, _ = next(iter(loader))
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert "batch_size=8" in repr(loader)
    assert loader.num_classes == 7
    assert loader.dataset_size == 50
    assert loader.image_shape == (3, 8, 8)


def test_custom_batch_augment_callable() -> None:
    def invert(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return 255 - images

    loader = DeviceLoader(
        _pair(), batch_size=50, shuffle=False, augment=invert, mean=(0.0,), std=(1.0,)
    )
    x, _ = next(iter(loader))
    assert float(x[0, 0, 0, 0]) == pytest.approx(254 / 255)


def test_per_sample_preset_runs_and_restores_threads() -> None:
    threads = torch.get_num_threads()
    ds = load_dataset("sample", "test")
    seen: list[int] = []

    def spy(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        seen.append(torch.get_num_threads())
        return images

    torch.set_num_threads(2)  # more than cpu_threads, so that a missing restore shows
    try:
        loader = DeviceLoader(ds, batch_size=32, augment="autoaugment", cpu_threads=1)
        x, _ = next(iter(loader))
        # Catches the thread count left at cpu_threads after a batch.
        assert torch.get_num_threads() == 2
        next(iter(DeviceLoader(ds, batch_size=32, augment=spy, cpu_threads=1)))
        # Catches cpu_threads ignored while the batch is prepared.
        assert seen == [1]
    finally:
        torch.set_num_threads(threads)
    assert x.shape == (32, 1, 28, 28)
    assert torch.isfinite(x).all()


def test_bad_arguments_are_clear_errors() -> None:
    pair = _pair()
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(pair, batch_size=0)
    with pytest.raises(ValueError, match="rank"):
        DeviceLoader(pair, batch_size=4, rank=2, world_size=2)
    with pytest.raises(TypeError, match="ImageDataset"):
        DeviceLoader([1, 2, 3], batch_size=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="augmentation preset"):
        DeviceLoader(pair, batch_size=4, augment="flipflop")
    with pytest.raises(ValueError, match="3 values"):
        DeviceLoader(_pair(channels=3), batch_size=4, mean=(0.5,), std=(0.5,))
    with pytest.raises(ValueError, match="num_classes=5"):
        DeviceLoader(pair, batch_size=4, num_classes=5)  # labels go up to 6
    with pytest.raises(ValueError, match="uint8 or float"):
        DeviceLoader((torch.zeros(4, 1, 2, 2, dtype=torch.int32), torch.zeros(4)), batch_size=2)


def test_dataset_subset_through_loader() -> None:
    ds = ImageDataset(*_pair(n=20), classes=[str(i) for i in range(7)])
    loader = DeviceLoader(ds, batch_size=6)
    assert loader.classes == ds.classes
    assert sum(len(y) for _, y in loader) == 20


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("augment", ["standard", "cutout"])
def test_cuda_batches_equal_cpu_batches(augment: str) -> None:
    ds = load_dataset("sample", "test")
    cpu = DeviceLoader(ds, batch_size=200, augment=augment, seed=4)
    gpu = DeviceLoader(ds, batch_size=200, augment=augment, seed=4, device="cuda")
    for (xc, yc), (xg, yg) in zip(cpu, gpu, strict=True):
        assert xg.device.type == "cuda"
        assert yg.device.type == "cuda"
        torch.testing.assert_close(xg.cpu(), xc)
        assert torch.equal(yg.cpu(), yc)
