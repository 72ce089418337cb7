"""Reading model files and weights: the one ``torch.load`` of visionblocks.

Every torch file is read by :func:`read_torch_file`, always with ``weights_only=True``:
a checkpoint is data, and unpickling arbitrary objects from a downloaded file can run
arbitrary code. A safetensors file (``*.safetensors``, or recognised by its first bytes)
is read with no unpickler at all; a visionblocks model file in that format keeps its
card as JSON in the file's metadata, and is read into the same entries as a torch one.
:func:`read_model_file` adds what a visionblocks model file is: the format tag, the
weights, and the :class:`~visionblocks.model_file.ModelCard`, checked field by field.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from visionblocks.model_file._card import ModelCard
from visionblocks.model_file._keys import strip_wrapper_prefixes
from visionblocks.model_file._safetensors import is_safetensors, read_safetensors

__all__ = [
    "FORMAT",
    "VERSION",
    "CheckpointError",
    "ModelFile",
    "card_in",
    "read_model_file",
    "read_torch_file",
    "read_weights",
    "state_dict_of",
]

FORMAT = "visionblocks-checkpoint"
"""The ``"format"`` entry of every file visionblocks writes."""
VERSION = 2
"""The ``"version"`` entry: 2 stores a ``"card"``; 1 (0.1-0.2) stored its fields at the top."""

# Version 1 kept the card's facts as top-level entries; these are read into the card.
_V1_CARD = {"model_name": "builder", "model_kwargs": "builder_kwargs", "classes": "classes",
            "image_shape": "image_shape"}  # fmt: skip
# Entries of a file that are neither card nor training facts: weights and training state.
STATE_ENTRIES = frozenset(
    {"format", "version", "model", "card", "optimizer", "schedule", "scaler", "rng", "ema"}
    | {"callbacks", "history", "epoch", "step", "seed", "stats", "run"}
)


class CheckpointError(ValueError):
    """A file that cannot be read as a checkpoint; the message names the file and why.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "weights.pt"
        >>> torch.save({"weight": torch.zeros(2)}, path)  # a plain dict, not a model file
        >>> try:
        ...     read_model_file(path)
        ... except CheckpointError as err:
        ...     print("is not a visionblocks checkpoint" in str(err), isinstance(err, ValueError))
        True True
    """


def read_torch_file(path: str | os.PathLike[str]) -> object:
    """Read a file written by ``torch.save``, safely, onto the CPU: the one ``torch.load``.

    Args:
        path: The file.

    Returns:
        The loaded object (tensors, dicts, lists, numbers, strings).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file is a directory, empty, truncated, not a torch file, or
            holds Python objects other than plain data (refused: loading them could run
            code). The message is one line that names the file.

    Example:
        >>> import tempfile
        >>> bad = Path(tempfile.mkdtemp()) / "broken.pt"
        >>> _ = bad.write_bytes(b"not a checkpoint")
        >>> try:
        ...     read_torch_file(bad)
        ... except CheckpointError as err:
        ...     print(str(err).split(": ")[1])
        truncated, corrupt or not a torch file (not a torch file); use another copy or re-save it.
    """
    path = Path(path)
    name = _check_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message covers both cases and advises weights_only=False, which we never
        # pass on: a GLOBAL is a reference to code (os.system, a class), anything else junk.
        if "GLOBAL" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{name} was refused: it holds Python objects that could run code when loaded, "
                f"and visionblocks loads plain weights only. Re-save the weights as a state dict "
                f"(torch.save(model.state_dict(), path)) where the file was made."
            ) from None
        raise _unreadable(name, "not a torch file") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        raise _unreadable(name, type(err).__name__) from None


def _check_file(path: Path) -> str:
    """``path`` quoted for messages, once it is known to be a non-empty file."""
    name = repr(str(path))
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {name}: check the path.")
    if path.is_dir():
        raise CheckpointError(f"{name} is a directory, not a checkpoint file.")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{name} is empty (0 bytes): a write was interrupted; use another checkpoint."
        )
    return name


def _read_file(path: str | os.PathLike[str]) -> object:
    """The content of a torch or safetensors file, a safetensors model file in torch's layout.

    A visionblocks model file in safetensors holds the state dict as its tensors and
    ``{"format": FORMAT, "version": "2", "card": "<the card as JSON>"}`` as its metadata
    (strings only); it is returned as the dict a torch model file holds. Any other
    safetensors file (Hugging Face's metadata is ``{"format": "pt"}``) is a state dict.
    """
    path = Path(path)
    if not is_safetensors(path):
        return read_torch_file(path)
    name = _check_file(path)
    try:
        tensors, metadata = read_safetensors(path)
    except ValueError as err:
        raise CheckpointError(str(err)) from None
    if metadata.get("format") != FORMAT:
        return tensors
    version = metadata.get("version", "")
    try:
        card = json.loads(metadata.get("card", "null"))
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{name}: the model card in its metadata is not valid JSON ({err}); re-save the "
            f"model with visionblocks.save_checkpoint."
        ) from None
    return {
        "format": FORMAT,
        "version": int(version) if version.isdigit() else version,
        "model": tensors,
        "card": card,
    }


def _unreadable(name: str, reason: str) -> CheckpointError:
    return CheckpointError(
        f"{name} cannot be read as a checkpoint: truncated, corrupt or not a torch file "
        f"({reason}); use another copy or re-save it."
    )


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


def read_weights(path: str | os.PathLike[str], *, sha256: str | None = None) -> dict[str, Any]:
    """Read a weights file safely (``weights_only=True``) onto the CPU, optionally hash-checked.

    Args:
        path: A ``.pt``/``.pth`` file: a raw state dict, a visionblocks model file
            (``{"model": state_dict, "card": ...}``) or a ``{"state_dict": ...}`` dict;
            or a ``.safetensors`` file: a state dict, or a visionblocks model file (read
            into the same ``{"model": ..., "card": ...}`` dict), with no unpickling.
        sha256: Expected SHA-256 of the file, or a prefix of at least 8 hex digits.

    Returns:
        The loaded dict.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The hash does not match, or the file cannot be read (a
            :class:`CheckpointError` naming the file).
        TypeError: The file does not hold a dict.
        ImportError: A safetensors file, without the ``safetensors`` package.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "weights.pt"
        >>> torch.save({"weight": torch.ones(2, 3)}, path)
        >>> digest = hashlib.sha256(path.read_bytes()).hexdigest()
        >>> read_weights(path, sha256=digest[:8])["weight"].shape
        torch.Size([2, 3])
        >>> try:
        ...     read_weights(path, sha256="00000000")
        ... except ValueError as err:
        ...     print(str(err).split(": ")[1])
        the file is corrupt or not the one intended. Download it again.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights file {str(path)!r} does not exist.")
    if sha256 is not None and path.is_file():
        _check_sha256(path, sha256)
    loaded = _read_file(path)
    if not isinstance(loaded, dict):
        raise TypeError(f"{path} holds a {type(loaded).__name__}, not a state dict or checkpoint.")
    return loaded


def state_dict_of(checkpoint: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """The tensor state dict in a raw state dict or in a checkpoint wrapping one.

    Example:
        >>> state_dict_of({"model": {"module.fc.bias": torch.zeros(2)}, "epoch": 3})
        {'fc.bias': tensor([0., 0.])}
    """
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


@dataclass(frozen=True)
class ModelFile:
    """A visionblocks model file as read: its card, its weights and its other entries.

    Attributes:
        card: The model's :class:`~visionblocks.model_file.ModelCard` (checked).
        state_dict: The weights (wrapper prefixes dropped).
        entries: The file's other entries: a training state's optimizer, history, RNG
            states, ... (empty for a plain model file).
        path: The file it was read from.

    Example:
        >>> ModelFile(ModelCard(classes=("a", "b")), {"w": torch.zeros(1)}).card.num_classes
        2
    """

    card: ModelCard
    state_dict: dict[str, torch.Tensor]
    entries: dict[str, Any] = field(default_factory=dict)
    path: str | None = None


def read_model_file(path: str | os.PathLike[str]) -> ModelFile:
    """Read a file written by ``save_checkpoint`` or ``fit(checkpoint_dir=...)``.

    A ``.safetensors`` model file (``save_checkpoint("m.safetensors", model)``) is read
    with no unpickling, its card from the file's metadata. Files of 0.1-0.2 (format
    version 1, the card's facts stored as top-level entries) are read into the same card.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: Unreadable, not a visionblocks model file, or a card field that
            is wrong; one line naming the file (and the field).
        ImportError: A safetensors file, without the ``safetensors`` package.

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = vb.save_checkpoint(f"{tempfile.mkdtemp()}/m.pt", vb.resnet20(num_classes=3))
        >>> saved = read_model_file(path)
        >>> saved.card.builder, saved.card.num_classes, len(saved.state_dict) > 0
        ('resnet20', 3, True)
    """
    raw = _read_file(path)
    name = repr(str(path))
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{name} is not a visionblocks checkpoint (no 'format': {FORMAT!r} entry); "
            f"for a state dict from elsewhere use visionblocks.load_weights(model, path)."
        )
    version = raw.get("version")
    if version not in (1, VERSION):
        raise CheckpointError(
            f"{name} has format version {version!r}; this visionblocks reads versions 1 and "
            f"{VERSION}: upgrade visionblocks to read it."
        )
    try:
        card = card_in(raw)
        state = state_dict_of(raw)
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{name}: {err}") from None
    entries = {k: v for k, v in raw.items() if k in STATE_ENTRIES - {"format", "version"}}
    entries.pop("model", None)
    entries.pop("card", None)
    if card is None:  # pragma: no cover - the format was checked above
        raise CheckpointError(f"{name} holds no model card.")
    return ModelFile(card=card, state_dict=state, entries=entries, path=str(path))


def card_in(raw: Mapping[str, Any]) -> ModelCard | None:
    """The card inside a loaded visionblocks model file (version 1 or 2), else ``None``.

    For code that reads a weights file that may or may not be a visionblocks model file
    (``pretrained(name, weights=FILE)``): a plain state dict has no card.

    Example:
        >>> card_in({"format": FORMAT, "version": 1, "model_name": "resnet20"}).builder
        'resnet20'
        >>> card_in({"weight": torch.zeros(2)}) is None
        True
    """
    if raw.get("format") != FORMAT:
        # 0.1's files, and hand-made ones in its layout, named the builder without a format.
        return (
            ModelCard.from_dict(_v1_card(raw)) if isinstance(raw.get("model_name"), str) else None
        )
    return ModelCard.from_dict(raw["card"] if raw.get("version") == VERSION else _v1_card(raw))


def _v1_card(raw: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {new: raw[old] for old, new in _V1_CARD.items() if raw.get(old)}
    stats = raw.get("stats")
    if isinstance(stats, (list, tuple)) and len(stats) == 2:
        fields["mean"], fields["std"] = stats
    fields["training"] = {
        k: v for k, v in raw.items() if k not in STATE_ENTRIES and k not in _V1_CARD
    }
    return fields
