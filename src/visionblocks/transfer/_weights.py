"""Load pretrained weights from a local file into a model, tolerating only a new head.

Reading (the one ``torch.load``, ``weights_only=True``, optional SHA-256 check) and the
diff of keys live in :mod:`visionblocks.model_file`; what this module adds is the
transfer-learning rule: a head of another shape is re-initialized, not an error.
``.safetensors`` files (timm's and Hugging Face's format) are read here with
``safetensors.torch.load_file``, which runs no code by construction, until
:func:`~visionblocks.model_file.read_weights` reads them itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from visionblocks.model_file import (
    LoadReport,
    load_state_checked,
    read_weights,
    state_dict_of,
)
from visionblocks.transfer._heads import get_head

__all__ = ["LoadReport", "load_weights", "read_checkpoint", "read_weights_file", "state_dict_of"]

_WeightsSource = str | os.PathLike[str] | Mapping[str, Any]

read_checkpoint = read_weights
"""Read a weights file safely (0.2's name of :func:`visionblocks.model_file.read_weights`)."""

SAFETENSORS_SUFFIX = ".safetensors"


def read_weights_file(path: str | os.PathLike[str], *, sha256: str | None = None) -> dict[str, Any]:
    """Read a ``.pt``/``.pth``/``.bin`` or ``.safetensors`` weights file, optionally hash-checked.

    Torch files go through :func:`~visionblocks.model_file.read_weights` (``weights_only``);
    safetensors files hold tensors only and are read with ``safetensors.torch.load_file``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The hash does not match, or the file cannot be read.
        ImportError: A ``.safetensors`` file without the safetensors package.

    Example:
        >>> import tempfile, torch
        >>> from safetensors.torch import save_file
        >>> path = Path(tempfile.mkdtemp()) / "w.safetensors"
        >>> save_file({"fc.bias": torch.zeros(2)}, path)
        >>> read_weights_file(path)
        {'fc.bias': tensor([0., 0.])}
    """
    path = Path(path)
    if path.suffix != SAFETENSORS_SUFFIX:
        return read_weights(path, sha256=sha256)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist.")
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ImportError(
            f"{str(path)!r} is a safetensors file, which needs the safetensors package: "
            f"pip install 'visionblocks[safetensors]'."
        ) from None
    if sha256 is not None:
        _check_sha256(path, sha256)
    try:
        return dict(load_file(path, device="cpu"))
    except Exception as err:  # safetensors raises its own SafetensorError on a bad header
        raise ValueError(
            f"{str(path)!r} is not a readable safetensors file ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else 'no detail'}); use another copy."
        ) from None


def _check_sha256(path: Path, expected: str) -> None:
    """The safetensors counterpart of read_weights' check (same rule: a prefix of >= 8 hex)."""
    if len(expected) < 8 or any(c not in "0123456789abcdefABCDEF" for c in expected):
        raise ValueError(f"sha256 must be at least 8 hex digits; got {expected!r}.")
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    actual = digest.hexdigest()
    if not actual.startswith(expected.lower()):
        raise ValueError(
            f"{path} has sha256 {actual}, which does not start with the expected {expected}: the "
            f"file is corrupt or not the one intended. Download it again."
        )


def load_weights(
    model: nn.Module,
    source: _WeightsSource,
    *,
    strict: bool = True,
    sha256: str | None = None,
    skip_mismatched_head: bool = True,
) -> LoadReport:
    """Load a state dict or weights file into ``model``, tolerating only a new head.

    Head parameters whose shape differs from the model's (a checkpoint trained for
    another number of classes) are skipped and reported, since replacing the head
    is the point of transfer learning. Every other difference is an error that
    lists the keys, unless ``strict=False``.

    Args:
        model: The model to load into, changed in place.
        source: A state dict, a checkpoint dict, or the path of a file holding either.
        strict: Raise on missing or unexpected keys (shape mismatches outside the head
            always raise). ``False`` loads what matches and reports the rest.
        sha256: Expected SHA-256 (or a prefix of >= 8 hex digits) of the file.
        skip_mismatched_head: Skip head keys of a different shape instead of raising.

    Returns:
        A :class:`~visionblocks.model_file.LoadReport` of the keys that were not loaded.

    Raises:
        ValueError: Missing or unexpected keys (``strict``) or mismatched shapes; the
            message lists them.

    Example:
        >>> from visionblocks import resnet20
        >>> source = resnet20(num_classes=10).state_dict()
        >>> load_weights(resnet20(num_classes=3), source).reinitialized
        ['head.weight', 'head.bias']
        >>> partial = {"stem.0.weight": source["stem.0.weight"]}
        >>> load_weights(resnet20(), partial, strict=False).missing[:2]
        ['stem.1.weight', 'stem.1.bias']
    """
    raw = source if isinstance(source, Mapping) else read_weights_file(source, sha256=sha256)
    head = get_head(model)[0] if skip_mismatched_head else None
    return load_state_checked(model, state_dict_of(raw), strict=strict, head_prefix=head)
