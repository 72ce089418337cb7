"""``load_dataset``: every dataset by name or folder, in memory or (large folders) streamed."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Literal, overload

import torch

from visionblocks.data._cifar import CIFAR_LAYOUT, read_cifar
from visionblocks.data._dataset import ImageDataset, multi_hot
from visionblocks.data._errors import CorruptDatasetError, DatasetNotFoundError
from visionblocks.data._folder import (
    SPLITS,
    FolderIndex,
    image_size_pair,
    index_folder,
    read_images,
)
from visionblocks.data._idx import read_idx
from visionblocks.data._labels import index_labels_file, is_labels_file
from visionblocks.data._resize import check_resize_rule
from visionblocks.data._stream import StreamingDataset, streams_by_default

__all__ = ["DATASETS", "FASHION_MNIST_CLASSES", "default_root", "load_dataset"]

DATASETS = ("sample", "fashion-mnist", "mnist", "cifar10", "cifar100")

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_MNIST_CLASSES = [str(d) for d in range(10)]
# Accepted spellings -> canonical dataset name.
_ALIASES = {name: name for name in DATASETS} | {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
}

# Where the Debian packages (apt-get install dataset-fashion-mnist) put the IDX files.
_SYSTEM_DIRS = {
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}
# The subfolder torchvision's download writes the raw IDX files to, under its root.
_TORCHVISION_DIRS = {"fashion-mnist": "FashionMNIST/raw", "mnist": "MNIST/raw"}


def default_root() -> Path:
    """Default dataset root: ``$VISIONBLOCKS_DATA`` if set, else ``./data``."""
    return Path(os.environ.get("VISIONBLOCKS_DATA", "data")).expanduser()


@overload
def load_dataset(
    name: str | os.PathLike[str],
    split: str = ...,
    root: str | os.PathLike[str] | None = ...,
    download: bool = ...,
    *,
    val_fraction: float | None = ...,
    image_size: int | tuple[int, int] | None = ...,
    in_memory: Literal[True],
    seed: int = ...,
    resize: str = ...,
    image_suffix: str | None = ...,
) -> ImageDataset: ...


@overload
def load_dataset(
    name: str | os.PathLike[str],
    split: str = ...,
    root: str | os.PathLike[str] | None = ...,
    download: bool = ...,
    *,
    val_fraction: float | None = ...,
    image_size: int | tuple[int, int] | None = ...,
    in_memory: Literal[False],
    seed: int = ...,
    resize: str = ...,
    image_suffix: str | None = ...,
) -> StreamingDataset: ...


@overload
def load_dataset(
    name: str | os.PathLike[str],
    split: str = ...,
    root: str | os.PathLike[str] | None = ...,
    download: bool = ...,
    *,
    val_fraction: float | None = ...,
    image_size: int | tuple[int, int] | None = ...,
    in_memory: bool | None = ...,
    seed: int = ...,
    resize: str = ...,
    image_suffix: str | None = ...,
) -> ImageDataset | StreamingDataset: ...


def load_dataset(
    name: str | os.PathLike[str],
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    *,
    val_fraction: float | None = None,
    image_size: int | tuple[int, int] | None = None,
    in_memory: bool | None = None,
    seed: int = 0,
    resize: str = "squash",
    image_suffix: str | None = None,
) -> ImageDataset | StreamingDataset:
    """Load a dataset: into memory as one uint8 tensor, or (large image folders) as a stream.

    A dataset is a name, an image folder or a labels file. Image folders hold one subfolder
    per class (``folder/<class>/<image>``, nested folders allowed), either directly or under
    ``train/``, ``val/`` and ``test/`` (a folder with any of these three is a split folder;
    its class folders are under them, and the classes are those of ``train/``). A folder
    without ``test/`` has no test split: ``split="test"`` is an error rather than the
    training images again. Rules decided once for the whole folder (all splits), from the
    image headers:

    * pixels: every file is decoded by :func:`~visionblocks.data.decode_image_file`,
      which :func:`~visionblocks.inference.predict` uses too: EXIF orientation applied,
      palette colours (not indices), alpha dropped, 16-bit grayscale scaled by ``>> 8``,
      32-bit integer and float images refused;
    * channels: RGB if any image has colour (Pillow mode other than ``1``/``L``/``LA``/
      16-bit grayscale, palette images included), else grayscale;
    * size: every image must have the same size unless ``image_size`` is given, which
      brings every image to it by the ``resize`` rule (:func:`resize_image`, also what
      :func:`~visionblocks.inference.predict` uses): ``"squash"`` does not keep the
      aspect ratio, ``"shorter-side+center-crop"`` keeps it and cuts the centre (photos);
    * a file with an image suffix that cannot be read raises
      :class:`CorruptDatasetError` naming it, a broken symbolic link
      :class:`DatasetNotFoundError`; other files are skipped with a warning.

    A labels file (a name ending in ``.csv``, the Kaggle layout) lists one image and one
    label per row under a header naming the columns: the image column ``image``, ``id``,
    ``image_id``, ``file``, ``filename`` or ``path`` and the label column ``label`` or
    ``class`` (any case; other columns are ignored). Paths are relative to ``root``,
    default the CSV's folder; ``image_suffix`` is added to each (ids without a suffix).
    Classes are the labels sorted by name (by value when all are integers). Its images
    follow the folder rules above, and it is one set of images: every split is every row,
    unless ``val_fraction`` splits it into ``"train"`` and ``"val"`` as for folders. A
    missing column, a missing file (with its line), an empty path or label, an image
    listed twice and a single class are one-line errors, raised before any decoding.

    Args:
        name: ``"sample"`` (2,000 train / 1,000 test real Fashion-MNIST images shipped
            with the package, for offline use), ``"fashion-mnist"``, ``"mnist"``,
            ``"cifar10"``, ``"cifar100"``, the path of an image folder, or the path of a
            labels file (``.csv``). A name that is also an image folder in the current
            directory is an error; pass ``Path("sample")`` or ``"./sample"`` for the folder.
        split: ``"train"`` or ``"test"``; image folders also ``"val"`` (their ``val/``
            subfolder, or the ``val_fraction`` held out of the training images).
        root: Folder holding the files. Fashion-MNIST/MNIST: the IDX files themselves
            (or torchvision's ``FashionMNIST/raw`` layout below it); CIFAR: the folder
            containing ``cifar-10-batches-py`` / ``cifar-100-python``; a labels file: the
            folder its image paths are relative to (default: the CSV's). Defaults to
            ``$VISIONBLOCKS_DATA`` or ``./data`` (and, for Fashion-MNIST, the Debian
            package's ``/usr/share/datasets/fashion-mnist``).
        download: Fetch missing files with torchvision's downloader into ``root``.
            Never happens unless asked for.
        val_fraction: Image folders without ``val/`` and labels files: hold out this fraction of
            each class of the training images, ``round(val_fraction * n_c)`` chosen with
            ``seed``: ``split="train"`` and ``split="val"`` with the same fraction and
            seed are disjoint and together are every training image. Every class needs
            at least one validation and one training image.
        image_size: Image folders and labels files: resize every image to ``N x N`` (an
            int) or ``(height, width)``.
        in_memory: Image folders and labels files: ``True`` decodes every image into memory (an
            :class:`ImageDataset`); ``False`` returns a :class:`StreamingDataset` that
            decodes images when read; ``None`` streams when the decoded split would
            exceed min(2 GiB, 25% of available memory) (:func:`stream_threshold`).
        seed: Seed of the ``val_fraction`` split.
        resize: With ``image_size``: ``"squash"`` or ``"shorter-side+center-crop"``
            (:data:`RESIZE_RULES`), how images of another size are brought to it.
        image_suffix: Labels files: added to every path of the image column, e.g.
            ``".png"`` when it holds ids.

    Raises:
        DatasetNotFoundError: The files are not there; the message lists the paths
            tried and how to get them.
        CorruptDatasetError: A file is truncated or not in the expected format.
        ValueError: A bad argument, a dataset name that is also a folder here, or a
            folder or labels file that cannot make a dataset (an empty class folder, a
            missing column or empty label, a single class, mixed sizes without
            ``image_size``, an image over Pillow's decompression-bomb limit or with
            32-bit pixels).

    Example:
        >>> ds = load_dataset("sample")
        >>> ds
        ImageDataset(name='sample/train', size=2000, image_shape=(1, 28, 28), num_classes=10)
        >>> ds.classes[9], ds.labels.bincount().tolist() == [200] * 10
        ('Ankle boot', True)
        >>> len(load_dataset("sample", "test"))
        1000
    """
    if split not in SPLITS:
        raise ValueError(f"split must be 'train', 'val' (image folders) or 'test'; got {split!r}.")
    check_resize_rule(resize)
    if in_memory not in (None, True, False):
        raise TypeError(f"in_memory must be True, False or None (automatic); got {in_memory!r}.")
    if resize != "squash" and image_size is None:
        raise ValueError(
            f"resize={resize!r} says how images are brought to image_size, which is not "
            f"given; pass image_size=N (e.g. 224) too."
        )
    root_path = Path(root).expanduser() if root is not None else None
    key = str(name).lower()
    if is_labels_file(name):
        index = index_labels_file(
            Path(name).expanduser(), split, root=root_path, image_suffix=image_suffix,
            val_fraction=val_fraction, image_size=image_size_pair(image_size), seed=seed,
            resize=resize,
        )  # fmt: skip
        return _from_index(index, in_memory)
    if image_suffix is not None:
        raise ValueError(
            f"image_suffix applies to labels files (a .csv); {str(name)!r} is not one, so "
            f"drop image_suffix={image_suffix!r}."
        )
    if isinstance(name, os.PathLike) or (key not in _ALIASES and Path(name).is_dir()):
        return _load_folder(
            Path(name), split, val_fraction=val_fraction, image_size=image_size,
            in_memory=in_memory, seed=seed, resize=resize,
        )  # fmt: skip
    if isinstance(name, str) and key in _ALIASES and _is_image_folder(Path(name)):
        raise ValueError(
            f"{name!r} names both the dataset {_ALIASES[key]!r} and the image folder "
            f"{Path(name).resolve()} in the current directory; pass Path({name!r}) or "
            f"'./{name}' to load the folder, or rename the folder (or run from another "
            f"directory) to load the dataset."
        )
    folder_only = {"val_fraction": val_fraction, "image_size": image_size}
    folder_only["in_memory=False"] = True if in_memory is False else None
    given = [k for k, v in folder_only.items() if v is not None]
    if split == "val" or given:
        what = "split='val'" if split == "val" else given[0]
        raise ValueError(
            f"{what} applies to image folders; {str(name)!r} is a named dataset with train "
            f"and test splits held in memory (subset() or a tensor split makes a validation set)."
        )
    if key not in _ALIASES:
        raise ValueError(
            f"unknown dataset {str(name)!r}: use one of {', '.join(map(repr, DATASETS))} or the "
            f"path of an existing image folder (one subfolder per class)."
        )
    key = _ALIASES[key]
    if key == "sample":
        images, labels, classes = _read_sample(split)
    elif key in CIFAR_LAYOUT:
        images, labels, classes = _read_cifar(key, split, root_path, download)
    else:
        images, labels, classes = _read_mnist_like(key, split, root_path, download)
    return ImageDataset(images, labels, classes, f"{key}/{split}")


def _is_image_folder(path: Path) -> bool:
    """Whether ``path`` is laid out as an image folder: split folders, or two or more classes.

    A folder named like a dataset may instead hold that dataset's own files (IDX files,
    ``cifar-10-batches-py``, torchvision's ``FashionMNIST/raw``) when it is ``root``.
    """
    if not path.is_dir():
        return False
    folders = [p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return len(folders) >= 2 or any(name in SPLITS for name in folders)


def _load_folder(
    folder: Path,
    split: str,
    *,
    val_fraction: float | None,
    image_size: int | tuple[int, int] | None,
    in_memory: bool | None,
    seed: int,
    resize: str,
) -> ImageDataset | StreamingDataset:
    if not folder.is_dir():
        raise DatasetNotFoundError(f"image folder {folder} does not exist.")
    index = index_folder(
        folder, split, val_fraction=val_fraction, image_size=image_size_pair(image_size),
        seed=seed, resize=resize,
    )  # fmt: skip
    if not index.files:
        raise DatasetNotFoundError(f"{index.name} has no images (its class folders are empty).")
    return _from_index(index, in_memory)


def _from_index(index: FolderIndex, in_memory: bool | None) -> ImageDataset | StreamingDataset:
    """The images of ``index`` decoded into memory, or streamed (see ``in_memory``)."""
    stream = streams_by_default(index.decoded_bytes) if in_memory is None else not in_memory
    if index.label_sets is not None:  # multi-label: (N, K) multi-hot
        labels = multi_hot(index.label_sets, len(index.classes))
    else:
        labels = torch.tensor(index.labels, dtype=torch.int64)
    if stream:
        return StreamingDataset(
            index.files, labels, index.classes, channels=index.channels,
            image_size=index.size, name=index.name, resize=index.resize,
        )  # fmt: skip
    return ImageDataset(
        read_images(index), labels, list(index.classes), index.name, resize=index.resize
    )


def _idx_files(folder: Path, split: str) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    for suffix in (".gz", ""):
        images = folder / f"{prefix}-images-idx3-ubyte{suffix}"
        labels = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def _read_idx_pair(files: tuple[Path, Path]) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(files[0], ndim=3).unsqueeze(1)  # (N, 1, 28, 28)
    labels = read_idx(files[1], ndim=1).to(torch.int64)
    if len(images) != len(labels):
        raise CorruptDatasetError(
            f"{files[0]} holds {len(images)} images but {files[1]} holds {len(labels)} labels; "
            f"the two files come from different datasets."
        )
    return images, labels


def _read_sample(split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    folder = resources.files("visionblocks.data") / "_sample"
    with resources.as_file(folder) as path:
        files = _idx_files(Path(path), split)
        if files is None:
            raise DatasetNotFoundError(
                f"the package's sample data is missing from {path}; reinstall visionblocks or "
                f"regenerate it with scripts/make_sample.py."
            )
        images, labels = _read_idx_pair(files)
    return images, labels, list(FASHION_MNIST_CLASSES)


def _read_mnist_like(
    name: str, split: str, root: Path | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    base = root if root is not None else default_root()
    candidates = [base, base / _TORCHVISION_DIRS[name], base / name]
    if root is None:
        candidates.insert(0, _SYSTEM_DIRS[name])
    found = next((f for f in (_idx_files(d, split) for d in candidates) if f), None)
    if found is None and download:
        from torchvision import datasets  # only needed to download

        tv_class = datasets.FashionMNIST if name == "fashion-mnist" else datasets.MNIST
        tv_class(str(base), train=split == "train", download=True)
        found = _idx_files(base / _TORCHVISION_DIRS[name], split)
    if found is None:
        prefix = "train" if split == "train" else "t10k"
        fixes = [f"in Python, download=True fetches it into {base}", "root=<folder with the files>"]
        if name == "fashion-mnist":
            fixes.insert(0, "install it with `sudo apt-get install dataset-fashion-mnist`")
        raise DatasetNotFoundError(
            f"{name} ({split}) not found: looked for {prefix}-images-idx3-ubyte[.gz] and "
            f"{prefix}-labels-idx1-ubyte[.gz] in {', '.join(map(str, candidates))}. "
            f"Fix: {', or '.join(fixes)}."
        )
    images, labels = _read_idx_pair(found)
    classes = FASHION_MNIST_CLASSES if name == "fashion-mnist" else _MNIST_CLASSES
    return images, labels, list(classes)


def _read_cifar(
    name: str, split: str, root: Path | None, download: bool
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    base = root if root is not None else default_root()
    folder_name = CIFAR_LAYOUT[name][0]
    # Accept both the parent folder (torchvision's convention) and the folder itself.
    candidates = [base / folder_name, base]
    folder = next((d for d in candidates if (d / CIFAR_LAYOUT[name][3]).is_file()), None)
    if folder is None and download:
        from torchvision import datasets  # only needed to download

        tv_class = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        tv_class(str(base), train=split == "train", download=True)
        folder = base / folder_name
    if folder is None:
        raise DatasetNotFoundError(
            f"{name} ({split}) not found: looked for {CIFAR_LAYOUT[name][3]} in "
            f"{', '.join(map(str, candidates))}. Fix: in Python, download=True fetches "
            f"it into {base} (needs internet); or pass root=<folder containing {folder_name}>."
        )
    return read_cifar(folder, name, split)
