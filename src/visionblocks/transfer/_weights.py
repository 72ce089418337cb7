"""Load pretrained weights from a local file into a model, with clear errors for mismatches.

Files are read by :func:`visionblocks.train.read_torch_file` (``weights_only=True``): a
checkpoint is data, and unpickling arbitrary objects from a downloaded file can run
arbitrary code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionblocks.train import read_torch_file, strip_wrapper_prefixes
from visionblocks.transfer._heads import get_head

__all__ = ["LoadReport", "load_weights", "read_checkpoint", "state_dict_of"]

_WeightsSource = str | os.PathLike[str] | Mapping[str, Any]

_SHOWN = 20  # keys listed in an error message before "... and N more"


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did with the keys of a state dict.

    Attributes:
        missing: Model keys the file did not provide (they keep their initial values).
        unexpected: File keys the model has no place for (ignored).
        reinitialized: Head keys whose shape differs from the model's (new number of
            classes): not loaded, the head keeps its fresh initialisation.

    Example:
        >>> from visionblocks import simple_cnn
        >>> source = simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> target = simple_cnn(3, in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> report = load_weights(target, source.state_dict())
        >>> report.reinitialized, report.missing, report.unexpected
        (['head.weight', 'head.bias'], [], [])
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)


def _check_sha256(path: Path, expected: str) -> None:
    expected = expected.lower()
    if len(expected) < 8 or any(c not in "0123456789abcdef" for c in expected):
        raise ValueError(
            f"sha256 must be at least 8 hex digits (a prefix of the digest, as in torchvision's "
            f"file names); got {expected!r}."
        )
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    actual = digest.hexdigest()
    if not actual.startswith(expected):
        raise ValueError(
            f"{path} has sha256 {actual}, which does not start with the expected {expected}: the "
            f"file is corrupt or not the one intended. Download it again."
        )


def read_checkpoint(path: str | os.PathLike[str], *, sha256: str | None = None) -> dict[str, Any]:
    """Read a weights file safely (``weights_only=True``) onto the CPU, optionally hash-checked.

    Args:
        path: A ``.pt``/``.pth`` file: a raw state dict, a visionblocks checkpoint
            (``{"model": state_dict, "model_name": ..., "model_kwargs": ...}``) or a
            ``{"state_dict": ...}`` dict.
        sha256: Expected SHA-256 of the file, or a prefix of at least 8 hex digits.

    Returns:
        The loaded object.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The hash does not match, or the file cannot be read (a
            :class:`~visionblocks.train.CheckpointError` naming the file).
        TypeError: The file does not hold a dict.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "weights.pt"
        >>> torch.save({"weight": torch.ones(2, 3)}, path)
        >>> digest = hashlib.sha256(path.read_bytes()).hexdigest()
        >>> read_checkpoint(path, sha256=digest[:8])["weight"].shape
        torch.Size([2, 3])
        >>> try:
        ...     read_checkpoint(path, sha256="00000000")
        ... except ValueError as err:
        ...     print(str(err).split(": ")[1])
        the file is corrupt or not the one intended. Download it again.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist.")
    if sha256 is not None and path.is_file():
        _check_sha256(path, sha256)
    loaded = read_torch_file(path)
    if not isinstance(loaded, dict):
        raise TypeError(f"{path} holds a {type(loaded).__name__}, not a state dict or checkpoint.")
    return loaded


def state_dict_of(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Extract the tensor state dict from a raw state dict or a checkpoint wrapping one."""
    for key in ("model", "state_dict"):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            checkpoint = inner
            break
    bad = [k for k, v in checkpoint.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(
            f"not a state dict: the values of {bad[:5]} are not tensors. Pass a state dict, or a "
            f"checkpoint holding one under 'model' or 'state_dict'."
        )
    return strip_wrapper_prefixes(checkpoint)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


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
        A :class:`LoadReport` of the keys that were not loaded.

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
    if isinstance(source, Mapping):
        state = state_dict_of(source)
    else:
        state = state_dict_of(read_checkpoint(source, sha256=sha256))
    own = model.state_dict()
    head_prefix = get_head(model)[0] + "."
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reinitialized, mismatched = [], []
    for key in own:
        if key in state and state[key].shape != own[key].shape:
            if skip_mismatched_head and key.startswith(head_prefix):
                reinitialized.append(key)
            else:
                mismatched.append(
                    f"{key}: file {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
                )
    if mismatched:
        raise ValueError(f"shape mismatch for {len(mismatched)} keys: {_listing(mismatched)}.")
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing from the file ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected in the file ({len(unexpected)}): {_listing(unexpected)}")
        raise ValueError(
            f"the weights do not fit {type(model).__name__}: " + "; ".join(parts) + ". Check "
            "that the architecture matches, or pass strict=False to load the matching keys only."
        )
    skip = set(reinitialized) | set(unexpected)
    model.load_state_dict({k: v for k, v in state.items() if k not in skip}, strict=False)
    return LoadReport(missing=missing, unexpected=unexpected, reinitialized=reinitialized)
