"""Loggers: watch a run while it trains, as a CSV file or in TensorBoard.

Both are :class:`~visionblocks.train.Callback` objects that only rank 0 runs under DDP.
A per-step value is read from the device (``float(trainer.step_loss)``) only on the
steps that are logged: reading it waits for every launched kernel, which on a GPU
stalls the queue that keeps it busy, so ``every_n_steps`` is also the sync rate.
The learning rate of a step is taken in ``on_after_backward``, before the optimizer
and the schedule step, so it is the rate that step used.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from visionblocks._paths import write_probe
from visionblocks.train._callbacks import Callback

if TYPE_CHECKING:
    from visionblocks.train._state import RunState

__all__ = ["STEP_FIELDS", "CSVLogger", "TensorBoardLogger"]

STEP_FIELDS = ("step", "epoch", "loss", "lr")
"""Columns of :class:`CSVLogger`'s per-step file."""


def _check_every(every_n_steps: object, *, optional: bool) -> None:
    if every_n_steps is None and optional:
        return
    if not isinstance(every_n_steps, int) or isinstance(every_n_steps, bool) or every_n_steps < 1:
        allowed = "an int >= 1 or None" if optional else "an int >= 1"
        raise ValueError(f"every_n_steps must be {allowed}, e.g. 50; got {every_n_steps!r}.")


def _logs_step(every_n_steps: int | None, step: int) -> bool:
    return every_n_steps is not None and step % every_n_steps == 0


def _sync(f: IO[str]) -> None:
    """Push the written rows to the OS (survives ``kill -9``) and to the disk (survives a crash)."""
    f.flush()
    os.fsync(f.fileno())


def _read_rows(path: Path, keep: Callable[[dict[str, str]], bool]) -> tuple[list[str], list[Any]]:
    """The header and the rows of an existing CSV file that ``keep`` accepts."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [row for row in reader if keep(row)]
        return list(reader.fieldnames or []), rows


def _write_csv(path: Path, fields: Sequence[str], rows: Sequence[Mapping[str, object]]) -> None:
    """Replace ``path`` atomically by a CSV file with ``fields`` and ``rows``."""
    # A plain open (not mkstemp, which makes 0600 files) so the file gets the usual umask mode.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(fields))
            writer.writeheader()
            writer.writerows(rows)
            _sync(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _cannot_write_in(folder: Path) -> str | None:
    """Why no file can be written in ``folder`` (created if missing), or ``None`` if one can.

    The loggers run it when they are made: a bad path then fails before any training
    work, not when ``fit`` opens the files after setting the run up.
    """
    in_the_way = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if in_the_way is not None:
        return f"{str(in_the_way)!r} is a file, not a folder"
    return write_probe(folder)


def _count(row: Mapping[str, str], key: str) -> int:
    return int(float(row.get(key) or 0))


def _writable_file(path: str | os.PathLike[str], name: str) -> Path:
    """``path`` as a file :class:`CSVLogger` can write (its folder created), else a ValueError."""
    file = Path(path)
    if file.is_dir():
        raise ValueError(
            f"CSVLogger {name} {str(path)!r} is a folder; give a file, e.g. metrics.csv."
        )
    reason = _cannot_write_in(file.parent)
    if reason is None and file.exists() and not os.access(file, os.W_OK):
        reason = "the file is read-only"
    if reason is not None:
        raise ValueError(
            f"CSVLogger cannot write to {name} {str(path)!r} ({reason}); pick a file in a folder "
            f"you can write to."
        )
    return file


class CSVLogger(Callback):
    """Append one row per epoch (its metrics) to a CSV file while ``fit`` trains.

    Each epoch's row is flushed and ``fsync``-ed as soon as the epoch ends, so a run
    killed by any means (``kill -9``, a power cut) keeps every finished epoch. The
    columns are ``epoch`` then the epoch's metrics (those of
    :class:`~visionblocks.train.History`): the file holds the same values as
    ``history.to_csv`` would, but it grows during the run.

    With ``every_n_steps`` a second file gets a row every that many optimizer steps:
    ``step``, ``epoch``, ``loss`` (the loss of the step's last micro-batch,
    ``trainer.step_loss``) and ``lr`` (the rate the step used). Step rows are flushed
    as they are written (a killed process keeps them) and ``fsync``-ed with each epoch's row.

    A new run starts the files afresh. A run resumed with ``fit(resume=...)`` keeps
    the rows of the epochs (and steps) its checkpoint holds, drops those of the
    epoch that was interrupted (it is replayed), and appends.

    Args:
        path: The per-epoch CSV file; parent folders are created.
        every_n_steps: Also log every this many optimizer steps (``None``: epochs only).
            Each logged step reads the loss back from the device.
        steps_path: The per-step file; default ``<path stem>_steps.csv`` next to ``path``.

    Raises:
        ValueError: ``path`` (or ``steps_path``) is a folder or cannot be written (its
            folder is created here to find out), or ``every_n_steps`` is not an int >= 1:
            both checked here, before any training.

    Example:
        >>> import csv, tempfile, visionblocks as vb
        >>> folder = tempfile.mkdtemp()
        >>> logger = CSVLogger(f"{folder}/metrics.csv", every_n_steps=4)
        >>> history = vb.fit(vb.simple_cnn(in_channels=1, image_size=28), vb.load_dataset("sample"),
        ...                  epochs=2, batch_size=250, callbacks=[logger], progress=False, seed=0)
        >>> rows = list(csv.DictReader(logger.path.read_text().splitlines()))
        >>> [int(r["epoch"]) for r in rows]
        [1, 2]
        >>> [float(r["train_loss"]) for r in rows] == history["train_loss"]
        True
        >>> [int(r["step"]) for r in csv.DictReader(logger.steps_path.read_text().splitlines())]
        [4, 8, 12, 16]
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        every_n_steps: int | None = None,
        steps_path: str | os.PathLike[str] | None = None,
    ) -> None:
        _check_every(every_n_steps, optional=True)
        self.path = _writable_file(path, "path")
        self.every_n_steps = every_n_steps
        self.steps_path = (
            Path(steps_path)
            if steps_path is not None
            else self.path.with_name(f"{self.path.stem}_steps.csv")
        )
        if every_n_steps is not None:
            _writable_file(self.steps_path, "steps_path")
        self._fields: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        self._steps_file: IO[str] | None = None
        self._steps_writer: Any = None
        self._lr = 0.0

    def on_fit_start(self, trainer: RunState) -> None:
        """Open the files: afresh for a new run, keeping the checkpointed rows on resume."""
        if not trainer.is_main_process:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fields, self._rows = [], []
        if trainer.epoch > 0 and self.path.exists():  # resumed: epochs <= trainer.epoch are kept
            self._fields, self._rows = _read_rows(
                self.path, lambda row: _count(row, "epoch") <= trainer.epoch
            )
        self._rewrite()
        if self.every_n_steps is None:
            return
        self.steps_path.parent.mkdir(parents=True, exist_ok=True)
        steps: list[Any] = []
        if trainer.step > 0 and self.steps_path.exists():
            _, steps = _read_rows(self.steps_path, lambda row: _count(row, "step") <= trainer.step)
        _write_csv(self.steps_path, STEP_FIELDS, steps)
        self._steps_file = self.steps_path.open("a", newline="")
        self._steps_writer = csv.DictWriter(self._steps_file, fieldnames=STEP_FIELDS)

    def on_after_backward(self, trainer: RunState, step: int) -> None:
        """Note the learning rate that step ``step`` is about to use."""
        if self._steps_file is not None and _logs_step(self.every_n_steps, step):
            self._lr = trainer.optimizer.param_groups[0]["lr"]

    def on_step_end(self, trainer: RunState, step: int) -> None:
        """Write a step row every ``every_n_steps`` steps."""
        if self._steps_file is None or not _logs_step(self.every_n_steps, step):
            return
        loss = float(trainer.step_loss) if trainer.step_loss is not None else float("nan")
        self._steps_writer.writerow(
            {"step": step, "epoch": trainer.epoch, "loss": loss, "lr": self._lr}
        )
        self._steps_file.flush()

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Append the epoch's row and push it to the disk."""
        if self._file is None:
            return
        row = {"epoch": epoch, **{k: v for k, v in metrics.items() if k != "epoch"}}
        self._rows.append(row)
        new = [key for key in row if key not in self._fields]
        if new:  # the first row, or a metric that appeared later: rewrite with the full header
            self._fields += new
            self._rewrite()
        else:
            csv.DictWriter(self._file, fieldnames=self._fields).writerow(row)
            _sync(self._file)
        if self._steps_file is not None:
            _sync(self._steps_file)

    def on_fit_end(self, trainer: RunState) -> None:
        """Close the files (also after an interruption or an error)."""
        for f in (self._file, self._steps_file):
            if f is not None:
                _sync(f)
                f.close()
        self._file = self._steps_file = self._steps_writer = None

    def _rewrite(self) -> None:
        """Write the header and every row so far atomically, then reopen for appending."""
        if self._file is not None:
            self._file.close()
        if self._fields:
            _write_csv(self.path, self._fields, self._rows)
        else:
            self.path.write_text("")  # no header until the first epoch names the columns
        self._file = self.path.open("a", newline="")


def _summary_writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(
            "TensorBoardLogger needs the tensorboard package: "
            f'pip install "visionblocks[tensorboard]" (importing it failed: {err}).'
        ) from None
    return SummaryWriter


def _writable_folder(log_dir: str | os.PathLike[str]) -> Path:
    """``log_dir``, created; checked here so that a bad folder fails before training starts."""
    folder = Path(log_dir)
    reason = _cannot_write_in(folder)
    if reason is not None:
        raise ValueError(
            f"TensorBoardLogger cannot write to log_dir {str(log_dir)!r} ({reason}); "
            f"pick a folder you can write to."
        )
    return folder


class TensorBoardLogger(Callback):
    """Write a run's scalars for TensorBoard (``tensorboard --logdir LOG_DIR``).

    Every ``every_n_steps`` optimizer steps: ``step/train_loss`` (the loss of the
    step's last micro-batch, ``trainer.step_loss``) and ``step/lr`` (the rate the
    step used). After every epoch, each of its metrics as ``epoch/<name>``:
    ``epoch/train_loss``, ``epoch/train_acc``, ``epoch/val_loss``, ``epoch/val_acc``,
    ``epoch/lr``, ``epoch/images_per_second``, ``epoch/seconds``. The x axis of all
    of them is the optimizer step, so step and epoch curves line up; a resumed run
    hides the events the interrupted run wrote after its checkpoint (``purge_step``).

    Args:
        log_dir: The folder of the event files (created).
        every_n_steps: Write the step scalars every this many optimizer steps; each
            reads the loss back from the device.

    Raises:
        ImportError: ``tensorboard`` is not installed (``pip install "visionblocks[tensorboard]"``).
        ValueError: ``log_dir`` cannot be created or written, or ``every_n_steps`` is
            not an int >= 1 (both checked here, before any training).

    Example:
        >>> import tempfile, visionblocks as vb
        >>> from pathlib import Path
        >>> logger = TensorBoardLogger(tempfile.mkdtemp(), every_n_steps=2)
        >>> _ = vb.fit(vb.simple_cnn(in_channels=1, image_size=28), vb.load_dataset("sample"),
        ...            epochs=1, batch_size=250, callbacks=[logger], progress=False, seed=0)
        >>> [p.name.split(".")[0] for p in Path(logger.log_dir).iterdir()]
        ['events']
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, every_n_steps: int = 50) -> None:
        _check_every(every_n_steps, optional=False)
        self._writer_class = _summary_writer_class()
        self.log_dir = _writable_folder(log_dir)
        self.every_n_steps = every_n_steps
        self._writer: Any = None
        self._lr = 0.0

    def on_fit_start(self, trainer: RunState) -> None:
        """Open an event file (rank 0 only); on resume, hide events past the checkpoint."""
        if trainer.is_main_process:
            purge = trainer.step + 1 if trainer.step > 0 else None
            self._writer = self._writer_class(str(self.log_dir), purge_step=purge)

    def on_after_backward(self, trainer: RunState, step: int) -> None:
        """Note the learning rate that step ``step`` is about to use."""
        if self._writer is not None and _logs_step(self.every_n_steps, step):
            self._lr = trainer.optimizer.param_groups[0]["lr"]

    def on_step_end(self, trainer: RunState, step: int) -> None:
        """Write the step scalars every ``every_n_steps`` steps."""
        if self._writer is None or not _logs_step(self.every_n_steps, step):
            return
        if trainer.step_loss is not None:
            self._writer.add_scalar("step/train_loss", float(trainer.step_loss), step)
        self._writer.add_scalar("step/lr", self._lr, step)

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Write the epoch's metrics at the current step and flush them to the disk."""
        if self._writer is None:
            return
        for name, value in metrics.items():
            if name != "epoch":
                self._writer.add_scalar(f"epoch/{name}", value, trainer.step)
        self._writer.flush()

    def on_fit_end(self, trainer: RunState) -> None:
        """Close the event file (also after an interruption or an error)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
