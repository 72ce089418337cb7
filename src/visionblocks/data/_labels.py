"""Labels files: a CSV with one image path and one label per row (the Kaggle layout).

The first row is a header naming the columns, e.g. ``image,label`` or ``id,label``;
other columns are ignored. Paths are relative to ``root`` (default: the CSV's folder),
and ``image_suffix`` is added to each when the column holds ids rather than file names
(``id`` ``3f2a`` is the file ``3f2a.png``). The result is a
:class:`~visionblocks.data._folder.FolderIndex`, made by the function image folders use
(``index_entries``), so a labels file is read in memory or streamed, sized, and split
into ``train``/``val`` by a stratified, seeded ``val_fraction`` exactly as a folder is.

Every problem is found before any pixel is decoded and named in one line with the CSV's
line number: a missing column, a missing image file (and the suffix that would find
it), an empty path or label, an image listed twice (it would sit in both train and
val), and a single class.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from visionblocks.data._errors import DatasetNotFoundError
from visionblocks.data._folder import (
    IMAGE_SUFFIXES,
    FolderIndex,
    ImageEntry,
    check_val_fraction,
    index_entries,
    read_entry,
)

__all__ = ["IMAGE_COLUMNS", "LABEL_COLUMNS", "index_labels_file", "is_labels_file"]

IMAGE_COLUMNS = ("image", "id", "image_id", "file", "filename", "path")
"""Header names (any case) of the column of image paths, in order of preference."""
LABEL_COLUMNS = ("label", "class")
"""Header names (any case) of the column of labels, in order of preference."""


def is_labels_file(name: str | os.PathLike[str]) -> bool:
    """Whether ``load_dataset`` reads ``name`` as a labels file: its name ends in ``.csv``.

    Example:
        >>> is_labels_file("train.csv"), is_labels_file("Train.CSV"), is_labels_file("photos")
        (True, True, False)
    """
    return Path(name).suffix.lower() == ".csv"


def index_labels_file(
    path: Path,
    split: str,
    *,
    root: Path | None = None,
    image_suffix: str | None = None,
    val_fraction: float | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
    resize: str = "squash",
) -> FolderIndex:
    r"""The images and labels of ``split`` of a labels file, and how to decode them.

    A labels file is one set of images: without ``val_fraction`` every split is every
    row (load a separate test file for testing); with it, ``"train"`` and ``"val"`` are
    the disjoint, stratified parts that an image folder's ``val_fraction`` gives.
    Classes are the labels sorted by name, or by value when every label is an integer
    (so ``"2"`` comes before ``"10"`` and label ``k`` is class index ``k`` for labels
    ``0`` to ``n - 1``). See :func:`~visionblocks.data.load_dataset`.

    Raises:
        DatasetNotFoundError: The CSV or an image it lists does not exist, or
            ``split="val"`` without ``val_fraction``.
        CorruptDatasetError: An image file Pillow cannot read.
        ValueError: A missing column, an empty path or label, an image listed twice, a
            single class, a bad ``image_suffix`` or ``val_fraction``, ``split="test"``
            with ``val_fraction``, or images of different sizes without ``image_size``.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> for i in range(4):
        ...     Image.new("L", (4, 4), 60 * i).save(folder / f"{i}.png")
        >>> _ = (folder / "labels.csv").write_text("id,label\n0,cat\n1,dog\n2,cat\n3,dog\n")
        >>> index = index_labels_file(folder / "labels.csv", "train", image_suffix=".png")
        >>> index.classes, index.labels, index.size, index.channels
        (('cat', 'dog'), (0, 1, 0, 1), (4, 4), 1)
        >>> len(index_labels_file(folder / "labels.csv", "val", image_suffix=".png",
        ...                       val_fraction=0.5).files)
        2
    """
    check_val_fraction(val_fraction)
    _check_split(path, split, val_fraction)
    if image_suffix is not None and (
        not isinstance(image_suffix, str) or not image_suffix.startswith(".")
    ):
        raise ValueError(
            f"image_suffix must be a file suffix starting with '.', e.g. '.png'; got "
            f"{image_suffix!r}."
        )
    if not path.is_file():
        raise DatasetNotFoundError(f"labels file {path} does not exist.")
    base = root if root is not None else path.parent
    entries = _read_rows(path, base, image_suffix or "", root is not None)
    names = {e.class_name for e in entries}
    integers = all(_is_integer(name) for name in names)
    classes = sorted(names, key=int) if integers else sorted(names)
    if len(classes) < 2:
        found = f"only the label {classes[0]!r}" if classes else "no rows"
        raise ValueError(
            f"{path} has {found}; a classifier needs at least two classes (one label per "
            f"row, under a header such as image,label)."
        )
    return index_entries(
        entries, entries, classes, split=split, val_fraction=val_fraction, seed=seed,
        image_size=image_size, resize=resize, name=f"{path}/{split}",
    )  # fmt: skip


def _check_split(path: Path, split: str, val_fraction: float | None) -> None:
    if split == "val" and val_fraction is None:
        raise DatasetNotFoundError(
            f"{path} is one set of images with no validation part; pass val_fraction=0.2 to "
            f"hold out a stratified 20% of its rows (the same fraction and seed with "
            f"split='train' gives the rest)."
        )
    if split == "test" and val_fraction is not None:
        raise ValueError(
            f"val_fraction splits a labels file into 'train' and 'val'; split='test' reads "
            f"every row of {path}, so drop val_fraction={val_fraction} (or load the test "
            f"labels file)."
        )


def _is_integer(text: str) -> bool:
    return text.lstrip("-").isdigit() and text.isascii()


def _column(header: list[str], accepted: tuple[str, ...], what: str, path: Path) -> int:
    names = [h.strip().lower() for h in header]
    for name in accepted:
        if name in names:
            return names.index(name)
    raise ValueError(
        f"{path} has no {what} column: its first row is {','.join(header)!r}, which must be "
        f"a header with a {what} column named {' or '.join(accepted)} (e.g. image,label)."
    )


def _read_rows(path: Path, base: Path, suffix: str, root_given: bool) -> list[ImageEntry]:
    """Every row of the CSV as an entry (image header read), or the first problem found."""
    # utf-8-sig: spreadsheet programs start a CSV with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        image_col = _column(header, IMAGE_COLUMNS, "image", path)
        label_col = _column(header, LABEL_COLUMNS, "label", path)
        width = max(image_col, label_col) + 1
        entries: list[ImageEntry] = []
        first_line: dict[Path, int] = {}
        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue  # a blank line
            if len(row) < width:
                raise ValueError(
                    f"{path} line {line} has {len(row)} field(s) but the {header[label_col]!r} "
                    f"column is field {label_col + 1}; every row needs an image and a label."
                )
            name, label = row[image_col].strip(), row[label_col].strip()
            if not name:
                raise ValueError(
                    f"{path} line {line} has an empty image path; fill it or delete the row."
                )
            if not label:
                raise ValueError(
                    f"{path} line {line} has an empty label for the image {name!r}; label it "
                    f"or delete the row."
                )
            image = base / (name + suffix)
            _check_file(image, path, line, name, suffix, root_given)
            if image in first_line:
                raise ValueError(
                    f"{path} line {line} lists {name!r} again (first on line "
                    f"{first_line[image]}); a repeated image would be both trained and "
                    f"validated on. Delete one of the rows."
                )
            first_line[image] = line
            entries.append(read_entry(image, label))
    return entries


def _check_file(
    image: Path, path: Path, line: int, name: str, suffix: str, root_given: bool
) -> None:
    if image.is_file():
        return
    if image.is_symlink():
        raise DatasetNotFoundError(
            f"{path} line {line}: {image} is a broken symbolic link (its target "
            f"{os.readlink(image)} does not exist); point it at the image or delete the row."
        )
    found = [s for s in IMAGE_SUFFIXES if image.with_name(image.name + s).is_file()]
    if not suffix and found:
        fix = f"the file {image.name}{found[0]} exists: pass image_suffix={found[0]!r}"
    elif root_given:
        fix = "check the path and root"
    else:
        fix = "paths are relative to the CSV's folder; pass root=<the folder they are relative to>"
    raise DatasetNotFoundError(
        f"{path} line {line}: the image {name + suffix!r} is not at {image}; {fix}."
    )
