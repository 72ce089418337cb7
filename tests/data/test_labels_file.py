"""Labels files (``load_dataset("labels.csv")``): the folder rules, honest splits, clear errors.

The images are real: Fashion-MNIST PNGs from the package's built-in sample, written with a
CSV by each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from visionblocks.data import (
    DatasetNotFoundError,
    ImageDataset,
    StreamingDataset,
    decode_image_file,
    load_dataset,
)

# Per class of the sample: 6 images of classes 0-2 and 4 of class 9 (uneven, for stratifying).
_COUNTS = {0: 6, 1: 6, 2: 6, 9: 4}


def _write_sample(folder: Path, *, header: str = "image,label", suffix: bool = True) -> Path:
    """PNGs of the sample under ``folder/images`` and ``folder/labels.csv`` listing them.

    Labels are class names (one with a slash, "T-shirt/top", and one with a space); rows are
    interleaved by class, so the CSV's order is not the class order.
    """
    sample = load_dataset("sample")
    (folder / "images").mkdir(parents=True)
    rows = []
    taken = dict.fromkeys(_COUNTS, 0)
    for i, label in enumerate(sample.labels.tolist()):
        if label in _COUNTS and taken[label] < _COUNTS[label]:
            taken[label] += 1
            name = f"img{i:04d}"
            Image.fromarray(sample.images[i, 0].numpy(), "L").save(
                folder / "images" / f"{name}.png"
            )
            path = f"images/{name}.png" if suffix else f"images/{name}"
            rows.append(f"{path},{sample.classes[label]}")
        if taken == _COUNTS:
            break
    csv = folder / "labels.csv"
    csv.write_text("\n".join([header, *rows]) + "\n")
    return csv


def _pixels(ds: ImageDataset | StreamingDataset) -> set[str]:
    images = ds.images if isinstance(ds, ImageDataset) else [ds[i][0] for i in range(len(ds))]
    return {bytes(image.flatten().tolist()).hex() for image in images}


def test_every_row_is_read_with_its_label_and_sorted_class_names(tmp_path: Path) -> None:
    # Fails if a row's label or path is mixed up with another's, or classes are in file order.
    csv = _write_sample(tmp_path)
    ds = load_dataset(csv)
    assert isinstance(ds, ImageDataset)
    assert ds.classes == ["Ankle boot", "Pullover", "T-shirt/top", "Trouser"]
    lines = csv.read_text().splitlines()[1:]
    for i, line in enumerate(lines):
        path, label = line.split(",")
        assert ds.classes[int(ds.labels[i])] == label
        assert torch.equal(ds.images[i], decode_image_file(tmp_path / path))
    assert ds.image_shape == (1, 28, 28)
    assert ds.name.endswith("labels.csv/train")


def test_val_fraction_is_stratified_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    # Fails if val is not stratified, not seeded, overlaps train, or drops a row.
    csv = _write_sample(tmp_path)
    train = load_dataset(csv, "train", val_fraction=0.25, seed=3)
    val = load_dataset(csv, "val", val_fraction=0.25, seed=3)
    assert isinstance(train, ImageDataset)
    assert isinstance(val, ImageDataset)
    # classes sorted: Ankle boot (4), Pullover (6), T-shirt/top (6), Trouser (6);
    # round half up of 0.25 * (4, 6, 6, 6) = (1, 1.5 -> 2, 2, 2)
    assert val.labels.bincount().tolist() == [1, 2, 2, 2]
    assert train.labels.bincount().tolist() == [3, 4, 4, 4]
    assert not _pixels(train) & _pixels(val)
    assert _pixels(train) | _pixels(val) == _pixels(load_dataset(csv))
    again = load_dataset(csv, "val", val_fraction=0.25, seed=3)
    assert isinstance(again, ImageDataset)
    assert torch.equal(again.images, val.images)
    other = [load_dataset(csv, "val", val_fraction=0.25, seed=s) for s in range(4)]
    assert len({frozenset(_pixels(o)) for o in other}) > 1  # the seed chooses


def test_val_needs_a_fraction_and_test_takes_none(tmp_path: Path) -> None:
    csv = _write_sample(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=r"no validation part; pass val_fraction=0\.2"):
        load_dataset(csv, "val")
    with pytest.raises(ValueError, match=r"split='test' reads every row.*drop val_fraction"):
        load_dataset(csv, "test", val_fraction=0.2)
    assert len(load_dataset(csv, "test")) == sum(_COUNTS.values())


def test_streaming_gives_the_in_memory_pixels(tmp_path: Path) -> None:
    # Fails if the streamed dataset decodes, orders or labels the rows differently.
    csv = _write_sample(tmp_path)
    memory = load_dataset(csv, "train", val_fraction=0.25, image_size=20, in_memory=True)
    stream = load_dataset(csv, "train", val_fraction=0.25, image_size=20, in_memory=False)
    assert isinstance(stream, StreamingDataset)
    assert stream.classes == memory.classes
    assert torch.equal(stream.labels, memory.labels)
    for i in range(len(stream)):
        assert torch.equal(stream[i][0], memory.images[i])
    assert memory.image_shape == (1, 20, 20)


def test_paths_relative_to_root_with_an_added_suffix(tmp_path: Path) -> None:
    # Kaggle's id,label: ids without a suffix, images in another folder than the CSV.
    _write_sample(tmp_path / "data", header="id,label", suffix=False)
    csv = tmp_path / "train.csv"
    lines = (tmp_path / "data" / "labels.csv").read_text().splitlines()
    csv.write_text("\n".join([lines[0]] + [line.removeprefix("images/") for line in lines[1:]]))
    with pytest.raises(DatasetNotFoundError, match=r"line 2: .* pass root="):
        load_dataset(csv)  # relative to the CSV's folder: not there
    with pytest.raises(DatasetNotFoundError, match=r"line 2: .*exists: pass image_suffix='\.png'"):
        load_dataset(csv, root=tmp_path / "data" / "images")
    ds = load_dataset(csv, root=tmp_path / "data" / "images", image_suffix=".png")
    assert len(ds) == sum(_COUNTS.values())


def test_integer_labels_sort_by_value(tmp_path: Path) -> None:
    # By name "10" would come before "2", and label k would not be class index k.
    for i in range(4):
        Image.new("L", (3, 3), i).save(tmp_path / f"{i}.png")
    (tmp_path / "l.csv").write_text("image,label\n0.png,2\n1.png,10\n2.png,2\n3.png,10\n")
    ds = load_dataset(tmp_path / "l.csv")
    assert ds.classes == ["2", "10"]
    assert ds.labels.tolist() == [0, 1, 0, 1]


# --- one-line errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        (
            "picture,name\na.png,x\n",
            ValueError,
            r"no image column: its first row is 'picture,name'",
        ),
        ("image,kind\na.png,x\n", ValueError, r"no label column.*named label or class"),
        ("a.png,x\nb.png,y\n", ValueError, r"no image column: its first row is 'a.png,x'"),
        ("image,label\na.png,x\nmissing.png,y\n", DatasetNotFoundError, r"line 3: .*missing\.png"),
        ("image,label\na.png,x\nb.png,\n", ValueError, r"line 3 has an empty label for .*'b\.png'"),
        ("image,label\na.png,x\n,y\n", ValueError, r"line 3 has an empty image path"),
        ("image,label\na.png,x\nb.png\n", ValueError, r"line 3 has 1 field\(s\)"),
        ("image,label\na.png,x\nb.png,x\n", ValueError, r"only the label 'x'.*at least two"),
        ("image,label\n", ValueError, r"has no rows.*at least two classes"),
        ("image,label\na.png,x\nb.png,y\na.png,y\n", ValueError, r"line 4 lists 'a.png' again"),
    ],
)
def test_bad_labels_files_are_one_line_errors(
    tmp_path: Path, text: str, error: type[Exception], match: str
) -> None:
    for name in ("a", "b"):
        Image.new("L", (3, 3)).save(tmp_path / f"{name}.png")
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(error, match=match) as caught:
        load_dataset(tmp_path / "l.csv")
    assert "\n" not in str(caught.value)
    assert str(tmp_path / "l.csv") in str(caught.value)


def test_a_missing_csv_and_suffix_on_a_folder_are_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=r"labels file .*nope\.csv does not exist"):
        load_dataset(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"image_suffix must be a file suffix.*'\.png'"):
        load_dataset(tmp_path / "nope.csv", image_suffix="png")
    with pytest.raises(ValueError, match=r"image_suffix applies to labels files"):
        load_dataset("sample", image_suffix=".png")
