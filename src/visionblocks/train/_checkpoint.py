"""Checkpoints: written atomically, read without unpickling code (``weights_only=True``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_checkpoint", "save_checkpoint"]

FORMAT = "visionblocks-checkpoint"
VERSION = 1


def atomic_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    The rename is atomic on POSIX and Windows, so a crash or Ctrl-C mid-write
    leaves the previous checkpoint intact instead of a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside DistributedDataParallel and ``torch.compile`` wrappers."""
    inner = getattr(model, "_orig_mod", model)
    if isinstance(inner, nn.parallel.DistributedDataParallel):
        inner = inner.module
    return inner


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a model's weights (and how to rebuild it) atomically.

    Args:
        path: Target file; parent folders are created.
        model: The model (DDP/compiled wrappers are unwrapped).
        model_name: Registry name, so :func:`load_checkpoint` can rebuild the model.
        model_kwargs: Builder arguments, e.g. ``{"num_classes": 5, "in_channels": 1}``.
        extra: More plain data to store (optimizer state, metrics, ...).

    Returns:
        The path written.

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = f"{tempfile.mkdtemp()}/m.pt"
        >>> path = save_checkpoint(path, vb.resnet20(), model_name="resnet20")
        >>> load_checkpoint(path)["model_name"]
        'resnet20'
    """
    state: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": unwrap(model).state_dict(),
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs or {}),
    }
    state.update(extra or {})
    return atomic_save(state, path)


def load_checkpoint(
    path: str | Path, model: nn.Module | None = None, *, strict: bool = True
) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` and optionally load it into ``model``.

    Args:
        path: A file written by :func:`save_checkpoint` or by ``fit(checkpoint_dir=...)``.
        model: If given, its weights are replaced by the checkpoint's.
        strict: Require the checkpoint's keys to match the model's exactly.

    Returns:
        The checkpoint dict (``"model"`` state dict, ``"model_name"``, ``"model_kwargs"``, ...).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: The file is not a visionblocks checkpoint, or (``strict``) its keys
            do not match the model; the message lists the missing and unexpected keys.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{str(path)!r} is not a readable checkpoint ({type(err).__name__}: {err})."
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a visionblocks checkpoint (no 'format': {FORMAT!r} entry); "
            f"for a bare state dict use model.load_state_dict(torch.load(path, weights_only=True))."
        )
    if model is not None:
        load_state(unwrap(model), state["model"], strict=strict)
    return state


def load_state(model: nn.Module, state_dict: dict[str, Any], *, strict: bool = True) -> None:
    """``load_state_dict`` with an error that lists missing, unexpected and mis-shaped keys.

    With ``strict=False`` every tensor whose name and shape match is loaded and the
    rest is left as it is (how a new head keeps its fresh initialization).
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mis_shaped = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if strict and (missing or unexpected or mis_shaped):
        raise ValueError(
            f"checkpoint does not match {type(model).__name__}: missing keys "
            f"{missing or 'none'}; unexpected keys {unexpected or 'none'}; shape mismatches "
            f"(checkpoint vs model) {mis_shaped or 'none'}. Pass strict=False to load the "
            f"matching part only."
        )
    matching = {k: v for k, v in state_dict.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(matching, strict=False)
