"""Image files that training and predict cannot use fail in one line naming the file and the fix.

Each case goes through both readers: ``load_dataset`` on a class folder and the image
preparation of ``predict``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionblocks.data import DatasetNotFoundError, ImageDataset, load_dataset
from visionblocks.inference._images import expand_inputs


def _folder(root: Path) -> Path:
    """A two-class folder of 16x16 grayscale PNGs, two per class."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (16, 16), 40 * i).save(root / name / f"{i}.png")
    return root


def _read_for_predict(source: Path | Image.Image) -> None:
    for _, read in expand_inputs(source):
        read()


def _one_line(err: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_an_image_over_pillows_pixel_limit_names_the_file_and_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands in for a 14000 x 14000 photo: Pillow refuses images over twice the limit.
    folder = _folder(tmp_path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 16 x 16 = 256 > 2 x 100
    with pytest.raises(ValueError, match=r"0\.png.*MAX_IMAGE_PIXELS") as err:
        load_dataset(folder)
    assert "resize" in _one_line(err)
    with pytest.raises(ValueError, match=r"1\.png.*MAX_IMAGE_PIXELS") as err:
        _read_for_predict(folder / "b" / "1.png")
    assert "resize" in _one_line(err)


@pytest.mark.parametrize(
    ("mode", "pixels"),
    [
        ("I", np.full((16, 16), 70_000, np.int32)),  # a 32-bit integer TIFF
        ("F", np.full((16, 16), 0.5, np.float32)),  # a float TIFF: 0.5 was saturated to 0 or 1
    ],
)
def test_32_bit_images_are_refused_naming_the_file_and_mode(
    tmp_path: Path, mode: str, pixels: np.ndarray
) -> None:
    folder = _folder(tmp_path)
    Image.fromarray(pixels).save(folder / "a" / "deep.tiff")
    match = rf"deep\.tiff.*mode '{mode}'"
    with pytest.raises(ValueError, match=match) as err:
        load_dataset(folder)
    assert "save it as an 8-bit or 16-bit image" in _one_line(err)
    with pytest.raises(ValueError, match=match):
        _read_for_predict(folder / "a" / "deep.tiff")
    with Image.open(folder / "a" / "deep.tiff") as opened, pytest.raises(ValueError, match=match):
        _read_for_predict(opened)


def test_a_broken_symlink_in_a_class_folder_is_an_error_naming_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "images")
    link = folder / "a" / "moved.png"
    link.symlink_to(tmp_path / "elsewhere" / "moved.png")
    with pytest.raises(
        DatasetNotFoundError, match=r"a/moved\.png is a broken symbolic link"
    ) as err:
        load_dataset(folder)
    assert "delete it" in _one_line(err)
    with pytest.raises(FileNotFoundError, match=r"a/moved\.png is a broken symbolic link"):
        _read_for_predict(folder)
    link.unlink()  # the control: without the link the folder loads
    assert len(load_dataset(folder)) == 4


def test_a_dataset_name_that_is_also_a_folder_here_is_an_error_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path / "sample")
    with pytest.raises(ValueError, match="'sample' names both the dataset 'sample'") as err:
        load_dataset("sample")
    assert "pass Path('sample') or './sample' to load the folder" in _one_line(err)
    for name in ("./sample", Path("sample")):
        dataset = load_dataset(name)
        assert isinstance(dataset, ImageDataset)
        assert dataset.classes == ["a", "b"]


def test_a_dataset_root_named_like_the_dataset_is_not_ambiguous(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ./sample holding files but no class folders is not an image folder: the name wins.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "notes.txt").write_text("not images")
    dataset = load_dataset("sample")
    assert dataset.name == "sample/train"
    assert len(dataset) == 2000
