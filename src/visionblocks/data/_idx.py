"""Read (and write) the IDX format of MNIST and Fashion-MNIST, gzip'd or raw.

IDX (http://yann.lecun.com/exdb/mnist/) is a tiny big-endian header, a magic
number whose third byte names the element type and whose fourth byte is the
number of dimensions, then the sizes of the dimensions, then raw bytes. Only
unsigned bytes (type ``0x08``) occur in the datasets we read.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from visionblocks.data._errors import CorruptDatasetError

__all__ = ["read_idx", "write_idx"]

_UBYTE = 0x08


def read_idx(path: Path | str, *, ndim: int) -> torch.Tensor:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions into a uint8 tensor.

    Args:
        path: A ``.gz`` (read through gzip) or raw IDX file.
        ndim: Expected number of dimensions: 3 for images (N, H, W), 1 for labels (N,).

    Raises:
        CorruptDatasetError: The file is truncated, not gzip, or not the IDX it should be.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x-idx1-ubyte.gz"
        >>> write_idx(f, torch.tensor([3, 1, 4], dtype=torch.uint8))
        >>> read_idx(f, ndim=1)
        tensor([3, 1, 4], dtype=torch.uint8)
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        # gzip raises BadGzipFile (an OSError) for non-gzip data, EOFError when truncated.
        raise CorruptDatasetError(
            f"{path} is not a readable gzip file ({err}); delete it and reinstall or "
            f"re-download the dataset."
        ) from err
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDatasetError(f"{path} is truncated: {len(raw)} bytes, no IDX header.")
    zero, dtype, dims = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _UBYTE or dims != ndim:
        raise CorruptDatasetError(
            f"{path} is not an IDX file of unsigned bytes with {ndim} dimensions "
            f"(magic {raw[:4].hex()}, expected 000008{ndim:02x})."
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CorruptDatasetError(
            f"{path} is truncated or padded: its header promises shape {shape} "
            f"({expected} bytes) but it holds {len(raw) - header} bytes of data."
        )
    array = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(array.copy())


def write_idx(path: Path | str, tensor: torch.Tensor) -> None:
    """Write a uint8 tensor as an IDX file (gzip'd when ``path`` ends in ``.gz``).

    The gzip header carries no timestamp, so the same tensor always gives the same bytes.
    """
    if tensor.dtype != torch.uint8:
        raise TypeError(f"IDX files here hold uint8 data; got {tensor.dtype}.")
    header = struct.pack(">HBB", 0, _UBYTE, tensor.dim())
    header += struct.pack(f">{tensor.dim()}I", *tensor.shape)
    raw = header + tensor.contiguous().numpy().tobytes()
    path = Path(path)
    if path.suffix == ".gz":
        raw = gzip.compress(raw, compresslevel=9, mtime=0)
    path.write_bytes(raw)
