"""Writing model files: atomically, with the model's card.

A model file is a dict ``{"format": FORMAT, "version": VERSION, "model": state_dict,
"card": card.to_dict(), ...}``; a training state (``fit``'s ``last.pt``) is the same file
with the optimizer, schedule, history and RNG states added, so any of them rebuilds
with ``load_model``. A path ending in ``.safetensors`` gets the same model file in
safetensors: the state dict as its tensors, the format, version and card (as JSON) as
its string metadata. Training states stay torch files (optimizer states and history
are not tensors alone).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from visionblocks.model_file._card import ModelCard
from visionblocks.model_file._keys import unwrap_model
from visionblocks.model_file._read import FORMAT, STATE_ENTRIES, VERSION
from visionblocks.model_file._safetensors import SUFFIX, safetensors_bytes

__all__ = ["atomic_save", "atomic_write_text", "write_model_file"]


def atomic_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, then rename it into place.

    The rename is atomic on POSIX and Windows, so a crash or Ctrl-C mid-write leaves
    the previous checkpoint intact instead of a truncated file. Temporaries left by a
    process killed mid-write (``kill -9`` cannot be caught) are removed first; those of
    a process still writing the same file are left alone.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / ".x.pt.999999999.k3j2.tmp").write_bytes(b"")  # its process is gone
        >>> atomic_save({"a": 1}, folder / "x.pt").name, sorted(p.name for p in folder.iterdir())
        ('x.pt', ['x.pt'])
    """
    return _atomic_write(path, lambda file: torch.save(obj, file))


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write ``text`` (UTF-8) atomically, as :func:`atomic_save` writes a checkpoint.

    For the small files that describe a run (``metrics.json``): a crash mid-write leaves
    the previous file, never a truncated one.

    Example:
        >>> import tempfile
        >>> path = atomic_write_text('{"epochs": 2}', Path(tempfile.mkdtemp()) / "metrics.json")
        >>> path.read_text(), sorted(p.name for p in path.parent.iterdir())
        ('{"epochs": 2}', ['metrics.json'])
    """
    return _atomic_write(path, lambda file: file.write(text.encode("utf-8")))


def _atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` on a temporary file next to ``path``, then rename it into place."""
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
    _sweep_stale(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    try:
        if hasattr(os, "fchmod"):  # POSIX: mkstemp makes it private (0600); a checkpoint is not
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _sweep_stale(path: Path) -> None:
    """Remove temporaries of ``path`` left by processes that died mid-write.

    A temporary is named ``.NAME.PID.RANDOM.tmp``; one whose process still runs is another
    writer's, mid-write, and stays. Unnamed ones (visionblocks 0.2) go after an hour.
    """
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        owner = stale.name[len(path.name) + 2 :].split(".", 1)[0]
        if owner.isdigit():
            if int(owner) != os.getpid() and _alive(int(owner)):
                continue
        else:
            try:
                if time.time() - stale.stat().st_mtime < 3600:
                    continue
            except FileNotFoundError:
                continue
        stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):  # exists but not ours, or cannot tell: keep its file
        return True
    return True


def write_model_file(
    path: str | Path,
    model: nn.Module,
    card: ModelCard,
    *,
    state: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights and ``card`` (plus a training ``state``) atomically.

    Args:
        path: Target file; parent folders are created. A name ending in ``.safetensors``
            writes a safetensors file (``pip install 'visionblocks[safetensors]'``).
        model: The model (DDP/compiled wrappers are unwrapped).
        card: What the model carries.
        state: Entries of a training state (optimizer, history, ...), for ``fit``'s resume.

    Returns:
        The path written.

    Raises:
        ValueError: A training ``state`` for a ``.safetensors`` path.

    Example:
        >>> import tempfile
        >>> from visionblocks.model_file import read_model_file
        >>> path = write_model_file(f"{tempfile.mkdtemp()}/m.pt", nn.Linear(2, 2),
        ...                         ModelCard(classes=("a", "b")))
        >>> read_model_file(path).card.classes
        ('a', 'b')
        >>> path = write_model_file(f"{tempfile.mkdtemp()}/m.safetensors", nn.Linear(2, 2),
        ...                         ModelCard(classes=("a", "b")))
        >>> read_model_file(path).card.classes
        ('a', 'b')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}.")
    extra = dict(state or {})
    unknown = sorted(set(extra) - STATE_ENTRIES)
    if unknown:  # pragma: no cover - a programming error inside visionblocks
        raise ValueError(f"not training-state entries: {unknown}; facts go into the card.")
    weights = unwrap_model(model).state_dict()
    if Path(path).suffix.lower() == SUFFIX:
        if extra:
            raise ValueError(
                f"cannot write a training state to {str(path)!r}: its optimizer, history and "
                f"RNG states are not tensors alone, so it stays a torch file; name it *.pt "
                f"(a model alone can be saved as .safetensors with save_checkpoint)."
            )
        metadata = {"format": FORMAT, "version": str(VERSION), "card": json.dumps(card.to_dict())}
        data = safetensors_bytes(weights, metadata)  # before the temporary file exists
        return _atomic_write(path, lambda file: file.write(data))
    entries: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": weights,
        "card": card.to_dict(),
        **extra,
    }
    return atomic_save(entries, path)
