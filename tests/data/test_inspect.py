"""inspect_data finds planted duplicates, leakage and unreadable files, and nothing else."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionblocks.data import (
    DataReport,
    DatasetNotFoundError,
    ImageDataset,
    StreamingDataset,
    inspect_data,
    load_dataset,
)

CLASSES = (5, 7, 8)  # Sandal, Sneaker, Bag: real, pairwise distinct Fashion-MNIST images


def write_folder(root: Path, splits: dict[str, int]) -> None:
    """``root/<split>/<class>/NNNN.png`` with ``splits[split]`` distinct sample images per class."""
    sample = load_dataset("sample", in_memory=True)
    start = 0
    for split, per_class in splits.items():
        for k in CLASSES:
            folder = root / split / sample.classes[k]
            folder.mkdir(parents=True, exist_ok=True)
            images = sample.images[sample.labels == k][start : start + per_class]
            for i, image in enumerate(images):
                Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")
        start += per_class


def paths(report: DataReport) -> list[set[str]]:
    """The duplicate groups as sets of file names relative to their split folder's parent."""
    return [{"/".join(Path(str(ref)).parts[-3:]) for ref in g.images} for g in report.duplicates]


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    write_folder(tmp_path / "data", {"train": 12, "val": 4, "test": 4})
    return tmp_path / "data"


def test_a_clean_folder_has_nothing_to_report(clean: Path) -> None:
    # The control for the planted problems below: the same folder reports no problem.
    report = inspect_data(clean)
    assert [(s.name, s.images) for s in report.splits] == [("train", 36), ("val", 12), ("test", 12)]
    assert report.classes == ("Bag", "Sandal", "Sneaker")
    assert report.splits[0].class_counts == (12, 12, 12)
    assert report.imbalance_ratio == 1.0
    assert report.unreadable == ()
    assert report.duplicates == ()
    assert report.warnings() == []
    assert report.split("test").sizes == {(28, 28): 12}
    assert report.split("test").modes == {"L": 12}


def test_planted_duplicates_and_corrupt_files_are_found_and_nothing_else(clean: Path) -> None:
    train, val, test = clean / "train", clean / "val", clean / "test"
    # 1. The same pixels re-encoded: a BMP of a PNG (other bytes, identical pixels).
    Image.open(train / "Bag/0003.png").save(test / "Bag/leaked.bmp")
    # 2. A byte-identical copy with another label (across splits, labels differ).
    shutil.copy(train / "Sandal/0001.png", val / "Sneaker/0001_copy.png")
    # 3. A copy within one split, saved with another PNG compression (other bytes).
    Image.open(train / "Sneaker/0002.png").save(train / "Sneaker/again.png", compress_level=0)
    assert (train / "Sneaker/again.png").read_bytes() != (train / "Sneaker/0002.png").read_bytes()
    # 4. Unreadable: a truncated PNG (its header is whole) and a text file named .jpg.
    whole = (train / "Bag/0000.png").read_bytes()
    (train / "Bag/truncated.png").write_bytes(whole[: len(whole) // 2])
    (test / "Sandal/notes.jpg").write_bytes(b"not an image")
    # 5. A file that is not an image is not listed at all, as load_dataset skips it.
    (train / "Bag/readme.txt").write_text("hello")

    report = inspect_data(clean)

    assert [(s.name, s.images) for s in report.splits] == [("train", 38), ("val", 13), ("test", 14)]
    assert sorted("/".join(Path(str(r)).parts[-3:]) for r, _ in report.unreadable) == [
        "test/Sandal/notes.jpg",
        "train/Bag/truncated.png",
    ]
    assert all(str(ref) in reason for ref, reason in report.unreadable)  # names the file
    expected = [
        {"train/Bag/0003.png", "test/Bag/leaked.bmp"},
        {"train/Sandal/0001.png", "val/Sneaker/0001_copy.png"},
        {"train/Sneaker/0002.png", "train/Sneaker/again.png"},
    ]
    found = {
        frozenset(p): g.labels_differ for p, g in zip(paths(report), report.duplicates, strict=True)
    }
    assert found == dict(zip(map(frozenset, expected), [False, True, False], strict=True))
    assert report.copies_within("train") == 1
    assert (report.leaked("val"), report.leaked("test")) == (1, 1)
    assert (report.leaked("train"), report.copies_within("test")) == (0, 0)
    # The unreadable files are counted in their class but have no size or mode.
    assert report.split("train").class_counts == (13, 12, 13)
    assert sum(report.split("train").sizes.values()) == 37
    assert report.split("test").modes == {"L": 13}
    warnings = report.warnings()
    assert len(warnings) == 4, warnings  # unreadable, val leak, test leak, labels differ
    summary = str(report)
    assert "[labels differ]" in summary
    assert "leaked.bmp" in summary


def test_duplicates_are_decoded_pixels_so_exif_orientation_counts(tmp_path: Path) -> None:
    # A picture stored sideways with the EXIF tag "rotate 90" decodes to the upright one:
    # the model sees two identical images, which byte or header comparison would miss.
    write_folder(tmp_path / "data", {"train": 3})
    upright = tmp_path / "data/train/Bag/0000.png"
    pixels = np.asarray(Image.open(upright))
    sideways = Image.fromarray(np.rot90(pixels, k=1).copy())  # what ROTATE_270 undoes
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 clockwise to display
    sideways.save(tmp_path / "data/train/Sandal/sideways.png", exif=exif)
    report = inspect_data(tmp_path / "data")
    assert paths(report) == [{"train/Bag/0000.png", "train/Sandal/sideways.png"}]


def test_val_fraction_splits_a_folder_as_load_dataset_does(tmp_path: Path) -> None:
    write_folder(tmp_path / "data", {"train": 9})
    folder = tmp_path / "data/train"
    report = inspect_data(folder, val_fraction=0.3, seed=3)
    assert [s.name for s in report.splits] == ["train", "val"]
    for split in ("train", "val"):
        loaded = load_dataset(folder, split, val_fraction=0.3, seed=3, in_memory=False)
        assert report.split(split).images == len(loaded.files)
        assert report.split(split).class_counts == tuple(loaded.labels.bincount().tolist())
    # A copy inside the training images lands in val: reported there as leakage.
    val = load_dataset(folder, "val", val_fraction=0.3, seed=3, in_memory=False)
    shutil.copy(val.files[0], folder / "Bag" / "zz_copy.png")
    leaking = inspect_data(folder, val_fraction=0.3, seed=3)
    assert leaking.leaked("val") + leaking.copies_within("train") == 1


def test_an_empty_class_folder_is_reported_not_raised(clean: Path) -> None:
    shutil.rmtree(clean / "test/Bag")
    (clean / "test/Bag").mkdir()
    report = inspect_data(clean)
    assert report.split("test").class_counts == (0, 4, 4)
    assert math.isinf(report.split("test").imbalance_ratio)
    assert report.warnings() == ["test has no images of class(es) Bag."]


def test_in_memory_splits_leakage_and_imbalance() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (60, 3, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.tensor([0] * 50 + [1] * 4 + [2] * 6)
    test_images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8, generator=generator)
    test_images[6] = images[20]  # leaked, same label
    images[59] = images[3]  # a copy within train, with another label
    train = ImageDataset(images, labels, ["a", "b", "c"], name="toy/train")
    test = (test_images, torch.arange(10) % 3)
    report = inspect_data({"train": train, "test": test})
    assert report.name == "toy/train"
    assert report.splits[0].class_counts == (50, 4, 6)
    assert report.imbalance_ratio == 12.5
    groups = [[(r.split, r.index, r.label) for r in g.images] for g in report.duplicates]
    assert groups == [
        [("train", 3, "a"), ("train", 59, "c")],
        [("train", 20, "a"), ("test", 6, "a")],
    ]
    assert [g.labels_differ for g in report.duplicates] == [True, False]
    assert report.split("train").modes == {"RGB": 60}
    warnings = report.warnings()
    assert len(warnings) == 3, warnings  # imbalance 12.5 > 10, a test leak, labels differ
    assert "12.5:1 (a 50 images, b 4)" in warnings[0]
    relaxed = inspect_data({"train": train, "test": test}, max_imbalance=13)
    assert len(relaxed.warnings()) == 2


def test_float_images_and_a_pair_without_class_names() -> None:
    images = torch.rand(5, 1, 4, 4)
    images[4] = images[1]
    report = inspect_data((images, torch.tensor([0, 1, 1, 0, 2])))
    assert report.classes == ("0", "1", "2")
    assert report.splits[0].modes == {"1 channel(s) float32": 5}
    assert [[r.index for r in g.images] for g in report.duplicates] == [[1, 4]]
    # The same values as uint8 are other images (the dtype is part of what is compared).
    as_bytes = (images * 255).round().to(torch.uint8)
    mixed = inspect_data({"a": (images, torch.zeros(5, dtype=torch.int64)),
                          "b": (as_bytes, torch.zeros(5, dtype=torch.int64))})  # fmt: skip
    assert [g.splits for g in mixed.duplicates] == [("a",), ("b",)]


def test_labels_file_missing_corrupt_and_repeated_rows(tmp_path: Path) -> None:
    write_folder(tmp_path, {"images": 3})
    folder = tmp_path / "images"
    (folder / "Bag/broken.png").write_bytes(b"\x89PNG broken")
    rows = ["image,label", "Bag/0000.png,10", "Bag/0001.png,2", "Sandal/0000.png,2",
            "Sandal/0001.png,10", "Bag/broken.png,2", "Bag/gone.png,10", "Bag/0000.png,2",
            "Sneaker/0000.png,10", ""]  # fmt: skip
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    report = inspect_data(tmp_path / "labels.csv", root=folder)
    assert report.classes == ("2", "10")  # integer labels sorted by value, as load_dataset does
    assert [s.name for s in report.splits] == ["train"]
    assert report.splits[0].class_counts == (4, 4)
    reasons = {Path(str(ref)).name: why for ref, why in report.unreadable}
    assert sorted(reasons) == ["broken.png", "gone.png"]
    assert "missing" in reasons["gone.png"]
    # The row listing Bag/0000.png twice is a copy, with two labels.
    assert [[r.index for r in g.images] for g in report.duplicates] == [[0, 6]]
    assert report.duplicates[0].labels_differ


def test_labels_file_without_a_label_column(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("image,kind\na.png,x\n")
    with pytest.raises(ValueError, match="no label column"):
        inspect_data(tmp_path / "labels.csv")


def test_labels_file_rows_follow_load_datasets_rules(tmp_path: Path) -> None:
    # inspect reads a labels file with load_dataset's reader: a multi-label file is named as
    # such (it used to be "no label column"), and an empty label names its line.
    (tmp_path / "tags.csv").write_text("image,tags\na.png,cat dog\n")
    with pytest.raises(ValueError, match="multi-label labels file"):
        inspect_data(tmp_path / "tags.csv")
    (tmp_path / "labels.csv").write_text("image,label\na.png,x\nb.png,\n")
    with pytest.raises(ValueError, match="line 3 has an empty label"):
        inspect_data(tmp_path / "labels.csv")


def test_named_dataset_is_its_train_and_test_splits() -> None:
    report = inspect_data("sample")
    train, test = load_dataset("sample"), load_dataset("sample", "test")
    assert report.split("train").class_counts == tuple(train.labels.bincount().tolist())
    assert report.split("test").images == len(test)
    assert (report.duplicates, report.unreadable) == ((), ())


def test_json_and_plot(clean: Path, tmp_path: Path) -> None:
    shutil.copy(clean / "train/Bag/0000.png", clean / "test/Bag/copy.png")
    report = inspect_data(clean)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["splits"]["test"]["also_in_earlier_split"] == 1
    assert data["splits"]["test"]["class_counts"] == {"Bag": 5, "Sandal": 4, "Sneaker": 4}
    assert [len(g["images"]) for g in data["duplicates"]] == [2]
    assert data["warnings"] == report.warnings() != []
    pytest.importorskip("matplotlib")
    fig = report.plot(save=tmp_path / "report.png")
    assert len(fig.axes) == 3
    assert (tmp_path / "report.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda p: inspect_data(str(p / "absent")), ValueError, "unknown dataset"),
        (lambda p: inspect_data(Path(p / "absent")), DatasetNotFoundError, "does not exist"),
        (lambda p: inspect_data(p), DatasetNotFoundError, "has no images"),
        (lambda p: inspect_data("sample", max_imbalance=0.5), ValueError, "max_imbalance"),
        (lambda p: inspect_data("sample", val_fraction=0.2), ValueError, "image folders"),
        (lambda p: inspect_data([1, 2]), TypeError, "got list"),
        (lambda p: inspect_data({}), ValueError, "empty dict"),
        (lambda p: inspect_data(load_dataset("sample"), root=p), ValueError, "drop them"),
    ],
)
def test_bad_arguments_are_one_clear_error(
    tmp_path: Path, call: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call(tmp_path)  # type: ignore[operator]


def test_an_image_in_memory_and_the_same_image_in_a_file_are_duplicates(tmp_path: Path) -> None:
    # Both ways of hashing (a tensor of images, one decoded file) must give one digest.
    write_folder(tmp_path / "data", {"train": 4})
    files = load_dataset(tmp_path / "data/train", in_memory=False)
    in_memory = load_dataset(tmp_path / "data/train", in_memory=True)
    rgb = torch.randint(0, 256, (2, 3, 5, 7), dtype=torch.uint8)
    Image.fromarray(rgb[1].permute(1, 2, 0).numpy()).save(tmp_path / "rgb.png")
    report = inspect_data(
        {
            "train": in_memory,
            "test": files,
            "rgb": (rgb, torch.tensor([0, 1])),
            "rgb file": StreamingDataset(
                [tmp_path / "rgb.png"], [1], ["a", "b"], channels=3, image_size=(5, 7)
            ),
        }
    )
    assert len(report.duplicates) == len(files) + 1
    assert all(g.splits == ("train", "test") for g in report.duplicates[:-1])
    assert report.duplicates[-1].splits == ("rgb", "rgb file")


def test_a_broken_link_is_reported_as_unreadable(clean: Path) -> None:
    # load_dataset stops at it; a listing by is_file() alone would drop it without a word.
    (clean / "train/Bag/gone.png").symlink_to(clean / "nowhere.png")
    report = inspect_data(clean)
    [(ref, reason)] = report.unreadable
    assert ref.path == clean / "train/Bag/gone.png"
    assert "broken symbolic link" in reason
    assert report.split("train").class_counts == (13, 12, 12)
