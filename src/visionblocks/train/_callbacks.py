"""Callbacks: hooks into :func:`~visionblocks.train.fit` for stopping, saving and monitoring."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from visionblocks.train._checkpoint import save_checkpoint

if TYPE_CHECKING:
    from visionblocks.train._loop import Trainer

__all__ = ["BestCheckpoint", "Callback", "EarlyStopping", "GradNormMonitor"]


class Callback:
    """Base class: override the hooks you need; each gets the running :class:`Trainer`.

    A callback may set ``trainer.should_stop = True`` to end training after the
    current epoch (that is how :class:`EarlyStopping` and NAS pruning work).

    Example:
        >>> class PrintLR(Callback):
        ...     def on_epoch_end(self, trainer, epoch, metrics):
        ...         print(f"epoch {epoch}: lr {metrics['lr']:.3f}")
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once, after setup and before the first epoch."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Called before each epoch (``epoch`` is 1-based)."""

    def on_after_backward(self, trainer: Trainer, step: int) -> None:
        """Called after ``loss.backward()`` and before the optimizer step."""

    def on_step_end(self, trainer: Trainer, step: int) -> None:
        """Called after each optimizer step (``step`` counts from 1; e.g. for weight averaging)."""

    def on_validation_start(self, trainer: Trainer, epoch: int) -> None:
        """Called before validation (e.g. to swap in averaged weights)."""

    def on_validation_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """Called after validation (also without validation data) with the metrics so far."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """Called after each epoch with its metrics (train and, if any, validation)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """Called once when training ends, also after an interrupt."""


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _mode_for(monitor: str, mode: str) -> Literal["max", "min"]:
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max', 'min' or 'auto'; got {mode!r}.")
    return mode  # type: ignore[return-value]


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: A metric name, e.g. ``"val_loss"`` or ``"val_acc"``.
        patience: Epochs without improvement to wait.
        min_delta: The smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, else min).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.mode = _mode_for(monitor, mode)
        self.best = -math.inf if self.mode == "max" else math.inf
        self.bad_epochs = 0
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """Track the monitored metric; ask the trainer to stop when patience runs out."""
        if self.monitor not in metrics:
            raise ValueError(
                f"EarlyStopping monitors {self.monitor!r} but the epoch's metrics are "
                f"{sorted(metrics)}; pass val= to fit() or monitor a train_ metric."
            )
        if _improved(metrics[self.monitor], self.best, self.mode, self.min_delta):
            self.best, self.bad_epochs = metrics[self.monitor], 0
            return
        self.bad_epochs += 1
        if self.bad_epochs >= self.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True
            trainer.log(f"early stopping at epoch {epoch}: {self.monitor} best {self.best:.4f}")


class BestCheckpoint(Callback):
    """Save the model whenever ``monitor`` reaches a new best (atomically).

    Args:
        path: Where to write the checkpoint.
        monitor: The metric to watch.
        mode: ``"min"``, ``"max"`` or ``"auto"``.
    """

    def __init__(self, path: str | Path, monitor: str = "val_acc", *, mode: str = "auto") -> None:
        self.path = Path(path)
        self.monitor = monitor
        self.mode = _mode_for(monitor, mode)
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, epoch: int, metrics: dict[str, float]) -> None:
        """Save when the monitored metric improved (rank 0 only under DDP)."""
        value = metrics.get(self.monitor, math.nan)
        if _improved(value, self.best, self.mode, 0.0):
            self.best, self.best_epoch = value, epoch
            if trainer.is_main_process:
                save_checkpoint(
                    self.path, trainer.model, extra={"epoch": epoch, "metrics": dict(metrics)}
                )


class GradNormMonitor(Callback):
    """Record each layer's gradient norm every ``every`` steps (vanishing/exploding check).

    After training, ``norms[name]`` holds the recorded L2 norms of each parameter's
    gradient, and :meth:`ratio` compares the first and last layers.

    Args:
        every: Record every this many optimizer steps.
    """

    def __init__(self, every: int = 10) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1; got {every}.")
        self.every = every
        self.norms: dict[str, list[float]] = defaultdict(list)

    def on_after_backward(self, trainer: Trainer, step: int) -> None:
        """Record the gradient norm of every weight tensor (not biases or norms)."""
        if step % self.every:
            return
        for name, p in trainer.model.named_parameters():
            if p.grad is not None and p.dim() > 1:
                self.norms[name].append(float(torch.linalg.vector_norm(p.grad.float())))

    def mean_norms(self) -> dict[str, float]:
        """Mean recorded gradient norm of each layer, in model order."""
        return {name: sum(v) / len(v) for name, v in self.norms.items() if v}

    def ratio(self) -> float:
        """Mean gradient norm of the first layer divided by that of the last layer.

        Near 1 means gradients reach the input layers; orders of magnitude below 1
        means they vanish on the way down, above means they explode.
        """
        means = list(self.mean_norms().values())
        if len(means) < 2:
            raise ValueError("no gradients recorded yet: run fit() with this callback first.")
        return means[0] / means[-1]
