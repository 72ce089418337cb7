"""Callbacks: hooks into :func:`~visionblocks.train.fit` for stopping, saving and monitoring."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from visionblocks.model_file import card_of
from visionblocks.train._checkpoint import save_checkpoint
from visionblocks.train._metrics import MetricMode, known_mode

if TYPE_CHECKING:
    from visionblocks.train._state import RunState

__all__ = ["BestCheckpoint", "Callback", "EarlyStopping", "GradNormMonitor", "check_callbacks"]


class Callback:
    """Base class: override the hooks you need; each gets the run's :class:`RunState`.

    A callback may set ``trainer.should_stop = True`` to end training after the
    current epoch (that is how :class:`EarlyStopping` and NAS pruning work). Steps
    and epochs count from 1 in every hook. A callback that defines ``state_dict()``
    and ``load_state_dict(state)`` has its state saved in ``fit``'s training
    checkpoints and restored on ``resume``, so it continues exactly.

    Example:
        >>> class PrintLR(Callback):
        ...     def on_epoch_end(self, trainer, epoch, metrics):
        ...         print(f"epoch {epoch}: lr {metrics['lr']:.3f}")
    """

    def on_fit_check(self, trainer: RunState) -> None:
        """Called once, after setup and before any callback's ``on_fit_start``.

        Raise here to refuse the run before any callback has opened or written a file
        (a :class:`~visionblocks.train.CSVLogger` rewrites its file in ``on_fit_start``).
        Optional: a callback that does not subclass :class:`Callback` may omit it.
        """

    def on_fit_start(self, trainer: RunState) -> None:
        """Called once, after setup and before the first epoch."""

    def on_epoch_start(self, trainer: RunState, epoch: int) -> None:
        """Called before each epoch (``epoch`` is 1-based)."""

    def on_after_backward(self, trainer: RunState, step: int) -> None:
        """Called after the backward pass(es) of optimizer step ``step``, before the step."""

    def on_step_end(self, trainer: RunState, step: int) -> None:
        """Called after optimizer step ``step``; ``trainer.step_loss`` is its (last) loss."""

    def on_validation_start(self, trainer: RunState, epoch: int) -> None:
        """Called before validation (e.g. to swap in averaged weights)."""

    def on_validation_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Called after validation (also without validation data) with the metrics so far."""

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Called after each epoch with its metrics (train and, if any, validation)."""

    def on_exception(self, trainer: RunState, error: BaseException) -> None:
        """Called when training stops on an exception (``KeyboardInterrupt`` included)."""

    def on_fit_end(self, trainer: RunState) -> None:
        """Called once when training ends, also after an interrupt or an error."""


# The hooks fit calls on every callback; on_fit_check is optional (added after 0.2).
OPTIONAL_HOOKS = ("on_fit_check",)
_HOOKS = tuple(n for n in vars(Callback) if n.startswith("on_") and n not in OPTIONAL_HOOKS)
"""The hooks ``fit`` calls on every callback."""


def check_callbacks(callbacks: object) -> None:
    """Refuse what ``fit(callbacks=...)`` cannot call: each item must have every hook.

    Checked before training, so that a class passed for an instance or a plain function
    fails here, with the fix, and not as an ``AttributeError`` when the first hook runs.

    Example:
        >>> check_callbacks([EarlyStopping("val_loss")])
        >>> try:
        ...     check_callbacks([EarlyStopping])
        ... except TypeError as err:
        ...     print(str(err).split("; ")[1])
        pass EarlyStopping(...), an instance.
    """
    if isinstance(callbacks, Callback) or not isinstance(callbacks, Sequence):
        name = type(callbacks).__name__
        raise TypeError(
            f"callbacks must be a list of Callback objects; got {name}: pass callbacks=[...]."
        )
    for i, item in enumerate(callbacks):
        if isinstance(item, type):
            raise TypeError(
                f"callbacks[{i}] is the class {item.__name__}, not an instance; pass "
                f"{item.__name__}(...), an instance."
            )
        missing = [hook for hook in _HOOKS if not callable(getattr(item, hook, None))]
        if missing:
            what = getattr(item, "__name__", None) if callable(item) else None
            shown = f"the function {what}" if what else f"a {type(item).__name__}"
            raise TypeError(
                f"callbacks[{i}] is {shown}, not a Callback (it has no {missing[0]}); subclass "
                f"visionblocks.train.Callback and override a hook such as on_epoch_end."
            )


def _check_monitored(who: str, monitor: str, trainer: RunState, metrics: dict[str, float]) -> bool:
    """Whether ``metrics`` holds ``monitor``; ``False`` in an epoch without validation.

    Raises:
        ValueError: An epoch that should hold it does not (a misspelt key, or no ``val=``).
    """
    if monitor in metrics:
        return True
    if trainer.validation_skipped:  # fit(val_every=N) between validations
        return False
    names = sorted(k for k in metrics if not k.startswith("_"))
    raise ValueError(
        f"{who} monitors {monitor!r} but the epoch's metrics are {names}; pass val= to fit() "
        f"or monitor a train_ metric."
    )


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if math.isnan(value):
        return False
    return value > best + min_delta if mode == "max" else value < best - min_delta


def _mode_for(monitor: str, mode: str) -> MetricMode | None:
    """``mode``, or for ``"auto"`` the direction of a built-in metric (``None``: not yet known)."""
    if mode == "auto":
        return known_mode(monitor)
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max', 'min' or 'auto'; got {mode!r}.")
    return mode  # type: ignore[return-value]


def _start_value(mode: MetricMode | None) -> float:
    """What any value improves on: -inf for ``"max"``, +inf for ``"min"`` (NaN: not yet known)."""
    return math.nan if mode is None else -math.inf if mode == "max" else math.inf


def _bind_monitor(who: str, monitor: str, mode: MetricMode | None, trainer: RunState) -> MetricMode:
    """Check ``monitor`` against what the run records, before any training; its direction.

    ``fit`` names the metrics its history will hold (``History.modes``) before
    ``on_fit_check``, which runs before any callback's ``on_fit_start``: a misspelt
    monitor, a ``val_`` one without validation data, or a
    user metric of unknown direction with ``mode="auto"`` fails here, not after an epoch.

    Raises:
        ValueError: The run does not record ``monitor`` (the message lists what it
            records), or ``mode="auto"`` and nobody gave the metric a direction.
    """
    modes = trainer.history.modes
    if modes and monitor not in modes:  # empty: a RunState that fit did not set up
        names = sorted(modes)
        validating = any(k.startswith("val_") for k in modes)
        fix = (
            "pass val= to fit()"
            if monitor.startswith("val_") and not validating
            else "add it to fit(metrics=[...])"
            if monitor.startswith("val_")
            else "monitor a val_ or train_ metric"
        )
        raise ValueError(
            f"{who} monitors {monitor!r}, which this run does not record; it records {names}: "
            f"{fix}, or monitor one of those."
        )
    direction = mode or modes.get(monitor)
    if direction is None:
        raise ValueError(
            f"{who} monitors {monitor!r}, a metric of unknown direction; pass mode='max' "
            f"(higher is better) or mode='min'."
        )
    return direction


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved for ``patience`` epochs.

    Args:
        monitor: A metric name, e.g. ``"val_loss"`` or ``"val_acc"``; an epoch without it
            (misspelt, or a ``val_`` metric with no validation data) is an error.
        patience: Epochs without improvement to wait (>= 1).
        min_delta: The smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"``: the metric's direction (max for
            accuracies, F1, recall; min for losses; a ``torchmetrics.Metric``'s
            ``higher_is_better``). A function of ``fit(metrics=...)`` has none: give it here.

    ``monitor`` is checked when ``fit`` starts, against the metrics the run records.

    Example:
        >>> import visionblocks as vb
        >>> model = vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> stopper = EarlyStopping("train_loss", patience=1, min_delta=10.0)  # never improves
        >>> history = vb.fit(model, vb.load_dataset("sample"), epochs=5, batch_size=500,
        ...                  callbacks=[stopper], progress=False, seed=0)
        >>> len(history), stopper.stopped_epoch
        (2, 2)
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        *,
        patience: int = 5,
        min_delta: float = 0.0,
        mode: str = "auto",
    ) -> None:
        if not isinstance(patience, int) or isinstance(patience, bool) or patience < 1:
            raise ValueError(
                f"patience must be an int >= 1 (epochs without improvement before stopping), "
                f"e.g. 5; got {patience!r}."
            )
        if not (isinstance(min_delta, int | float) and 0 <= min_delta < math.inf):
            raise ValueError(f"min_delta must be a number >= 0, e.g. 0.001; got {min_delta!r}.")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.mode = _mode_for(monitor, mode)
        self.best = _start_value(self.mode)
        self.bad_epochs = 0
        self.stopped_epoch: int | None = None

    def on_fit_check(self, trainer: RunState) -> None:
        """Check that the run records ``monitor``, and learn its direction if ``mode="auto"``."""
        self.mode = _bind_monitor("EarlyStopping", self.monitor, self.mode, trainer)
        if math.isnan(self.best):
            self.best = _start_value(self.mode)

    def state_dict(self) -> dict[str, float | int | None]:
        """Best value and patience used so far (saved in training checkpoints)."""
        return {"best": self.best, "bad_epochs": self.bad_epochs, "stopped": self.stopped_epoch}

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        """Continue from :meth:`state_dict`."""
        self.best = float(state["best"])  # type: ignore[arg-type]
        self.bad_epochs = int(state["bad_epochs"])  # type: ignore[arg-type]
        self.stopped_epoch = None if state["stopped"] is None else int(state["stopped"])

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Track the monitored metric; ask the trainer to stop when patience runs out."""
        if not _check_monitored("EarlyStopping", self.monitor, trainer, metrics):
            return
        assert self.mode is not None  # bound in on_fit_check
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

    The weights saved are the ones validation measured: the averaged weights with
    ``fit(ema=...)`` or :class:`WeightAveraging`, else the model's.

    Args:
        path: Where to write the checkpoint.
        monitor: The metric to watch (one of validation's ``val_`` or the epoch's ``train_``
            metrics, e.g. ``"val_macro_f1"`` with ``fit(metrics=["macro_f1"])``); checked
            when ``fit`` starts, as for :class:`EarlyStopping`. ``None``: ``"val_acc"``, or
            ``"val_map"`` (mean average precision) in a multi-label run.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (the metric's direction, as for
            :class:`EarlyStopping`).

    Example:
        >>> import tempfile, visionblocks as vb
        >>> best = BestCheckpoint(f"{tempfile.mkdtemp()}/best.pt", monitor="val_acc")
        >>> model = vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> history = vb.fit(model, vb.load_dataset("sample"), vb.load_dataset("sample", "test"),
        ...                  epochs=2, batch_size=500, callbacks=[best], progress=False, seed=0)
        >>> saved = vb.load_checkpoint(best.path)
        >>> saved["epoch"] == best.best_epoch, saved["metrics"]["val_acc"] == best.best
        (True, True)
        >>> best.best == max(history["val_acc"])
        True
    """

    def __init__(self, path: str | Path, monitor: str | None = None, *, mode: str = "auto") -> None:
        self.path = Path(path)
        self.given_monitor = monitor
        self.monitor = monitor or "val_acc"
        self.mode = _mode_for(self.monitor, mode)
        self.best = _start_value(self.mode)
        self.best_epoch: int | None = None

    def on_fit_check(self, trainer: RunState) -> None:
        """Check that the run records ``monitor``, and learn its direction if ``mode="auto"``."""
        if self.given_monitor is None:  # the run's headline metric
            self.monitor = "val_map" if trainer.task == "multilabel" else "val_acc"
        self.mode = _bind_monitor("BestCheckpoint", self.monitor, self.mode, trainer)
        if math.isnan(self.best):
            self.best = _start_value(self.mode)

    def state_dict(self) -> dict[str, float | int | None]:
        """Best value and its epoch (saved in training checkpoints)."""
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        """Continue from :meth:`state_dict`."""
        self.best = float(state["best"])  # type: ignore[arg-type]
        self.best_epoch = None if state["best_epoch"] is None else int(state["best_epoch"])

    def on_validation_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Save the validated weights when the metric improved (rank 0 only under DDP)."""
        if not _check_monitored("BestCheckpoint", self.monitor, trainer, metrics):
            return
        value = metrics[self.monitor]
        assert self.mode is not None  # bound in on_fit_check
        if _improved(value, self.best, self.mode, 0.0):
            self.best, self.best_epoch = value, epoch
            if trainer.is_main_process:
                # The validated weights (an EMA copy may carry an older card) with the
                # model's card, so that load_model rebuilds this file like any model.pt.
                save_checkpoint(
                    self.path,
                    trainer.validated_model,
                    card=card_of(trainer.model),
                    extra={"epoch": epoch, "metrics": dict(metrics)},
                )


class GradNormMonitor(Callback):
    """Record each layer's gradient norm every ``every`` steps (vanishing/exploding check).

    After training, ``norms[name]`` holds the recorded L2 norms of each parameter's
    gradient, and :meth:`ratio` compares the first and last layers.

    Args:
        every: Record every this many optimizer steps.

    Example:
        >>> import visionblocks as vb
        >>> monitor = GradNormMonitor(every=2)
        >>> model = vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> _ = vb.fit(model, vb.load_dataset("sample"), epochs=1, batch_size=250,
        ...            callbacks=[monitor], progress=False, seed=0)
        >>> list(monitor.norms)[:2], len(monitor.norms["head.weight"])  # steps 1, 3, 5, 7 of 8
        (['features.0.0.weight', 'features.1.0.weight'], 4)
    """

    def __init__(self, every: int = 10) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1; got {every}.")
        self.every = every
        self.norms: dict[str, list[float]] = defaultdict(list)

    def state_dict(self) -> dict[str, list[float]]:
        """The recorded norms (saved in training checkpoints)."""
        return {name: list(values) for name, values in self.norms.items()}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        """Continue from :meth:`state_dict`."""
        self.norms = defaultdict(list, {k: list(v) for k, v in state.items()})

    def on_after_backward(self, trainer: RunState, step: int) -> None:
        """Record the gradient norm of every weight tensor (not biases or norms)."""
        if (step - 1) % self.every:  # steps 1, 1 + every, 1 + 2 * every, ...
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
