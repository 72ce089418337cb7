"""Image folders: honest splits, stratified val_fraction, one channel/size rule, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from visionblocks.data import (
    CorruptDatasetError,
    DatasetNotFoundError,
    ImageDataset,
    StreamingDataset,
    decode_image_file,
    load_dataset,
)


def _write(
    folder: Path, counts: dict[str, int], *, mode: str = "L", size: tuple[int, int] = (6, 5)
) -> None:
    """``counts[c]`` random images of class ``c`` (width x height ``size``) under ``folder``."""
    rng = np.random.default_rng(len(counts))
    for name, count in counts.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                folder / name / f"{i:03d}.png"
            )


def _ids(ds: ImageDataset | StreamingDataset) -> set[str]:
    """The identity of each image: its pixels (the in-memory dataset keeps no paths)."""
    assert isinstance(ds, ImageDataset)
    return {bytes(image.flatten().tolist()).hex() for image in ds.images}


# --- splits ---------------------------------------------------------------------------


def test_flat_folder_has_no_test_split(tmp_path: Path) -> None:
    _write(tmp_path, {"cat": 3, "dog": 3})
    with pytest.raises(DatasetNotFoundError, match=r"no test/ subfolder.*val_fraction"):
        load_dataset(tmp_path, "test")


def test_split_subfolders_are_used_and_share_the_training_classes(tmp_path: Path) -> None:
    _write(tmp_path / "train", {"cat": 4, "dog": 3, "fox": 2})
    _write(tmp_path / "val", {"cat": 1, "fox": 1})  # val lacks "dog": labels must not shift
    _write(tmp_path / "test", {"dog": 2, "fox": 1})
    train, val, test = (load_dataset(tmp_path, s) for s in ("train", "val", "test"))
    assert isinstance(train, ImageDataset)
    assert isinstance(val, ImageDataset)
    assert isinstance(test, ImageDataset)
    assert train.classes == val.classes == test.classes == ["cat", "dog", "fox"]
    assert train.labels.tolist() == [0] * 4 + [1] * 3 + [2] * 2
    assert val.labels.tolist() == [0, 2]
    assert test.labels.tolist() == [1, 1, 2]
    assert test.name.endswith("/test")


def test_a_split_class_the_training_split_lacks_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "train", {"cat": 2, "dog": 2})
    _write(tmp_path / "test", {"cat": 1, "owl": 1})
    with pytest.raises(ValueError, match=r"'owl'.*training split does not have"):
        load_dataset(tmp_path, "test")


def test_val_without_val_folder_or_fraction_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "train", {"cat": 2, "dog": 2})
    with pytest.raises(DatasetNotFoundError, match=r"val_fraction=0\.2"):
        load_dataset(tmp_path, "val")


def test_val_fraction_with_a_val_folder_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "train", {"cat": 2, "dog": 2})
    _write(tmp_path / "val", {"cat": 1, "dog": 1})
    with pytest.raises(ValueError, match="has a val/ subfolder"):
        load_dataset(tmp_path, "train", val_fraction=0.5)


@pytest.mark.parametrize("layout", ["flat", "train/"])
@pytest.mark.parametrize("seed", [0, 7])
def test_val_fraction_is_stratified_seeded_disjoint_and_complete(
    tmp_path: Path, layout: str, seed: int
) -> None:
    folder = tmp_path if layout == "flat" else tmp_path / "train"
    _write(folder, {"a": 10, "b": 5, "c": 7})
    train = load_dataset(tmp_path, "train", val_fraction=0.2, seed=seed)
    val = load_dataset(tmp_path, "val", val_fraction=0.2, seed=seed)
    assert isinstance(train, ImageDataset)
    assert isinstance(val, ImageDataset)
    everything = load_dataset(tmp_path)
    # round half up of 0.2 * (10, 5, 7) = (2, 1, 1.4 -> 1)
    assert val.labels.bincount().tolist() == [2, 1, 1]
    assert train.labels.bincount().tolist() == [8, 4, 6]
    seen_val, seen_train = _ids(val), _ids(train)
    assert not seen_val & seen_train
    assert seen_val | seen_train == _ids(everything)
    again = load_dataset(tmp_path, "val", val_fraction=0.2, seed=seed)
    assert isinstance(again, ImageDataset)
    assert torch.equal(again.images, val.images)


def test_another_seed_holds_out_other_images(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 20, "b": 20})
    picks = [load_dataset(tmp_path, "val", val_fraction=0.25, seed=s) for s in (0, 1)]
    assert _ids(picks[0]) != _ids(picks[1])


def test_val_fraction_too_small_names_the_class(tmp_path: Path) -> None:
    _write(tmp_path, {"big": 20, "tiny": 2})
    with pytest.raises(ValueError, match=r"too small for class 'tiny'.*>= 0\.25"):
        load_dataset(tmp_path, "val", val_fraction=0.2)


def test_val_fraction_leaving_no_training_image_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 10, "b": 1})
    with pytest.raises(ValueError, match=r"no training image of class 'b'"):
        load_dataset(tmp_path, "train", val_fraction=0.5)


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, "0.2"])
def test_val_fraction_outside_zero_one_is_an_error(tmp_path: Path, bad: object) -> None:
    _write(tmp_path, {"a": 4, "b": 4})
    with pytest.raises(ValueError, match=r"val_fraction must be a fraction in \(0, 1\)"):
        load_dataset(tmp_path, "val", val_fraction=bad)  # type: ignore[call-overload]


def test_folder_only_options_on_a_named_dataset_are_errors() -> None:
    with pytest.raises(ValueError, match="val_fraction applies to image folders"):
        load_dataset("sample", val_fraction=0.2)
    with pytest.raises(ValueError, match="split='val' applies to image folders"):
        load_dataset("sample", "val")


# --- channels, sizes, bad files ----------------------------------------------------------


def test_one_colour_image_makes_the_whole_folder_rgb(tmp_path: Path) -> None:
    _write(tmp_path / "train", {"a": 2, "b": 2}, mode="L")
    _write(tmp_path / "test", {"a": 1}, mode="RGB")  # colour only in test/
    train = load_dataset(tmp_path, "train")
    assert isinstance(train, ImageDataset)
    assert train.image_shape == (3, 5, 6)
    gray = torch.from_numpy(np.array(Image.open(tmp_path / "train" / "a" / "000.png")))
    assert torch.equal(train.images[0], gray.expand(3, -1, -1))  # grayscale repeated


def test_all_grayscale_folder_stays_single_channel(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2, "b": 2}, mode="L")
    ds = load_dataset(tmp_path)
    assert ds.image_shape == (1, 5, 6)


def test_rgb_to_grayscale_uses_pillows_weights(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 1, "b": 1}, mode="L")
    rng = np.random.default_rng(3)
    colour = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    Image.fromarray(colour, "RGB").save(tmp_path / "a" / "colour.png")
    ds = load_dataset(tmp_path)  # now RGB: the colour image stays as it is
    assert ds.image_shape[0] == 3
    gray = decode_image_file(tmp_path / "a" / "colour.png", 1, (5, 6))
    expected = np.asarray(Image.fromarray(colour, "RGB").convert("L"))
    assert torch.equal(gray[0], torch.from_numpy(expected.copy()))


def test_mixed_sizes_need_image_size(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2}, size=(6, 5))
    _write(tmp_path, {"b": 2}, size=(9, 7))
    with pytest.raises(ValueError, match=r"differ in size.*image_size="):
        load_dataset(tmp_path)
    assert load_dataset(tmp_path, image_size=8).image_shape == (1, 8, 8)
    assert load_dataset(tmp_path, image_size=(4, 10)).image_shape == (1, 4, 10)


@pytest.mark.parametrize("bad", [0, (3,), (2, 0), 2.5, True])
def test_bad_image_size_is_an_error(tmp_path: Path, bad: object) -> None:
    _write(tmp_path, {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="image_size must be"):
        load_dataset(tmp_path, image_size=bad)  # type: ignore[call-overload]


def test_resize_is_plain_bilinear_to_the_exact_size(tmp_path: Path) -> None:
    # A left-dark, right-bright 20x10 image: a crop would lose one half, a plain resize keeps both.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    array = np.zeros((10, 20), dtype=np.uint8)
    array[:, 10:] = 255
    for name in ("a", "b"):
        Image.fromarray(array, "L").save(tmp_path / name / "x.png")
    ds = load_dataset(tmp_path, image_size=4)
    assert isinstance(ds, ImageDataset)
    assert ds.images[0, 0, :, 0].tolist() == [0] * 4
    assert ds.images[0, 0, :, 3].tolist() == [255] * 4


def test_a_file_that_is_not_an_image_is_named(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "b" / "notes.jpg").write_text("not an image")
    with pytest.raises(CorruptDatasetError, match=r"notes\.jpg"):
        load_dataset(tmp_path)


def test_a_truncated_image_is_named_when_decoded(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2, "b": 2}, size=(40, 40))
    path = tmp_path / "a" / "001.png"
    path.write_bytes(path.read_bytes()[:60])  # the header survives, the pixels do not
    with pytest.raises(CorruptDatasetError, match=r"001\.png"):
        load_dataset(tmp_path, in_memory=True)
    stream = load_dataset(tmp_path, in_memory=False)
    with pytest.raises(CorruptDatasetError, match=r"001\.png"):
        stream[1]


def test_other_files_are_skipped_with_a_warning(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "a" / "labels.csv").write_text("x")
    (tmp_path / "a" / ".DS_Store").write_text("x")  # hidden: skipped silently
    with pytest.warns(UserWarning, match=r"skipped 1 file.*labels\.csv"):
        ds = load_dataset(tmp_path)
    assert len(ds) == 4


def test_empty_class_folder_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 2, "b": 2})
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*empty has no images"):
        load_dataset(tmp_path)


def test_single_class_folder_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, {"only": 3})
    with pytest.raises(ValueError, match=r"only the class 'only'.*at least two classes"):
        load_dataset(tmp_path)


# --- in memory or streamed ------------------------------------------------------------------


def test_in_memory_false_streams_the_same_pixels(tmp_path: Path) -> None:
    _write(tmp_path, {"a": 3, "b": 2}, mode="RGB")
    memory = load_dataset(tmp_path, in_memory=True)
    stream = load_dataset(tmp_path, in_memory=False)
    assert isinstance(memory, ImageDataset)
    assert isinstance(stream, StreamingDataset)
    assert stream.image_shape == memory.image_shape == (3, 5, 6)
    assert stream.classes == memory.classes
    assert torch.equal(stream.labels, memory.labels)
    assert torch.equal(torch.stack([stream[i][0] for i in range(len(stream))]), memory.images)
    # Five images are fewer than the stats sample: the estimate is exact.
    assert stream.mean == pytest.approx(memory.mean)
    assert stream.std == pytest.approx(memory.std)


def test_large_folders_stream_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, {"a": 2, "b": 2})
    assert isinstance(load_dataset(tmp_path), ImageDataset)
    monkeypatch.setattr("visionblocks.data._stream._MAX_IN_MEMORY", 4 * 30 - 1)  # 4 x 1x5x6
    assert isinstance(load_dataset(tmp_path), StreamingDataset)
    assert isinstance(load_dataset(tmp_path, in_memory=True), ImageDataset)
