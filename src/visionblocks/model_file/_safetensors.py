"""Safetensors files: tensors and string metadata, read without unpickling anything.

Why this format: a ``.safetensors`` file is an 8-byte little-endian header length, a
JSON header (each tensor's dtype, shape and byte range, and a ``__metadata__`` dict of
strings) and the raw bytes of the tensors. Reading one parses JSON and copies bytes;
no code runs, whereas even torch's ``weights_only`` loader runs a (restricted)
unpickler over the file. It is also the format of Hugging Face's ``model.safetensors``.

This module knows the container only; what visionblocks stores in it (the state dict,
and the card in the metadata) is decided by ``_read.py`` and ``_write.py``. The
``safetensors`` package is optional and imported only when such a file is read or
written.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

__all__ = ["SUFFIX", "is_safetensors", "read_safetensors", "safetensors_bytes"]

SUFFIX = ".safetensors"
# safetensors' own upper bound on the JSON header (bytes): a larger length is not one.
_MAX_HEADER = 100_000_000


def is_safetensors(path: Path) -> bool:
    """Whether ``path`` is a safetensors file: by its suffix, else by its first bytes.

    A file named ``*.safetensors`` is never handed to ``torch.load``, whatever it holds:
    the name promises no pickle. Any other file is one when it opens with a header length
    that fits the file, followed by ``{`` (a torch file opens with ``PK`` or a pickle
    opcode, which read as an impossible length).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "w.bin").write_bytes((2).to_bytes(8, "little") + b"{}")
        >>> is_safetensors(folder / "w.bin"), is_safetensors(folder / "m.safetensors")
        (True, True)
        >>> torch.save({"w": torch.zeros(1)}, folder / "w.pt")
        >>> is_safetensors(folder / "w.pt")
        False
    """
    if path.suffix.lower() == SUFFIX:
        return True
    try:
        with path.open("rb") as file:
            head = file.read(9)
            size = path.stat().st_size
    except OSError:  # missing, a folder, unreadable: the torch reader says which, by name
        return False
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and length <= min(_MAX_HEADER, size - 8)


def _package(name: str, doing: str) -> ModuleType:
    """``safetensors.torch``, or an ImportError that names the file and the fix."""
    try:
        return importlib.import_module("safetensors.torch")
    except ImportError:
        raise ImportError(
            f"{doing} {name} needs the safetensors package: pip install "
            f"'visionblocks[safetensors]'."
        ) from None


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors (on the CPU) and the string metadata of the safetensors file ``path``.

    Raises:
        ImportError: The ``safetensors`` package is not installed.
        ValueError: Truncated, corrupt or not a safetensors file; one line naming it.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> _ = path.write_bytes(safetensors_bytes({"w": torch.ones(2)}, {"note": "hi"}))
        >>> read_safetensors(path)
        ({'w': tensor([1., 1.])}, {'note': 'hi'})
    """
    name = repr(str(path))
    package = _package(name, "reading")
    try:
        with package.safe_open(str(path), framework="pt", device="cpu") as file:
            metadata = dict(file.metadata() or {})
            names = file.keys()  # safe_open is not iterable: the names come from keys()
            tensors = {key: file.get_tensor(key) for key in names}
    except Exception as err:  # the Rust reader's SafetensorError, OSError, unknown dtypes
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise ValueError(
            f"{name} cannot be read as a safetensors file: truncated, corrupt or not "
            f"safetensors ({reason}); use another copy or re-save it."
        ) from None
    return tensors, metadata


def safetensors_bytes(tensors: Mapping[str, Any], metadata: Mapping[str, str]) -> bytes:
    """``tensors`` and ``metadata`` as the bytes of a safetensors file.

    The format stores each tensor's own contiguous bytes and refuses tensors that share
    memory (tied weights), which could not be told apart again. Each is therefore made
    contiguous on the CPU, and one whose storage an earlier tensor already uses is
    cloned: every key is kept, so the file loads strictly into the same model (loading
    writes the same values into the tied parameter twice). Values are kept bit for bit.

    Raises:
        ImportError: The ``safetensors`` package is not installed.
        TypeError: A value is not a tensor; the message names its key.
        ValueError: A sparse or quantized tensor (no safetensors dtype holds one).

    Example:
        >>> shared = torch.arange(4.0)
        >>> data = safetensors_bytes({"a": shared, "b": shared[:2]}, {"k": "v"})
        >>> int.from_bytes(data[:8], "little") < len(data)
        True
    """
    package = _package("a .safetensors file", "writing")
    stored: dict[str, torch.Tensor] = {}
    storages: set[int] = set()
    for key, value in tensors.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"state dict entry {key!r} is a {type(value).__name__}, not a tensor; a "
                f"safetensors file holds tensors only (save this model as a .pt file)."
            )
        if value.layout != torch.strided or value.is_quantized:
            kind = "quantized" if value.is_quantized else f"sparse ({value.layout})"
            raise ValueError(
                f"state dict entry {key!r} is a {kind} tensor, which a safetensors file cannot "
                f"hold; save this model as a .pt file, or save the float model."
            )
        tensor = value.detach().cpu().contiguous()
        pointer = tensor.untyped_storage().data_ptr()
        if pointer in storages:
            tensor = tensor.clone()
        if pointer:  # 0: an empty tensor, which owns no memory to share
            storages.add(pointer)
        stored[key] = tensor
    data: bytes = package.save(stored, metadata=dict(metadata))
    return data
