"""Datasets: the packaged sample, Fashion-MNIST/MNIST IDX files, CIFAR pickles, image folders."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import visionblocks.data
from visionblocks.data import (
    FASHION_MNIST_CLASSES,
    CorruptDatasetError,
    DatasetNotFoundError,
    ImageDataset,
    channel_stats,
    load_dataset,
    subset,
)
from visionblocks.data._idx import read_idx, write_idx

# The conftest fixture write_cifar10(root, per_batch, protocol=2) -> {name: rows, ...}.
Writer = Callable[..., dict[str, np.ndarray]]

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason="apt-get install dataset-fashion-mnist",
)


# --- the packaged sample --------------------------------------------------------------


@pytest.mark.parametrize(("split", "per_class"), [("train", 200), ("test", 100)])
def test_sample_is_balanced_fashion_mnist(split: str, per_class: int) -> None:
    ds = load_dataset("sample", split)
    assert len(ds) == 10 * per_class
    assert ds.images.shape == (10 * per_class, 1, 28, 28)
    assert ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert ds.labels.bincount().tolist() == [per_class] * 10
    assert ds.classes == FASHION_MNIST_CLASSES
    assert ds.name == f"sample/{split}"
    # Fashion-MNIST's published statistics are mean 0.2860, std 0.3530.
    assert ds.mean[0] == pytest.approx(0.2860, abs=0.01)
    assert ds.std[0] == pytest.approx(0.3530, abs=0.01)


def test_sample_train_and_test_share_no_image() -> None:
    train = {hashlib.sha1(im.numpy().tobytes()).digest() for im in load_dataset("sample").images}
    test = load_dataset("sample", "test").images
    assert not any(hashlib.sha1(im.numpy().tobytes()).digest() in train for im in test)


@needs_fashion
@pytest.mark.parametrize(("split", "prefix"), [("train", "train"), ("test", "t10k")])
def test_sample_images_are_real_fashion_mnist_images(split: str, prefix: str) -> None:
    full_images = read_idx(FASHION / f"{prefix}-images-idx3-ubyte.gz", ndim=3)
    full_labels = read_idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz", ndim=1)
    lookup = {
        hashlib.sha1(im.numpy().tobytes()).digest(): int(label)
        for im, label in zip(full_images, full_labels, strict=True)
    }
    sample = load_dataset("sample", split)
    for image, label in zip(sample.images, sample.labels, strict=True):
        assert lookup[hashlib.sha1(image[0].numpy().tobytes()).digest()] == int(label)


@pytest.mark.slow
@needs_fashion
def test_make_sample_script_reproduces_the_packaged_files(tmp_path: Path) -> None:
    script = Path(__file__).parents[2] / "scripts" / "make_sample.py"
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], check=True, capture_output=True
    )
    packaged = Path(visionblocks.data.__file__).parent / "_sample"
    names = sorted(p.name for p in packaged.iterdir() if p.suffix == ".gz")
    assert len(names) == 4
    for name in names:
        assert (tmp_path / name).read_bytes() == (packaged / name).read_bytes(), name


# --- Fashion-MNIST and MNIST ------------------------------------------------------------


@needs_fashion
def test_fashion_mnist_from_debian_package() -> None:
    train = load_dataset("fashion-mnist")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28)
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.labels.bincount().tolist() == [6000] * 10
    assert train.mean[0] == pytest.approx(0.2860, abs=5e-4)
    assert train.std[0] == pytest.approx(0.3530, abs=5e-4)


def test_missing_fashion_mnist_names_paths_and_fixes(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("fashion-mnist", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message
    assert "root=" in message


def _write_mnist(folder: Path, n: int, *, gz: bool) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8)
    labels = torch.arange(n, dtype=torch.uint8) % 10
    ext = ".gz" if gz else ""
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", images)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", labels)
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_from_root(tmp_path: Path, gz: bool) -> None:
    images, labels = _write_mnist(tmp_path, 12, gz=gz)
    ds = load_dataset("mnist", "test", root=tmp_path)
    assert ds.images.shape == (12, 1, 28, 28)
    assert torch.equal(ds.images[:, 0], images)
    assert torch.equal(ds.labels, labels.long())
    assert ds.classes == [str(d) for d in range(10)]


def test_mnist_in_torchvision_layout(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _write_mnist(raw, 5, gz=False)
    assert len(load_dataset("mnist", "test", root=tmp_path)) == 5


def test_truncated_idx_is_a_clear_error(tmp_path: Path) -> None:
    _write_mnist(tmp_path, 4, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptDatasetError, match="truncated"):
        load_dataset("mnist", "test", root=tmp_path)


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    _write_mnist(tmp_path, 40, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CorruptDatasetError, match="gzip"):
        load_dataset("mnist", "test", root=tmp_path)


def test_idx_with_wrong_magic_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + bytes(16)))  # float IDX
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(8)))
    with pytest.raises(CorruptDatasetError, match="magic"):
        load_dataset("mnist", "test", root=tmp_path)


# --- CIFAR, in its exact on-disk format --------------------------------------------------


def _dump(path: Path, obj: dict[bytes, Any], protocol: int) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_exact_format(tmp_path: Path, write_cifar10: Writer, protocol: int) -> None:
    written = write_cifar10(tmp_path, per_batch=6, protocol=protocol)
    train = load_dataset("cifar10", root=tmp_path)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert train.images.shape == (30, 3, 32, 32)
    assert test.images.shape == (6, 3, 32, 32)
    assert train.classes[0] == "airplane"
    assert train.classes[9] == "truck"
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major.
    row = written["data_batch_2"][1]
    image = train.images[6 + 1]
    assert image[0, 0, 0] == row[0]
    assert image[0, 0, 1] == row[1]
    assert image[0, 1, 0] == row[32]
    assert image[1, 0, 0] == row[1024]
    assert image[2, 31, 31] == row[3071]
    assert train.labels[:6].tolist() == written["data_batch_1_labels"].tolist()
    assert test.labels.tolist() == written["test_batch_labels"].tolist()
    expected_mean = np.concatenate([written[f"data_batch_{i}"] for i in range(1, 6)])
    expected_mean = expected_mean.reshape(-1, 3, 1024).mean(axis=(0, 2)) / 255
    assert train.mean == pytest.approx(tuple(expected_mean), abs=1e-9)


def test_cifar10_root_may_be_the_batches_folder(tmp_path: Path, write_cifar10: Writer) -> None:
    write_cifar10(tmp_path, per_batch=2)
    assert len(load_dataset("cifar10", root=tmp_path / "cifar-10-batches-py")) == 10


def test_cifar100_exact_format(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.arange(4 * 3072, dtype=np.int64).astype(np.uint8).reshape(4, 3072)
    for split in ("train", "test"):
        batch = {
            b"filenames": [b"a.png"] * 4,
            b"batch_label": split.encode(),
            b"fine_labels": [0, 99, 5, 42],
            b"coarse_labels": [0, 19, 1, 3],
            b"data": data,
        }
        _dump(folder / split, batch, 2)
    fine = [f"class{i}".encode() for i in range(100)]
    _dump(folder / "meta", {b"fine_label_names": fine, b"coarse_label_names": [b"x"] * 20}, 2)
    ds = load_dataset("cifar100", "test", root=tmp_path)
    assert ds.num_classes == 100
    assert ds.labels.tolist() == [0, 99, 5, 42]
    assert torch.equal(ds.images.reshape(4, 3072), torch.from_numpy(data))


def test_missing_cifar_names_paths_and_fixes(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "download=True" in message
    assert "root=" in message


def test_truncated_cifar_batch_is_a_clear_error(tmp_path: Path, write_cifar10: Writer) -> None:
    write_cifar10(tmp_path, per_batch=4)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CorruptDatasetError, match="data_batch_3"):
        load_dataset("cifar10", root=tmp_path)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_cifar_pickle_cannot_run_code(tmp_path: Path, write_cifar10: Writer) -> None:
    write_cifar10(tmp_path, per_batch=2)
    marker = tmp_path / "pwned"
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Exploit(marker)]}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(evil))
    with pytest.raises(CorruptDatasetError, match="not allowed"):
        load_dataset("cifar10", "test", root=tmp_path)
    assert not marker.exists()


# --- image folders ----------------------------------------------------------------------


def _write_folder(root: Path, mode: str, sizes: list[tuple[int, int]]) -> list[np.ndarray]:
    arrays = []
    rng = np.random.default_rng(0)
    for i, size in enumerate(sizes):
        cls = root / ("cat" if i % 2 == 0 else "dog")
        cls.mkdir(parents=True, exist_ok=True)
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        array = rng.integers(0, 256, shape, dtype=np.uint8)
        Image.fromarray(array, mode).save(cls / f"{i:03d}.png")
        arrays.append(array)
    return arrays


def test_image_folder_rgb(tmp_path: Path) -> None:
    arrays = _write_folder(tmp_path, "RGB", [(10, 8)] * 4)
    ds = load_dataset(tmp_path)
    assert ds.classes == ["cat", "dog"]
    assert ds.images.shape == (4, 3, 8, 10)
    assert ds.labels.tolist() == [0, 0, 1, 1]  # cat: images 0, 2; dog: 1, 3
    assert torch.equal(ds.images[1], torch.from_numpy(arrays[2]).permute(2, 0, 1))


def test_image_folder_grayscale_and_split(tmp_path: Path) -> None:
    _write_folder(tmp_path / "test", "L", [(6, 6)] * 3)
    ds = load_dataset(str(tmp_path), "test")
    assert ds.images.shape == (3, 1, 6, 6)


def test_image_folder_sizes_must_match_or_be_resized(tmp_path: Path) -> None:
    _write_folder(tmp_path, "RGB", [(8, 8), (12, 10)])
    with pytest.raises(ValueError, match="image_size"):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, image_size=16).images.shape == (2, 3, 16, 16)


def test_path_objects_are_always_folders(tmp_path: Path) -> None:
    _write_folder(tmp_path / "mnist", "L", [(4, 4)] * 2)  # a folder named like a dataset
    assert load_dataset(tmp_path / "mnist").images.shape == (2, 1, 4, 4)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "missing")


def test_corrupt_image_in_folder(tmp_path: Path) -> None:
    _write_folder(tmp_path, "RGB", [(4, 4)] * 2)
    (tmp_path / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(CorruptDatasetError, match=r"broken\.png"):
        load_dataset(tmp_path)


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(ValueError, match="cifar10"):
        load_dataset("imagenet-nonexistent")
    with pytest.raises(ValueError, match="split"):
        load_dataset("sample", "validation")


# --- ImageDataset and subset --------------------------------------------------------------


def test_channel_stats_match_torch() -> None:
    images = torch.randint(0, 256, (50, 3, 5, 7), dtype=torch.uint8)
    mean, std = channel_stats(images)
    x = images.double() / 255
    assert mean == pytest.approx(x.mean(dim=(0, 2, 3)).tolist(), abs=1e-12)
    assert std == pytest.approx(x.std(dim=(0, 2, 3), correction=0).tolist(), abs=1e-12)


def test_dataset_getitem_applies_transform() -> None:
    ds = load_dataset("sample", "test")
    image, label = ds[3]
    assert torch.equal(image, ds.images[3])
    assert label == int(ds.labels[3])
    flipped = ds.with_transform(lambda x: x.flip(-1))
    assert torch.equal(flipped[3][0], ds.images[3].flip(-1))
    assert ds.transform is None  # the original is untouched
    assert flipped.images is ds.images  # and no data is copied


def test_dataset_rejects_bad_tensors() -> None:
    with pytest.raises(ValueError, match="uint8"):
        ImageDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2), ["a"])
    with pytest.raises(ValueError, match="labels"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3), ["a"])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        ImageDataset(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 2]), ["a", "b"])


def test_subset_stratified_keeps_class_shares() -> None:
    ds = load_dataset("sample")
    small = subset(ds, 0.1, seed=1)
    assert len(small) == 200
    assert small.labels.bincount().tolist() == [20] * 10
    assert small.mean == ds.mean
    assert small.std == ds.std
    # Deterministic per seed, different across seeds, and really drawn from the parent.
    assert torch.equal(subset(ds, 0.1, seed=1).images, small.images)
    assert not torch.equal(subset(ds, 0.1, seed=2).images, small.images)
    parent = {im.numpy().tobytes() for im in ds.images}
    assert all(im.numpy().tobytes() in parent for im in small.images)


def test_subset_uniform_and_bad_fraction() -> None:
    ds = load_dataset("sample", "test")
    assert len(subset(ds, 0.25, stratified=False)) == 250
    assert len(subset(ds, 1.0)) == 1000
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="fraction"):
            subset(ds, bad)
