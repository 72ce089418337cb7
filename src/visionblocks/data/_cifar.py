"""Read CIFAR-10/100 from the standard ``cifar-10-batches-py`` / ``cifar-100-python`` files.

The official files (https://www.cs.toronto.edu/~kriz/cifar.html) are Python
pickles of dicts holding a ``(N, 3072)`` uint8 NumPy array and label lists.
Pickle can run arbitrary code, so they are read with :class:`_CifarUnpickler`,
which refuses every global except the few NumPy functions that rebuild an
array: a tampered file fails with :class:`CorruptDatasetError` instead of
executing anything.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from visionblocks.data._errors import CorruptDatasetError

__all__ = ["CIFAR_LAYOUT", "read_cifar"]

# Everything the CIFAR pickles need: NumPy's array reconstruction (module path
# differs between NumPy 1 and 2) and dtype; dicts, lists, str and ints are pickle
# opcodes, not globals. Python 3 writes bytes at protocol 2 as
# _codecs.encode(str, "latin1"), a pure function, so files re-saved by Python 3 load too.
_ALLOWED = {
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}

# name -> (folder, training files, test file, meta file, label key, class-name key)
CIFAR_LAYOUT: dict[str, tuple[str, list[str], str, str, bytes, bytes]] = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        b"labels",
        b"label_names",
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        "test",
        "meta",
        b"fine_labels",
        b"fine_label_names",
    ),
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"global {module}.{name} is not allowed in a CIFAR file (only NumPy array "
            f"reconstruction is)"
        )


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        # encoding="bytes": the files were written by Python 2, their keys are bytes.
        obj = _CifarUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise CorruptDatasetError(
            f"{path} is not a valid CIFAR batch ({type(err).__name__}: {err}); it is truncated, "
            f"damaged or not from the official archive. Delete it and download again."
        ) from err
    if not isinstance(obj, dict):
        raise CorruptDatasetError(f"{path} holds a {type(obj).__name__}, not a CIFAR dict.")
    return obj


def _read_batch(path: Path, label_key: bytes) -> tuple[torch.Tensor, torch.Tensor]:
    batch = _unpickle(path)
    data, labels = batch.get(b"data"), batch.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise CorruptDatasetError(
            f"{path}: b'data' must be a uint8 (N, 3072) array; got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}."
        )
    if data.shape[1] != 3 * 32 * 32 or not isinstance(labels, list) or len(labels) != len(data):
        raise CorruptDatasetError(
            f"{path}: expected (N, 3072) data and N {label_key!r}; got data {data.shape} and "
            f"{len(labels) if isinstance(labels, list) else 'no'} labels."
        )
    # Rows are the red, green then blue 32x32 planes: exactly (3, 32, 32) in C order.
    images = torch.from_numpy(data.copy()).reshape(-1, 3, 32, 32)
    return images, torch.tensor(labels, dtype=torch.int64)


def read_cifar(folder: Path, name: str, split: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read one split of CIFAR-10 (``name="cifar10"``) or CIFAR-100 from its folder.

    Returns:
        ``(images (N, 3, 32, 32) uint8, labels (N,) int64, class names)``.
    """
    _, train_files, test_file, meta_file, label_key, names_key = CIFAR_LAYOUT[name]
    files = train_files if split == "train" else [test_file]
    parts = [_read_batch(folder / f, label_key) for f in files]
    meta = _unpickle(folder / meta_file)
    names = meta.get(names_key)
    if not isinstance(names, list):
        raise CorruptDatasetError(f"{folder / meta_file} has no {names_key!r} list.")
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    images = torch.cat([p[0] for p in parts])
    labels = torch.cat([p[1] for p in parts])
    return images, labels, classes
