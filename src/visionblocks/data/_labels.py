"""Labels files: a CSV with one image path and its label (or labels) per row (the Kaggle layout).

The first row is a header naming the columns, e.g. ``image,label`` or ``id,label``;
other columns are ignored. A ``labels`` or ``tags`` column instead of ``label`` makes the
file multi-label (Kaggle's "space-separated tags", e.g. ``image_name,tags`` with
``haze primary water``): each row lists any number of labels, separated by spaces, or
by ``|`` when a label name has a space (a file with a ``|`` in that column is split on
``|`` only); an empty field is an image with none of the labels. Paths are relative to
``root`` (default: the CSV's folder), and ``image_suffix`` is added to each when the
column holds ids rather than file names (``id`` ``3f2a`` is the file ``3f2a.png``). The result is a
:class:`~visionblocks.data._folder.FolderIndex`, made by the function image folders use
(``index_entries``), so a labels file is read in memory or streamed, sized, and split
into ``train``/``val`` by a stratified, seeded ``val_fraction`` exactly as a folder is.

Every problem is found before any pixel is decoded and named in one line with the CSV's
line number: a missing column, a missing image file (and the suffix that would find
it), an empty path or label, an image listed twice (it would sit in both train and
val), and a single class.

A multi-label file is split by a seeded random ``val_fraction`` of its rows (images
carry several labels, so there is no per-class stratum; iterative stratification would
balance the labels better, at a cost a held-out set rarely needs), checked so that every
label has a training image; a label left without a validation image is warned about,
as its average precision cannot be measured there.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

from visionblocks.data._errors import DatasetNotFoundError
from visionblocks.data._folder import (
    IMAGE_SUFFIXES,
    FolderIndex,
    ImageEntry,
    check_val_fraction,
    decoded_shape,
    index_entries,
    read_entry,
)

__all__ = [
    "IMAGE_COLUMNS",
    "LABEL_COLUMNS",
    "MULTILABEL_COLUMNS",
    "index_labels_file",
    "is_labels_file",
]

IMAGE_COLUMNS = ("image", "id", "image_id", "image_name", "file", "filename", "path")
"""Header names (any case) of the column of image paths, in order of preference."""
LABEL_COLUMNS = ("label", "class")
"""Header names (any case) of the column of labels, in order of preference."""
MULTILABEL_COLUMNS = ("labels", "tags")
"""Header names (any case) of a column of several labels per row (used when the header has
no :data:`LABEL_COLUMNS` column): the file is multi-label."""


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
    the disjoint, stratified parts that an image folder's ``val_fraction`` gives (a
    multi-label file: a seeded random share of the rows, every label kept in training;
    see the module notes). Classes are the labels sorted by name, or by value when every
    label is an integer (so ``"2"`` comes before ``"10"`` and label ``k`` is class index
    ``k`` for labels ``0`` to ``n - 1``). See :func:`~visionblocks.data.load_dataset`.

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
        >>> _ = (folder / "tags.csv").write_text("id,tags\n0,cat sofa\n1,dog\n2,\n3,cat dog\n")
        >>> tags = index_labels_file(folder / "tags.csv", "train", image_suffix=".png")
        >>> tags.classes, tags.label_sets
        (('cat', 'dog', 'sofa'), ((0, 2), (1,), (), (0, 1)))
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
    entries, tags = _read_rows(path, base, image_suffix or "", root is not None)
    if tags is not None:
        return _multilabel_index(
            path, entries, tags, split, val_fraction=val_fraction, seed=seed,
            image_size=image_size, resize=resize,
        )  # fmt: skip
    classes = _sorted_names({e.class_name for e in entries})
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


def _sorted_names(names: set[str]) -> list[str]:
    """Labels sorted by name, or by value when every one is an integer."""
    return sorted(names, key=int) if all(_is_integer(n) for n in names) else sorted(names)


def _multilabel_index(
    path: Path,
    entries: list[ImageEntry],
    tags: list[list[str]],
    split: str,
    *,
    val_fraction: float | None,
    seed: int,
    image_size: tuple[int, int] | None,
    resize: str,
) -> FolderIndex:
    """The :class:`FolderIndex` of a multi-label file: ``label_sets`` instead of ``labels``."""
    classes = _sorted_names({t for row in tags for t in row})
    if not classes:
        raise ValueError(
            f"{path} has no labels in its {'multi-label' if entries else 'empty'} column; "
            f"list each image's labels, separated by spaces."
        )
    index_of = {name: k for k, name in enumerate(classes)}
    label_sets = [tuple(sorted(index_of[t] for t in row)) for row in tags]
    chosen = list(range(len(entries)))
    if val_fraction is not None and split in ("train", "val"):
        held = _held_out_rows(path, label_sets, classes, val_fraction, seed)
        chosen = [i for i in chosen if (i in held) == (split == "val")]
    channels, size = decoded_shape(entries, image_size)
    return FolderIndex(
        files=tuple(entries[i].path for i in chosen), labels=(), classes=tuple(classes),
        channels=channels, size=size, name=f"{path}/{split}", resize=resize,
        label_sets=tuple(label_sets[i] for i in chosen),
    )  # fmt: skip


def _held_out_rows(
    path: Path,
    label_sets: Sequence[tuple[int, ...]],
    classes: Sequence[str],
    val_fraction: float,
    seed: int,
) -> set[int]:
    """Rows of a multi-label file held out for validation: ``round(fraction * n)``, seeded."""
    count = int(val_fraction * len(label_sets) + 0.5)  # round half up, as held_out
    if not 1 <= count < len(label_sets):
        raise ValueError(
            f"val_fraction={val_fraction} of the {len(label_sets)} rows of {path} holds out "
            f"{count}; it must leave at least one row for each of train and val."
        )
    order = torch.randperm(len(label_sets), generator=torch.Generator().manual_seed(seed))
    held = set(order[:count].tolist())
    in_train = [0] * len(classes)
    in_val = [0] * len(classes)
    for i, labels in enumerate(label_sets):
        for k in labels:
            (in_val if i in held else in_train)[k] += 1
    missing = [k for k, n in enumerate(in_train) if n == 0]
    if missing:
        k = missing[0]
        raise ValueError(
            f"val_fraction={val_fraction} with seed={seed} holds out every image of the label "
            f"{classes[k]!r} ({in_val[k]} in {path}), which training would never see; use "
            f"another seed or a smaller val_fraction, or add images of it."
        )
    unseen = [classes[k] for k, n in enumerate(in_val) if n == 0]
    if unseen:
        warnings.warn(
            f"val_fraction={val_fraction} of {path} holds out no image of the label(s) "
            f"{', '.join(map(repr, unseen[:5]))}: their average precision cannot be measured "
            f"on validation (mAP averages the labels that are there).",
            UserWarning,
            stacklevel=5,
        )
    return held


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
    several = (
        f", or {' or '.join(MULTILABEL_COLUMNS)} for several labels per row"
        if accepted == LABEL_COLUMNS
        else ""
    )
    raise ValueError(
        f"{path} has no {what} column: its first row is {','.join(header)!r}, which must be "
        f"a header with a {what} column named {' or '.join(accepted)}{several} (e.g. "
        f"image,label)."
    )


def read_csv_rows(path: Path) -> tuple[list[tuple[int, str, str]], bool]:
    """The rows of a labels file: ``(line, image, label field)``, and whether it is multi-label.

    The one reader of the CSV's layout (header, columns, blank lines, empty fields) for
    :func:`index_labels_file` and ``inspect``; no image is looked at.
    """
    # utf-8-sig: spreadsheet programs start a CSV with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        image_col = _column(header, IMAGE_COLUMNS, "image", path)
        names = [h.strip().lower() for h in header]
        multilabel = not set(LABEL_COLUMNS) & set(names) and bool(
            set(MULTILABEL_COLUMNS) & set(names)
        )
        label_col = _column(
            header, MULTILABEL_COLUMNS if multilabel else LABEL_COLUMNS, "label", path
        )
        width = max(image_col, label_col) + 1
        rows: list[tuple[int, str, str]] = []
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
            if not label and not multilabel:  # a multi-label row may have no label
                raise ValueError(
                    f"{path} line {line} has an empty label for the image {name!r}; label it "
                    f"or delete the row."
                )
            rows.append((line, name, label))
    return rows, multilabel


def _read_rows(
    path: Path, base: Path, suffix: str, root_given: bool
) -> tuple[list[ImageEntry], list[list[str]] | None]:
    """Every row of the CSV as an entry (image header read), or the first problem found.

    A multi-label file's entries hold each row's raw labels field as ``class_name``; its
    labels, split, come second (``None`` for a file of one label per row).
    """
    rows, multilabel = read_csv_rows(path)
    entries: list[ImageEntry] = []
    first_line: dict[Path, int] = {}
    for line, name, label in rows:
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
    if not multilabel:
        return entries, None
    separator = "|" if any("|" in e.class_name for e in entries) else None
    tags = [[t.strip() for t in e.class_name.split(separator) if t.strip()] for e in entries]
    return entries, [list(dict.fromkeys(row)) for row in tags]  # a repeated label counts once


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
