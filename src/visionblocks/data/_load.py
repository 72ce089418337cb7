"""``load_dataset``: every supported dataset by name, as an in-memory :class:`ImageDataset`."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import torch

from visionblocks.data._cifar import CIFAR_LAYOUT, read_cifar
from visionblocks.data._dataset import ImageDataset
from visionblocks.data._errors import CorruptDatasetError, DatasetNotFoundError
from visionblocks.data._folder import read_image_folder
from visionblocks.data._idx import read_idx

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


def load_dataset(
    name: str | os.PathLike[str],
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    *,
    image_size: int | tuple[int, int] | None = None,
) -> ImageDataset:
    """Load a dataset into memory as one uint8 tensor with labels, class names and stats.

    Args:
        name: ``"sample"`` (2,000 train / 1,000 test real Fashion-MNIST images shipped
            with the package, for offline use), ``"fashion-mnist"``, ``"mnist"``,
            ``"cifar10"``, ``"cifar100"``, or the path of an image folder with one
            subfolder per class (if it has a ``split`` subfolder, that is used).
        split: ``"train"`` or ``"test"``.
        root: Folder holding the files. Fashion-MNIST/MNIST: the IDX files themselves
            (or torchvision's ``FashionMNIST/raw`` layout below it); CIFAR: the folder
            containing ``cifar-10-batches-py`` / ``cifar-100-python``. Defaults to
            ``$VISIONBLOCKS_DATA`` or ``./data`` (and, for Fashion-MNIST, the Debian
            package's ``/usr/share/datasets/fashion-mnist``).
        download: Fetch missing files with torchvision's downloader into ``root``.
            Never happens unless asked for.
        image_size: Image folders only: resize every image to this size.

    Raises:
        DatasetNotFoundError: The files are not there; the message lists the paths
            tried and how to get them.
        CorruptDatasetError: A file is truncated or not in the expected format.

    Example:
        >>> ds = load_dataset("sample")
        >>> ds
        ImageDataset(name='sample/train', size=2000, image_shape=(1, 28, 28), num_classes=10)
        >>> ds.classes[9], ds.labels.bincount().tolist() == [200] * 10
        ('Ankle boot', True)
        >>> len(load_dataset("sample", "test"))
        1000
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    root_path = Path(root).expanduser() if root is not None else None
    key = str(name).lower()
    if isinstance(name, os.PathLike) or (key not in _ALIASES and Path(name).is_dir()):
        folder = Path(name)
        if not folder.is_dir():
            raise DatasetNotFoundError(f"image folder {folder} does not exist.")
        folder = folder / split if (folder / split).is_dir() else folder
        images, labels, classes = read_image_folder(folder, image_size=image_size)
        return ImageDataset(images, labels, classes, str(folder))
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
        fixes = [f"pass download=True to fetch it into {base}", "pass root=<folder with the files>"]
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
            f"{', '.join(map(str, candidates))}. Fix: pass download=True to fetch "
            f"it into {base} (needs internet), or root=<folder containing {folder_name}>."
        )
    return read_cifar(folder, name, split)
