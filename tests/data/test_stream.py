"""Streamed folders: the same batches as in memory, trained and evaluated by fit/evaluate."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

import visionblocks as vb
from visionblocks.data import (
    DeviceLoader,
    ImageDataset,
    LoaderOptions,
    StreamingDataset,
    StreamLoader,
    describe_data,
    labels_of,
    load_dataset,
    stats_of,
)
from visionblocks.train import evaluate, fit

PER_CLASS = 30


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``PER_CLASS`` real Fashion-MNIST images of each class, as PNGs in class folders."""
    root = tmp_path_factory.mktemp("fashion-png")
    sample = load_dataset("sample", in_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io's encoders
        for c in range(10):
            members = torch.nonzero(sample.labels == c).flatten()[:PER_CLASS]
            (root / f"class{c}").mkdir()
            for i in members.tolist():
                write_png(sample.images[i], str(root / f"class{c}" / f"{i:05d}.png"))
    return root


@pytest.fixture(scope="module")
def both(png_folder: Path) -> tuple[ImageDataset, StreamingDataset]:
    memory = load_dataset(png_folder, in_memory=True)
    stream = load_dataset(png_folder, in_memory=False)
    assert isinstance(memory, ImageDataset)
    assert isinstance(stream, StreamingDataset)
    return memory, stream


def test_stream_describes_itself_like_the_in_memory_data(
    both: tuple[ImageDataset, StreamingDataset],
) -> None:
    memory, stream = both
    assert len(stream) == len(memory) == 10 * PER_CLASS
    info, expected = describe_data(stream), describe_data(memory)
    assert (info.num_classes, info.image_shape) == (10, (1, 28, 28))
    assert info.classes == expected.classes
    assert torch.equal(labels_of(stream), memory.labels)  # type: ignore[arg-type]
    mean, std = stats_of(stream)  # type: ignore[misc]
    assert mean == pytest.approx(memory.mean)  # 300 images < STATS_SAMPLE: all are used
    assert std == pytest.approx(memory.std)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_stream_loader_gives_the_device_loaders_batches(
    both: tuple[ImageDataset, StreamingDataset], num_workers: int
) -> None:
    memory, stream = both
    options = LoaderOptions(batch_size=32, augment="standard", seed=3, drop_last=True)
    ours = StreamLoader(stream, options, num_workers=num_workers)
    reference = DeviceLoader(memory, options)
    assert len(ours) == len(reference) == 9
    for epoch in (0, 2):
        ours.set_epoch(epoch)
        reference.set_epoch(epoch)
        for (x, y), (x_ref, y_ref) in zip(ours, reference, strict=True):
            assert torch.equal(y, y_ref)
            assert torch.equal(x, x_ref)  # same images, crops, flips and normalization


def test_epochs_reshuffle_and_replay(both: tuple[ImageDataset, StreamingDataset]) -> None:
    loader = StreamLoader(both[1], batch_size=64, num_workers=0)
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])  # epoch 1: another order
    loader.set_epoch(0)
    assert torch.equal(torch.cat([y for _, y in loader]), first)
    assert not torch.equal(first, second)
    assert sorted(first.tolist()) == sorted(second.tolist())


def test_ranks_read_disjoint_shards(both: tuple[ImageDataset, StreamingDataset]) -> None:
    stream = both[1]
    shards = [
        StreamLoader(stream, batch_size=16, num_workers=0, rank=r, world_size=3).epoch_indices()
        for r in range(3)
    ]
    assert [len(s) for s in shards] == [100, 100, 100]
    assert len(set(torch.cat(shards).tolist())) == 300


def test_stream_loader_rejects_in_memory_data(both: tuple[ImageDataset, StreamingDataset]) -> None:
    with pytest.raises(TypeError, match="DeviceLoader"):
        StreamLoader(both[0], batch_size=8)  # type: ignore[arg-type]


def test_fit_and_evaluate_on_a_stream_match_in_memory(
    both: tuple[ImageDataset, StreamingDataset],
) -> None:
    torch.set_num_threads(1)
    results = []
    for data in both:
        torch.manual_seed(0)  # the same initial weights
        model = vb.simple_cnn(
            in_channels=1, image_size=28, widths=(8, 16, 16), hidden=32, batch_norm=True
        )
        history = fit(
            model, data, data, epochs=5, batch_size=32, augment="standard", seed=0,
            progress=False, device="cpu", precision="fp32", optimizer="adamw",
        )  # fmt: skip
        results.append((history, evaluate(model, data, device="cpu", precision="fp32")))
    (h_mem, e_mem), (h_stream, e_stream) = results
    # Identical batches, so the same training up to float summation order.
    assert h_stream.last["train_loss"] == pytest.approx(h_mem.last["train_loss"], rel=1e-4)
    assert h_stream.last["val_acc"] == pytest.approx(h_mem.last["val_acc"], abs=0.02)
    assert e_stream.accuracy == pytest.approx(e_mem.accuracy, abs=0.02)
    assert e_stream.accuracy > 0.3  # it learned: chance is 0.1
    assert e_stream.classes == [f"class{c}" for c in range(10)]
