"""``inspect_data``: look at a dataset before training on it.

Counts images per class and split, the imbalance ratio, image sizes and modes, finds
the files the decoder refuses and the images that are exact copies of each other, in
one split or across train, val and test (leakage). :class:`DataReport` holds the answer.

**What "exact duplicate" means.** Two images are duplicates when their decoded pixels
are identical: same channels, height, width and values, after the rules of
:func:`~visionblocks.data.decode_image_file` (EXIF orientation applied, palette
colours, alpha dropped, 16-bit gray to 8-bit). So the same picture saved twice under
two names, or once as PNG and once as a lossless BMP, is a duplicate; the same photo
re-compressed as JPEG, resized or cropped is not (its pixels differ: that would be a
near-duplicate, which this does not look for). Each image's pixels are hashed with
BLAKE2b (128-bit digests, so a collision between different images has a probability
of about ``n**2 / 2**129``: nil) and the digests are compared.

**Why every file is decoded.** A header tells the size and mode, but a truncated file
has a whole header: only decoding finds it, and the decoder used is the one the
loaders and ``predict`` use, so a file is unreadable here exactly when it would stop
``load_dataset``. A file is opened once and decoded once, in this process: with
small images the cost is Python's per-file overhead, which threads do not share out
(the GIL) and two worker processes did not beat one on the 2-core development machine
(``benchmarks/bench_inspect.py`` measures both; its output is in ``docs/own_data.rst``).
Images already in memory are hashed straight from their tensor, with no decoding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from visionblocks.data._data_report import (
    DEFAULT_MAX_IMBALANCE,
    DataReport,
    DuplicateGroup,
    ImageRef,
    SplitReport,
)
from visionblocks.data._dataset import ImageDataset
from visionblocks.data._decode import decode_image_file
from visionblocks.data._inspect_sources import InspectSplit, folder_splits, labels_file_splits
from visionblocks.data._labels import is_labels_file
from visionblocks.data._load import DATASETS, load_dataset
from visionblocks.data._stream import StreamingDataset
from visionblocks.data.contract import is_in_memory, tensors_of

__all__ = ["inspect_data"]

# The built-in datasets' splits (a validation set is drawn from train by the caller).
_NAMED_SPLITS = ("train", "test")


def inspect_data(
    data: Any,
    *,
    root: str | os.PathLike[str] | None = None,
    val_fraction: float | None = None,
    seed: int = 0,
    image_suffix: str | None = None,
    max_imbalance: float = DEFAULT_MAX_IMBALANCE,
) -> DataReport:
    """Report what would go wrong in training on ``data``, before training on it.

    Per split: images per class and the imbalance ratio (largest class over smallest),
    image sizes and modes, and the files the decoder refuses; across splits: the groups
    of images with identical decoded pixels, within a split and between splits (a test
    image that is also a training image measures memory). Files are not changed and
    nothing is raised for a bad file: it is reported. See the module documentation for
    what counts as a duplicate. Its time is ``benchmarks/bench_inspect.py``'s: seconds
    for 10,000 small PNG files, a fraction of a second for 70,000 images in memory.

    Args:
        data: What :func:`~visionblocks.data.load_dataset` takes: a built-in dataset's
            name (its train and test splits), an image folder (its ``train/``, ``val/``,
            ``test/`` folders, or its class folders as one training split) or a labels
            file (``.csv``, one split). Or data already loaded: an
            :class:`ImageDataset`, an ``(images, labels)`` pair, a
            :class:`StreamingDataset` (its files are read), or a dict of those by split
            name, the training split first.
        root: Where a built-in dataset's files are, or a labels file's images are
            relative to (as for :func:`~visionblocks.data.load_dataset`).
        val_fraction: Image folders without ``val/`` and labels files: report the
            ``"train"`` and ``"val"`` parts that ``load_dataset`` with this fraction and
            ``seed`` makes (copies inside the training images would end up on both sides).
        seed: Seed of the ``val_fraction`` split.
        image_suffix: Labels files: added to every path of the image column.
        max_imbalance: Imbalance ratio of the training split above which
            :meth:`DataReport.warnings` warns.

    Returns:
        The :class:`DataReport`: ``print`` it for the summary, ``.warnings()`` for the
        problems, ``.to_dict()`` for JSON, ``.plot()`` for a figure.

    Raises:
        DatasetNotFoundError: The dataset or folder is not there, or holds no images.
        ValueError: A bad argument, or a labels file without an image or label column.
        TypeError: ``data`` is none of the above.

    Example:
        >>> report = inspect_data("sample")
        >>> [(s.name, s.images) for s in report.splits], report.imbalance_ratio
        ([('train', 2000), ('test', 1000)], 1.0)
        >>> report.unreadable, report.duplicates, report.warnings()
        ((), (), [])
    """
    if not (isinstance(max_imbalance, int | float) and max_imbalance >= 1):
        raise ValueError(
            f"max_imbalance must be a ratio >= 1 (largest class over smallest), e.g. 10; "
            f"got {max_imbalance!r}."
        )
    name, classes, splits = _resolve(data, root, val_fraction, seed, image_suffix)
    reports: list[SplitReport] = []
    digests: list[list[bytes | None]] = []
    for split in splits:
        report, found = _inspect_split(split, classes)
        reports.append(report)
        digests.append(found)
    return DataReport(
        name=name,
        classes=tuple(classes),
        splits=tuple(reports),
        duplicates=_duplicates(splits, digests, classes),
        max_imbalance=float(max_imbalance),
    )


def _resolve(
    data: Any,
    root: str | os.PathLike[str] | None,
    val_fraction: float | None,
    seed: int,
    image_suffix: str | None,
) -> tuple[str, list[str], list[InspectSplit]]:
    """``(name, classes, splits)`` of whatever ``data`` is."""
    if isinstance(data, str | os.PathLike):
        if image_suffix is not None and not is_labels_file(data):
            raise ValueError(
                f"image_suffix applies to labels files (a .csv); {str(data)!r} is not one, so "
                f"drop image_suffix={image_suffix!r}."
            )
        if is_labels_file(data):
            base = Path(root).expanduser() if root is not None else None
            path = Path(data).expanduser()
            return (str(data), *labels_file_splits(path, base, image_suffix, val_fraction, seed))
        named = isinstance(data, str) and (data.lower() in DATASETS or not Path(data).is_dir())
        if not named:
            return (str(data), *folder_splits(Path(data).expanduser(), val_fraction, seed))
        loaded = {
            s: load_dataset(data, s, root=root, val_fraction=val_fraction) for s in _NAMED_SPLITS
        }
        return (str(data), *_given(loaded))
    if root is not None or val_fraction is not None or image_suffix is not None:
        raise ValueError(
            "root, val_fraction and image_suffix say how to read a dataset by name, folder or "
            "labels file; data already loaded is inspected as it is, so drop them."
        )
    parts = dict(data) if isinstance(data, Mapping) else {"train": data}
    first = next(iter(parts.values()), None)
    name = first.name if isinstance(first, ImageDataset | StreamingDataset) else "data"
    return (name, *_given(parts))


def _given(parts: Mapping[str, Any]) -> tuple[list[str], list[InspectSplit]]:
    """Splits of data already loaded: in memory, or streamed (then its files are read)."""
    if not parts:
        raise ValueError("inspect_data got an empty dict; give at least one split.")
    splits: list[InspectSplit] = []
    classes: list[str] | None = None
    for name, part in parts.items():
        if isinstance(part, StreamingDataset):
            splits.append(InspectSplit(name, part.labels.tolist(), files=part.files))
        elif is_in_memory(part):
            images, labels = tensors_of(part)
            splits.append(InspectSplit(name, labels.tolist(), images=images))
        else:
            raise TypeError(
                f"inspect_data takes a dataset name, an image folder, a labels file, an "
                f"ImageDataset, an (images, labels) pair, a StreamingDataset or a dict of "
                f"those by split; got {type(part).__name__} for {name!r}."
            )
        if classes is None and isinstance(part, ImageDataset | StreamingDataset):
            classes = list(part.classes)
    top = max((max(s.labels) for s in splits if len(s.labels)), default=-1)
    if classes is None:
        classes = [str(k) for k in range(top + 1)]
    elif top >= len(classes):
        raise ValueError(
            f"labels go up to {top}, but the first split names {len(classes)} classes; give "
            f"splits with the same classes."
        )
    return classes, splits


def _inspect_split(
    split: InspectSplit, classes: Sequence[str]
) -> tuple[SplitReport, list[bytes | None]]:
    """The split's report and each image's pixel digest (``None`` for an unreadable file)."""
    counts = torch.bincount(torch.tensor(list(split.labels), dtype=torch.int64),
                            minlength=len(classes)).tolist()  # fmt: skip
    if split.images is not None:
        n, _, h, w = split.images.shape
        digests: list[bytes | None] = list(_digests(split.images))
        report = SplitReport(split.name, n, tuple(counts), {(h, w): n} if n else {},
                             {_memory_mode(split.images): n} if n else {})  # fmt: skip
        return report, digests
    sizes: dict[tuple[int, int], int] = {}
    modes: dict[str, int] = {}
    unreadable: list[tuple[ImageRef, str]] = []
    digests = []
    for i, path in enumerate(split.files):
        digest, size, mode, reason = _read_file(path)
        digests.append(digest)
        if reason is not None:
            label = classes[split.labels[i]]
            unreadable.append((ImageRef(split.name, i, label, path), reason))
            continue
        sizes[size] = sizes.get(size, 0) + 1
        modes[mode] = modes.get(mode, 0) + 1
    by_count = dict(sorted(sizes.items(), key=lambda kv: -kv[1]))
    modes = dict(sorted(modes.items(), key=lambda kv: -kv[1]))
    report = SplitReport(split.name, len(split.files), tuple(counts), by_count, modes,
                         tuple(unreadable))  # fmt: skip
    return report, digests


def _digests(images: torch.Tensor) -> list[bytes]:
    """One 128-bit BLAKE2b digest of each image's pixels (with its dtype and shape)."""
    if not len(images):
        return []
    prefix = hashlib.blake2b(f"{images.dtype}{tuple(images.shape[1:])}".encode(), digest_size=16)
    # (N, C*H*W) bytes; the copy only for non-contiguous images (a channels_last view).
    rows = images.reshape(len(images), -1).contiguous().view(torch.uint8).numpy()
    out = []
    for row in rows:
        hasher = prefix.copy()
        hasher.update(row)
        out.append(hasher.digest())
    return out


def _memory_mode(images: torch.Tensor) -> str:
    channels = images.shape[1]
    if images.dtype == torch.uint8 and channels in (1, 3):
        return "L" if channels == 1 else "RGB"
    return f"{channels} channel(s) {str(images.dtype).removeprefix('torch.')}"


def _read_file(
    path: Path,
) -> tuple[bytes | None, tuple[int, int], str, str | None]:
    """``(digest, (height, width), mode, None)`` of a decodable file, else the reason last."""
    try:
        with Image.open(path) as image:  # opened once: the mode from the header, then decoded
            mode = image.mode
            pixels = decode_image_file(image)
    except Exception as err:  # whatever Pillow raises on a file makes it unreadable
        return None, (0, 0), "", _unreadable_reason(path, err)
    # The digest _digests gives the image in a batch; without its per-batch reshapes.
    hasher = hashlib.blake2b(f"{pixels.dtype}{tuple(pixels.shape)}".encode(), digest_size=16)
    hasher.update(pixels.contiguous().numpy().data)
    return hasher.digest(), (pixels.shape[1], pixels.shape[2]), mode, None


def _unreadable_reason(path: Path, first: Exception) -> str:
    """Why ``path`` cannot be read: missing, or the decoder's one-line error (names the fix)."""
    if not path.exists():  # only now: a stat per file would cost as much as the hashing
        link = f"a broken symbolic link (to {os.readlink(path)})" if path.is_symlink() else ""
        return f"{path} is {link or 'missing'}; restore it or remove it from the dataset."
    try:
        decode_image_file(path)
    except Exception as err:
        return " ".join(str(err).split()) or type(err).__name__
    return f"{path}: {type(first).__name__}: {first}"  # pragma: no cover - decodes from a path


def _duplicates(
    splits: Sequence[InspectSplit],
    digests: Sequence[Sequence[bytes | None]],
    classes: Sequence[str],
) -> tuple[DuplicateGroup, ...]:
    """Groups of two or more images with the same digest, ordered by their first image."""
    first: dict[bytes, tuple[int, int]] = {}
    copies: dict[bytes, list[tuple[int, int]]] = {}
    for s, found in enumerate(digests):
        for i, digest in enumerate(found):
            if digest is None:
                continue
            if digest in first:
                copies.setdefault(digest, [first[digest]]).append((s, i))
            else:
                first[digest] = (s, i)

    def ref(s: int, i: int) -> ImageRef:
        split = splits[s]
        path = split.files[i] if split.images is None else None
        return ImageRef(split.name, i, classes[split.labels[i]], path)

    groups = sorted(copies.values())
    return tuple(DuplicateGroup(tuple(ref(s, i) for s, i in group)) for group in groups)
