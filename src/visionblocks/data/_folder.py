"""Image folders: find the files of a split, decide channels and size once, read them.

A folder holds one subfolder per class (torchvision's ``ImageFolder`` layout), either
directly or under ``train/``, ``val/`` and ``test/``. Everything that can be decided
without decoding pixels is decided here, once for the whole folder, from the image
headers (Pillow reads only the first bytes of a file): the classes, the files and
labels of each split, the number of channels and the image size. Decoding is
:func:`~visionblocks.data.decode_image_file`, shared by the in-memory reader, the
streaming dataset and :func:`~visionblocks.inference.predict`, so that all three give
the same pixels.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from visionblocks.data._decode import decode_image_file, image_header
from visionblocks.data._errors import DatasetNotFoundError

__all__ = [
    "IMAGE_SUFFIXES",
    "SPLITS",
    "FolderIndex",
    "ImageEntry",
    "check_val_fraction",
    "decode_image_file",
    "decoded_shape",
    "held_out",
    "image_size_pair",
    "index_entries",
    "index_folder",
    "read_entry",
    "read_images",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FolderIndex:
    """The files of one split of an image folder (or labels file), and how to decode them.

    Attributes:
        files: Image files, in label-then-path order (a labels file: in its row order).
        labels: Class index of each file.
        classes: Class names (sorted subfolder names); ``classes[label]`` names a label.
        channels: 1 if every image of the folder (all splits) is grayscale, else 3.
        size: ``(height, width)`` every image is decoded to.
        name: ``"<folder>/<split>"``.
        resize: How images of another size are brought to ``size`` (a rule of
            :func:`~visionblocks.data.resize_image`).
        label_sets: Multi-label data (a labels file with several labels per row): the
            class indices of each file, and ``labels`` is empty; ``None`` otherwise.
    """

    files: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    channels: int
    size: tuple[int, int]
    name: str
    resize: str = "squash"
    label_sets: tuple[tuple[int, ...], ...] | None = None

    @property
    def decoded_bytes(self) -> int:
        """Bytes of all images of the split decoded as uint8 ``(C, H, W)``."""
        return len(self.files) * self.channels * self.size[0] * self.size[1]


def image_size_pair(image_size: object) -> tuple[int, int] | None:
    """``image_size`` as ``(height, width)``: ``N`` means ``(N, N)``; ``None`` stays ``None``.

    Example:
        >>> image_size_pair(32), image_size_pair((24, 32)), image_size_pair(None)
        ((32, 32), (24, 32), None)
    """
    if image_size is None:
        return None
    pair = (image_size, image_size) if isinstance(image_size, int) else image_size
    if (
        not isinstance(pair, tuple | list)
        or len(pair) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair)
    ):
        raise ValueError(
            f"image_size must be a positive int N (N x N) or a (height, width) pair; got "
            f"{image_size!r}."
        )
    return (pair[0], pair[1])


@dataclass
class ImageEntry:
    """One image file, its class name, and what its header says: ``(height, width)``, gray."""

    path: Path
    class_name: str
    size: tuple[int, int]  # (height, width)
    gray: bool


def index_folder(
    root: Path,
    split: str,
    *,
    val_fraction: float | None = None,
    image_size: tuple[int, int] | None = None,
    seed: int = 0,
    resize: str = "squash",
) -> FolderIndex:
    """Find the files of ``split`` in an image folder and decide channels and size.

    See :func:`~visionblocks.data.load_dataset` for the layout and the rules.

    Raises:
        DatasetNotFoundError: The split does not exist in this folder, has no images, or
            a class folder holds a broken symbolic link.
        CorruptDatasetError: A file with an image suffix is not an image Pillow can read.
        ValueError: Bad ``val_fraction``, an empty class folder, fewer than two classes,
            images of different sizes without ``image_size``, an image over Pillow's
            decompression-bomb limit, or one with 32-bit pixels.
    """
    check_val_fraction(val_fraction)
    present = [s for s in SPLITS if (root / s).is_dir()]
    folders = {s: root / s for s in present} if present else {"train": root}
    _check_split_exists(root, split, folders, val_fraction)
    classes = _class_names(folders["train"] if "train" in folders else folders[split])
    entries = {name: _scan(folder, classes) for name, folder in folders.items()}
    source = "train" if split == "val" and "val" not in folders else split
    return index_entries(
        entries[source], [e for found in entries.values() for e in found], classes,
        split=split, val_fraction=None if "val" in folders else val_fraction, seed=seed,
        image_size=image_size, resize=resize, name=f"{root}/{split}",
    )  # fmt: skip


def check_val_fraction(val_fraction: object) -> None:
    """A ``ValueError`` unless ``val_fraction`` is ``None`` or a number in (0, 1)."""
    if val_fraction is not None and not (
        isinstance(val_fraction, int | float) and 0 < val_fraction < 1
    ):
        raise ValueError(
            f"val_fraction must be a fraction in (0, 1), e.g. 0.2; got {val_fraction!r}."
        )


def index_entries(
    entries: Sequence[ImageEntry],
    everything: Sequence[ImageEntry],
    classes: Sequence[str],
    *,
    split: str,
    val_fraction: float | None,
    seed: int,
    image_size: tuple[int, int] | None,
    resize: str,
    name: str,
) -> FolderIndex:
    """The :class:`FolderIndex` of ``split`` from the images of its source.

    ``entries`` are the images ``split`` is drawn from; ``everything`` every image of the
    dataset (all splits), which decides the channels and, without ``image_size``, the
    size. With ``val_fraction``, ``"train"`` and ``"val"`` are the two disjoint parts of
    ``entries`` that :func:`held_out` draws. The one place both image folders and labels
    files make their splits, so the two split alike.
    """
    channels, size = decoded_shape(everything, image_size)
    chosen = list(entries)
    if val_fraction is not None and split in ("train", "val"):
        held = held_out(chosen, classes, val_fraction, seed)
        chosen = [e for i, e in enumerate(chosen) if (i in held) == (split == "val")]
    label_of = {class_name: i for i, class_name in enumerate(classes)}
    return FolderIndex(
        files=tuple(e.path for e in chosen),
        labels=tuple(label_of[e.class_name] for e in chosen),
        classes=tuple(classes),
        channels=channels,
        size=size,
        name=name,
        resize=resize,
    )


def decoded_shape(
    everything: Sequence[ImageEntry], image_size: tuple[int, int] | None
) -> tuple[int, tuple[int, int]]:
    """``(channels, (height, width))`` the images of a dataset decode to, from their headers.

    Grayscale (1) only if every image is, else RGB (3); ``image_size``, else the one size
    they all share.
    """
    channels = 1 if all(e.gray for e in everything) else 3
    return channels, image_size or _common_size(everything)


def _check_split_exists(
    root: Path, split: str, folders: dict[str, Path], val_fraction: float | None
) -> None:
    if split == "test" and "test" not in folders:
        raise DatasetNotFoundError(
            f"{root} has no test/ subfolder, so it has no test split (testing on training "
            f"images would measure nothing); add {root}/test/<class>/<image>, or use "
            f"split='val' with val_fraction=0.2."
        )
    if "val" in folders and val_fraction is not None:
        raise ValueError(
            f"{root} has a val/ subfolder, which is the validation split; drop "
            f"val_fraction={val_fraction} (it would hold out part of train/ as well)."
        )
    if split == "val" and "val" not in folders and val_fraction is None:
        raise DatasetNotFoundError(
            f"{root} has no val/ subfolder; pass val_fraction=0.2 to hold out a stratified "
            f"20% of the training images (the same fraction and seed with split='train' "
            f"gives the rest)."
        )
    if split != "test" and "train" not in folders:
        raise DatasetNotFoundError(
            f"{root} has {'/, '.join(folders)}/ but no train/ subfolder; add "
            f"{root}/train/<class>/<image>, or pass {root}/{next(iter(folders))} itself."
        )


def _class_names(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        found = f"only the class {classes[0]!r}" if classes else "no class subfolders"
        raise ValueError(
            f"{folder} has {found}; a classifier needs at least two classes, laid out as "
            f"{folder}/<class name>/<image file>."
        )
    return classes


def _scan(folder: Path, classes: list[str]) -> list[ImageEntry]:
    """Every image of ``folder``'s class subfolders, with its size and colour from its header."""
    extra = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [name for name in extra if name not in classes]
    if unknown:
        raise ValueError(
            f"{folder} has the class folder {unknown[0]!r}, which the training split does not "
            f"have (its classes: {', '.join(classes)}); rename or remove it."
        )
    entries: list[ImageEntry] = []
    skipped: list[Path] = [p for p in folder.iterdir() if p.is_file() and p.name[0] != "."]
    for name in extra:
        found = sorted((folder / name).rglob("*"))
        _check_links(found)
        files = [p for p in found if p.is_file()]
        images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        skipped += [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES and p.name[0] != "."]
        if not images:
            raise ValueError(
                f"the class folder {folder / name} has no images ({', '.join(IMAGE_SUFFIXES)}); "
                f"add images or remove the folder."
            )
        entries += [read_entry(p, name) for p in images]
    if skipped:
        warnings.warn(
            f"{folder}: skipped {len(skipped)} file(s) that are not images in a class folder "
            f"(suffix not in {', '.join(IMAGE_SUFFIXES)}), e.g. {skipped[0]}.",
            UserWarning,
            stacklevel=2,
        )
    return entries


def _check_links(paths: Sequence[Path]) -> None:
    # Path.is_file() is False for a link whose target is gone, which would drop the image
    # from the dataset without a word.
    for path in paths:
        if path.is_symlink() and not path.exists() and not path.name.startswith("."):
            raise DatasetNotFoundError(
                f"{path} is a broken symbolic link (its target {os.readlink(path)} does not "
                f"exist); point it at the image or delete it."
            )


def read_entry(path: Path, class_name: str) -> ImageEntry:
    """The :class:`ImageEntry` of ``path``, from its header (the pixels are not decoded)."""
    size, channels = image_header(path)
    return ImageEntry(path, class_name, size, channels == 1)


def _common_size(entries: Sequence[ImageEntry]) -> tuple[int, int]:
    first = entries[0]
    for entry in entries:
        if entry.size != first.size:
            (h1, w1), (h2, w2) = first.size, entry.size
            raise ValueError(
                f"images differ in size ({first.path} is {w1}x{h1}, {entry.path} is {w2}x{h2}); "
                f"pass image_size=N (or (height, width)) to resize them all."
            )
    return first.size


def held_out(
    entries: Sequence[ImageEntry], classes: Sequence[str], val_fraction: float, seed: int
) -> set[int]:
    """Indices of the stratified validation images: ``round(fraction * n_c)`` of each class."""
    generator = torch.Generator().manual_seed(seed)
    held: set[int] = set()
    for name in classes:
        members = [i for i, e in enumerate(entries) if e.class_name == name]
        count = int(val_fraction * len(members) + 0.5)  # round half up
        if count < 1:
            raise ValueError(
                f"val_fraction={val_fraction} is too small for class {name!r}: its "
                f"{len(members)} images give no validation image; use val_fraction >= "
                f"{0.5 / len(members):.3g}."
            )
        if count >= len(members):
            raise ValueError(
                f"val_fraction={val_fraction} leaves no training image of class {name!r} "
                f"({len(members)} images); use a smaller val_fraction or add images."
            )
        order = torch.randperm(len(members), generator=generator)[:count]
        held.update(members[i] for i in order.tolist())
    return held


def read_images(index: FolderIndex) -> torch.Tensor:
    """Decode every file of ``index`` into one ``(N, C, H, W)`` uint8 tensor.

    Example:
        >>> index = FolderIndex((), (), ("a", "b"), 1, (2, 2), "empty")
        >>> read_images(index).shape
        torch.Size([0, 1, 2, 2])
    """
    images = torch.empty((len(index.files), index.channels, *index.size), dtype=torch.uint8)
    for i, path in enumerate(index.files):
        images[i] = decode_image_file(path, index.channels, index.size, index.resize)
    return images
