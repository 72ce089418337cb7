"""What a run folder guarantees: one owner, never silently overwritten, resumed exactly.

``visionblocks train --out RUN`` claims ``RUN`` with a lock that lives as long as the
process (an ``flock`` on ``RUN/.lock``: the kernel drops it when the process dies, even
by ``kill -9``), so a second run into the same folder stops at once instead of mixing
its files with the first's. A new run refuses a folder that holds another run's files
unless asked to replace them (``--overwrite``, which removes them first, so that no old
``last.pt`` can be resumed under the new run's settings). The settings a run started
with are kept in ``RUN/.started.json``; ``--resume`` continues exactly that run, and
refuses, naming the keys, when ``RUN/config.toml`` was edited since.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from visionblocks._cli._common import CLIError
from visionblocks.model_file import atomic_write_text

__all__ = ["CONFIG_FILE", "RUN_FILES", "RunFolder"]

CONFIG_FILE = "config.toml"
#: Files a run writes into its folder (``epoch-E.pt`` copies and ``tensorboard/`` besides).
RUN_FILES = (
    CONFIG_FILE, "last.pt", "model.pt", "history.csv", "history.json", "metrics.json",
    "curves.png", "confusion.png",
)  # fmt: skip
_STARTED = ".started.json"
_LOCK = ".lock"


class RunFolder:
    """The folder of one ``train`` run, held by this process while it is open.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "run"
        >>> with RunFolder(folder, flag="--out") as run:
        ...     try:
        ...         RunFolder(folder, flag="--out").claim()
        ...     except CLIError as err:
        ...         print("in use by another visionblocks run" in str(err))
        True
    """

    def __init__(self, path: Path, *, flag: str) -> None:
        self.path = path
        self.flag = flag
        self._lock: IO[str] | None = None

    def claim(self) -> None:
        """Take the folder's lock, or stop with a line naming the folder and its owner."""
        self.path.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / _LOCK, "a+", encoding="utf-8")  # noqa: SIM115 - held open
        if not _try_lock(handle):
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise CLIError(
                f"{self.flag} {str(self.path)!r} is in use by another visionblocks run "
                f"(process {owner}); wait for it to finish, or choose another {self.flag}."
            )
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def release(self) -> None:
        """Give the lock back (the kernel also does when the process ends)."""
        if self._lock is not None:
            self._lock.close()  # closing the file drops the flock
            self._lock = None

    def __enter__(self) -> RunFolder:
        self.claim()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def existing_files(self) -> list[str]:
        """The run files already in the folder, by name."""
        names = [name for name in RUN_FILES if (self.path / name).exists()]
        names += sorted(p.name for p in self.path.glob("epoch-*.pt"))
        names += [_STARTED] if (self.path / _STARTED).exists() else []
        return names

    def start_new(self, *, overwrite: bool) -> None:
        """Make the folder ready for a new run: empty of run files, or refuse."""
        found = self.existing_files()
        if found and not overwrite:
            shown = ", ".join(name for name in found if name != _STARTED) or _STARTED
            raise CLIError(
                f"{self.flag} {str(self.path)!r} holds another run ({shown}); pass "
                f"--resume {self.path} to continue it, --overwrite to replace it, or "
                f"another {self.flag}."
            )
        for name in found:
            (self.path / name).unlink(missing_ok=True)
        if overwrite:
            shutil.rmtree(self.path / "tensorboard", ignore_errors=True)

    def record_start(self, settings: Mapping[str, Any]) -> None:
        """Keep the settings the run starts with, for ``--resume`` to compare against."""
        text = json.dumps(dict(settings), indent=2, sort_keys=True, default=str) + "\n"
        atomic_write_text(text, self.path / _STARTED)

    def check_resume(self, settings: Mapping[str, Any]) -> None:
        """Refuse to resume when ``config.toml`` no longer says what the run started with.

        Runs started before this record existed (0.2) have none and are not checked.
        """
        started_file = self.path / _STARTED
        if not started_file.is_file():
            return
        started = json.loads(started_file.read_text(encoding="utf-8"))
        now = json.loads(json.dumps(dict(settings), default=str))
        changed = sorted(k for k in started.keys() | now.keys() if started.get(k) != now.get(k))
        if changed:
            shown = "; ".join(
                f"{k} = {_shown(now.get(k))} (the run: {_shown(started.get(k))})" for k in changed
            )
            raise CLIError(
                f"--resume {str(self.path)!r}: {CONFIG_FILE} was edited after the run started "
                f"({shown}); --resume continues exactly the stored run: undo the edits, or "
                f"start a new run with --config {self.path / CONFIG_FILE} --out OTHER."
            )

    def finished(self) -> int | None:
        """The epochs of a run that completed (its ``metrics.json`` says so), else None."""
        metrics = self.path / "metrics.json"
        if not metrics.is_file() or not (self.path / "model.pt").is_file():
            return None
        try:
            recorded = json.loads(metrics.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or recorded.get("interrupted", True):
            return None
        epochs = recorded.get("epochs")
        return epochs if isinstance(epochs, int) else None


def _shown(value: object) -> str:
    return "(not set)" if value is None else json.dumps(value)


def _try_lock(handle: IO[str]) -> bool:
    """An exclusive, non-blocking lock on ``handle`` that dies with the process."""
    if sys.platform == "win32":  # pragma: no cover - tested on POSIX only
        import msvcrt

        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
