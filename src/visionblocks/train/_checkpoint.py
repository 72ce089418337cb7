"""Checkpoints: the one home of the file format, of saving and of reading.

Two kinds of file share one format (a dict with ``"format": FORMAT`` and ``"version"``):

* a *model file* (:func:`save_checkpoint`): the weights plus how to rebuild and use the
  model (registry name, builder arguments, class names, normalization, input shape);
* a *training state* (``fit(checkpoint_dir=...)``'s ``last.pt``): a model file plus the
  optimizer, schedule, scaler, history, RNG states, callback states and the epoch, so
  that ``fit(resume=...)`` continues exactly.

Every file is written atomically (a temporary file renamed into place) and read by
:func:`read_torch_file`, the only ``torch.load`` in visionblocks, always with
``weights_only=True``: a checkpoint is data, and unpickling arbitrary objects from a
downloaded file can run arbitrary code.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from visionblocks.train._history import History
from visionblocks.train._seeding import rng_state, set_rng_state

if TYPE_CHECKING:
    from visionblocks.train._state import RunState

__all__ = [
    "FORMAT",
    "TRAINING_STATE_KEYS",
    "VERSION",
    "CheckpointError",
    "atomic_save",
    "load_checkpoint",
    "load_state",
    "read_torch_file",
    "read_training_state",
    "restore_training_state",
    "save_checkpoint",
    "save_training_state",
    "strip_wrapper_prefixes",
    "unwrap_model",
]

FORMAT = "visionblocks-checkpoint"
"""The ``"format"`` entry of every file visionblocks writes."""
VERSION = 1
"""The ``"version"`` entry; bumped when the layout changes incompatibly."""
TRAINING_STATE_KEYS = frozenset({"optimizer", "epoch", "seed", "rng", "history"})
"""Entries that make a checkpoint a training state (what ``fit(resume=...)`` needs)."""

# Wrappers that prefix every key of a state dict: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(ValueError):
    """A file that cannot be read as a checkpoint; the message names the file and why.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "weights.pt"
        >>> torch.save({"weight": torch.zeros(2)}, path)  # a plain dict, not a checkpoint
        >>> try:
        ...     load_checkpoint(path)
        ... except CheckpointError as err:
        ...     print("is not a visionblocks checkpoint" in str(err), isinstance(err, ValueError))
        True True
    """


def atomic_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    The rename is atomic on POSIX and Windows, so a crash or Ctrl-C mid-write leaves
    the previous checkpoint intact instead of a truncated file. Temporaries left by a
    process killed mid-write (``kill -9`` cannot be caught) are removed first.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".x.pt.stale.tmp").write_bytes(b"")
        >>> atomic_save({"a": 1}, folder / "x.pt").name, sorted(p.name for p in folder.iterdir())
        ('x.pt', ['x.pt'])
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(
            f"cannot save to {str(path)!r}: it is a folder; give a file path such as "
            f"{str(path / 'model.pt')!r}."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(
            f"cannot save to {str(path)!r}: a file is in the way of its folder "
            f"{str(path.parent)!r}; choose another path or move that file."
        ) from None
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX: mkstemp makes it private (0600); a checkpoint is not
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    name = repr(str(path))
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {name}: check the path.")
    if path.is_dir():
        raise CheckpointError(f"{name} is a directory, not a checkpoint file.")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{name} is empty (0 bytes): a write was interrupted; use another checkpoint."
        )
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


def _unreadable(name: str, reason: str) -> CheckpointError:
    return CheckpointError(
        f"{name} cannot be read as a checkpoint: truncated, corrupt or not a torch file "
        f"({reason}); use another copy or re-save it."
    )


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside ``DistributedDataParallel`` and ``torch.compile`` wrappers.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> unwrap_model(net) is net
        True
    """
    inner = getattr(model, "_orig_mod", model)
    if isinstance(inner, nn.parallel.DistributedDataParallel):
        inner = getattr(inner.module, "_orig_mod", inner.module)
    return inner


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` / ``_orig_mod.`` key prefixes that DDP and ``torch.compile`` add.

    Example:
        >>> strip_wrapper_prefixes({"module._orig_mod.fc.weight": 1})
        {'fc.weight': 1}
    """
    state = dict(state_dict)
    changed = True
    while changed and state:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


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
        model_name: Registry name, so the model can be rebuilt (``visionblocks.load_model``).
        model_kwargs: Builder arguments, e.g. ``{"num_classes": 5, "in_channels": 1}``.
        extra: More plain data to store (class names, normalization stats, metrics, ...).

    Returns:
        The path written.

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = f"{tempfile.mkdtemp()}/m.pt"
        >>> path = save_checkpoint(path, vb.resnet20(), model_name="resnet20")
        >>> load_checkpoint(path)["model_name"]
        'resnet20'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}.")
    state: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": unwrap_model(model).state_dict(),
        "model_name": model_name,
        "model_kwargs": dict(model_kwargs or {}),
    }
    state.update(extra or {})
    return atomic_save(state, path)


def load_checkpoint(
    path: str | Path, model: nn.Module | None = None, *, strict: bool = True
) -> dict[str, Any]:
    """Read a visionblocks checkpoint and optionally load its weights into ``model``.

    Args:
        path: A file written by :func:`save_checkpoint` or by ``fit(checkpoint_dir=...)``.
        model: If given, its weights are replaced by the checkpoint's.
        strict: Require the checkpoint's keys to match the model's exactly.

    Returns:
        The checkpoint dict (``"model"`` state dict, ``"model_name"``, ``"model_kwargs"``, ...).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file cannot be read (see :func:`read_torch_file`) or is not a
            visionblocks checkpoint.
        ValueError: (``strict``) its keys do not match the model; the message lists the
            missing and unexpected keys.

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = save_checkpoint(f"{tempfile.mkdtemp()}/m.pt", vb.resnet20())
        >>> sorted(load_checkpoint(path, vb.resnet20()))[:3]
        ['format', 'model', 'model_kwargs']
    """
    state = read_torch_file(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(
            f"{str(path)!r} is not a visionblocks checkpoint (no 'format': {FORMAT!r} entry); "
            f"for a state dict from elsewhere use visionblocks.load_weights(model, path)."
        )
    if model is not None:
        load_state(unwrap_model(model), state["model"], strict=strict)
    return state


def read_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training state written by ``fit(checkpoint_dir=...)`` (for ``resume``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: Unreadable, or a model file rather than a training state.
    """
    state = load_checkpoint(path)
    missing = TRAINING_STATE_KEYS - set(state)
    if missing:
        raise CheckpointError(
            f"{str(path)!r} is a model checkpoint, not a training state (missing "
            f"{sorted(missing)}); load it with load_checkpoint() and start a new fit()."
        )
    return state


def load_state(model: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True) -> None:
    """``load_state_dict`` with an error that lists missing, unexpected and mis-shaped keys.

    With ``strict=False`` every tensor whose name and shape match is loaded and the
    rest is left as it is (how a new head keeps its fresh initialization).
    """
    state_dict = strip_wrapper_prefixes(state_dict)
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


def save_training_state(
    path: str | Path, run: RunState, *, stats: tuple[Any, Any] | None = None
) -> Path:
    """Write everything ``fit(resume=...)`` needs to continue ``run`` after its epoch ``run.epoch``.

    Called at the end of an epoch only: a state saved mid-epoch could not be continued
    exactly (the position in the epoch's data order and augmentation is not saved).
    """
    return save_checkpoint(
        path,
        run.model,
        extra={
            "optimizer": run.optimizer.state_dict(),
            "schedule": run.scheduler.state_dict() if run.scheduler is not None else None,
            "scaler": run.scaler.state_dict(),
            "history": run.history.state_dict(),
            "epoch": run.epoch,
            "step": run.step,
            "seed": run.seed,
            "stats": [list(s) for s in stats] if stats else None,
            "rng": rng_state(),
            "ema": run.ema.state_dict() if run.ema is not None else None,
            "callbacks": [_callback_state(cb) for cb in run.callbacks],
        },
    )


def _callback_state(callback: object) -> dict[str, Any] | None:
    state_dict = getattr(callback, "state_dict", None)
    if state_dict is None:
        return None
    return {"class": type(callback).__name__, "state": state_dict()}


def restore_training_state(run: RunState, state: Mapping[str, Any]) -> None:
    """Load a training state into a freshly set-up ``run`` (same arguments as the saved run).

    Raises:
        ValueError: The run does not match the saved one (its callbacks, or ``ema`` on one
            side only); the message says what differs.
    """
    load_state(run.model, state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state.get("schedule") is not None:
        run.scheduler.load_state_dict(state["schedule"])
    run.scaler.load_state_dict(state["scaler"])
    run.history = History.from_state_dict(state["history"])
    run.history.interrupted = False
    run.epoch = int(state["epoch"])
    run.step = int(state.get("step", 0))
    saved_ema = state.get("ema")
    if (saved_ema is None) != (run.ema is None):
        raise ValueError(
            f"the checkpoint was written {'with' if saved_ema is not None else 'without'} ema; "
            f"resume with the same ema= setting as the run that wrote it."
        )
    if run.ema is not None:
        run.ema.load_state_dict(saved_ema)  # type: ignore[arg-type]
    _restore_callbacks(run, state.get("callbacks") or [])
    set_rng_state(state["rng"])


def _restore_callbacks(run: RunState, saved: list[dict[str, Any] | None]) -> None:
    if not saved:  # a checkpoint written before callbacks had state
        return
    stateful = [(i, cb) for i, cb in enumerate(run.callbacks) if hasattr(cb, "load_state_dict")]
    for i, cb in stateful:
        entry = saved[i] if i < len(saved) else None
        if entry is None or entry.get("class") != type(cb).__name__:
            raise ValueError(
                f"callback {i} ({type(cb).__name__}) has no saved state in the checkpoint; "
                f"resume with the same callbacks, in the same order, as the run that wrote it."
            )
        cb.load_state_dict(entry["state"])
