"""Where ``inspect_data`` finds the images of each split: an image folder or a labels file.

Both are listed as :func:`~visionblocks.data.load_dataset` lists them (the same files,
labels, classes and ``val_fraction`` split, by the same ``held_out``), but without
stopping at what the report is there to show: an unreadable or missing file is kept
(and reported), an empty class folder or a class missing from a split is counted as
zero images. Nothing is decoded here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from visionblocks.data._errors import DatasetNotFoundError
from visionblocks.data._folder import (
    IMAGE_SUFFIXES,
    SPLITS,
    ImageEntry,
    check_val_fraction,
    held_out,
)
from visionblocks.data._labels import read_csv_rows

__all__ = ["InspectSplit", "folder_splits", "labels_file_splits"]


@dataclass(frozen=True)
class InspectSplit:
    """One split to inspect: images in memory, or image files. ``labels`` index classes."""

    name: str
    labels: Sequence[int]
    images: torch.Tensor | None = None  # (N, C, H, W)
    files: Sequence[Path] = ()


def folder_splits(
    root: Path, val_fraction: float | None, seed: int
) -> tuple[list[str], list[InspectSplit]]:
    """The splits of an image folder, listed as :func:`~visionblocks.data.load_dataset` lists them.

    Unlike ``load_dataset`` it does not stop at a problem it can report: an empty class
    folder, a class missing from a split or an unreadable file.
    """
    check_val_fraction(val_fraction)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {root} does not exist.")
    present = [s for s in SPLITS if (root / s).is_dir()]
    folders = {s: root / s for s in present} if present else {"train": root}
    if "val" in folders and val_fraction is not None:
        raise ValueError(
            f"{root} has a val/ subfolder, which is the validation split; drop "
            f"val_fraction={val_fraction}."
        )
    listed = {split: _class_files(folder) for split, folder in folders.items()}
    classes = sorted({c for found in listed.values() for c in found})
    entries = {split: [(p, c) for c, paths in found.items() for p in paths]
               for split, found in listed.items()}  # fmt: skip
    if not any(entries.values()):
        raise DatasetNotFoundError(
            f"{root} has no images ({', '.join(IMAGE_SUFFIXES)}) in class folders, laid out "
            f"as {root}/<class>/<image> or {root}/train/<class>/<image>."
        )
    if val_fraction is not None and "train" in entries:
        entries.update(_split_off_val(entries["train"], val_fraction, seed))
        entries = {s: entries[s] for s in SPLITS if s in entries}
    label = {c: k for k, c in enumerate(classes)}
    splits = [
        InspectSplit(s, [label[c] for _, c in found], files=[p for p, _ in found])
        for s, found in entries.items()
    ]
    return classes, splits


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """``{class: image files}`` of a split folder, in the order of ``load_dataset``'s index.

    Broken symbolic links are kept (as unreadable files), and empty class folders too.
    """
    found: dict[str, list[Path]] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found[sub.name] = [
            p
            for p in sorted(sub.rglob("*"))
            if p.suffix.lower() in IMAGE_SUFFIXES and (p.is_file() or p.is_symlink())
        ]
    return found


def _split_off_val(
    train: list[tuple[Path, str]], val_fraction: float, seed: int
) -> dict[str, list[tuple[Path, str]]]:
    """The ``train`` and ``val`` parts that ``load_dataset(val_fraction=..., seed=...)`` makes."""
    classes = list(dict.fromkeys(c for _, c in train))
    # held_out reads only the class names of the entries; size and colour are not needed.
    entries = [ImageEntry(path, c, (0, 0), False) for path, c in train]
    held = held_out(entries, classes, val_fraction, seed)
    return {
        "train": [e for i, e in enumerate(train) if i not in held],
        "val": [e for i, e in enumerate(train) if i in held],
    }


def labels_file_splits(
    path: Path,
    base: Path | None,
    image_suffix: str | None,
    val_fraction: float | None,
    seed: int,
) -> tuple[list[str], list[InspectSplit]]:
    """The rows of a labels file as one split (or train and val), missing files kept."""
    check_val_fraction(val_fraction)
    if not path.is_file():
        raise DatasetNotFoundError(f"labels file {path} does not exist.")
    folder = base if base is not None else path.parent
    rows = [(folder / (image + (image_suffix or "")), label) for image, label in _rows(path)]
    labels = {label for _, label in rows}
    integers = all(label.lstrip("-").isdigit() and label.isascii() for label in labels)
    classes = sorted(labels, key=int) if integers else sorted(labels)
    entries = {"train": rows}
    if val_fraction is not None:
        entries = _split_off_val(rows, val_fraction, seed)
    index = {c: k for k, c in enumerate(classes)}
    return classes, [
        InspectSplit(s, [index[c] for _, c in found], files=[p for p, _ in found])
        for s, found in entries.items()
    ]


def _rows(path: Path) -> list[tuple[str, str]]:
    """``(image, label)`` of every non-blank row under the header of a labels file."""
    rows, multilabel = read_csv_rows(path)
    if multilabel:
        raise ValueError(
            f"{path} is a multi-label labels file (a tags/labels column); inspect reads files "
            f"of one label per row (image,label) for now."
        )
    return [(name, label) for _, name, label in rows]
