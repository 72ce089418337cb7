"""The per-run state of :func:`~visionblocks.train.fit`: what callbacks see as ``trainer``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import nn
from tqdm.auto import tqdm

from visionblocks.train._device import ExecutionPlan
from visionblocks.train._distributed import DistContext
from visionblocks.train._history import History

if TYPE_CHECKING:
    from torch.optim.swa_utils import AveragedModel

    from visionblocks.train._callbacks import Callback

__all__ = ["RunState", "TrainingDivergedError"]


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite.

    Example:
        >>> import visionblocks as vb
        >>> model = vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> def nan_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        ...     return logits.sum() * float("nan")
        >>> try:
        ...     vb.fit(model, vb.load_dataset("sample"), epochs=1, loss=nan_loss, progress=False)
        ... except TrainingDivergedError as err:
        ...     print(str(err).split(" (")[0])
        the training loss became nan at step 1
    """


class RunState:
    """The state of a running :func:`~visionblocks.train.fit`, as callbacks see it.

    Every hook of a :class:`~visionblocks.train.Callback` receives it as ``trainer``.

    Attributes:
        model: The model being trained (unwrapped from DDP/compile).
        net: What the forward pass calls (``model``, or it wrapped by DDP/compile).
        optimizer: The optimizer.
        scheduler: The learning-rate schedule, or ``None``.
        scaler: The fp16 gradient scaler (disabled for bf16/fp32).
        plan: Device, precision and memory format in use.
        dist: This process's place in a DDP run.
        history: Metrics of the completed epochs.
        callbacks: The run's callbacks, in call order.
        seed: The run's seed.
        num_classes: Outputs of the model (what MixUp/CutMix one-hot encode to).
        task: What the targets are: ``"multiclass"`` (class indices) or ``"multilabel"``
            (multi-hot rows).
        epoch: The current epoch (1-based; 0 before the first).
        step: Optimizer steps taken so far (the hooks' ``step`` counts from 1).
        step_loss: The loss of the last micro-batch, a 0-d tensor on the device (reading
            it with ``.item()`` waits for the device; keeping the tensor does not).
        ema: The exponential moving average of the weights (``fit(ema=...)``), or ``None``.
        should_stop: Set to ``True`` to stop after the current epoch.
        validation_skipped: ``True`` during an epoch whose validation ``fit(val_every=N)``
            skips (there is validation data, but this epoch's metrics have no ``val_`` keys).

    Example:
        >>> import visionblocks as vb
        >>> class Record(vb.Callback):
        ...     def on_fit_end(self, trainer: RunState) -> None:
        ...         self.seen = trainer.epoch, trainer.step, trainer.seed, len(trainer.history)
        >>> record = Record()
        >>> model = vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> _ = vb.fit(model, vb.load_dataset("sample"), epochs=2, batch_size=500,
        ...            callbacks=[record], progress=False, seed=3)
        >>> record.seen  # 2,000 images / 500 per step = 4 steps per epoch
        (2, 8, 3, 2)
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        plan: ExecutionPlan,
        dist: DistContext,
        *,
        callbacks: Sequence[Callback] = (),
        seed: int = 0,
        num_classes: int = 0,
        task: str = "multiclass",
        ema: AveragedModel | None = None,
        progress: bool | Literal["lines"] = True,
    ) -> None:
        self.model = model
        self.net: nn.Module = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
        self.plan = plan
        self.dist = dist
        self.history = History()
        self.callbacks = list(callbacks)
        self.seed = seed
        self.num_classes = num_classes
        self.task = task
        self.ema = ema
        self.progress = progress is True and dist.is_main  # progress bars
        self.lines = progress in (True, "lines") and dist.is_main  # plan and epoch lines
        self.epoch = 0
        self.step = 0
        self.step_loss: torch.Tensor | None = None
        self.should_stop = False
        self.validation_skipped = False

    @property
    def is_main_process(self) -> bool:
        """Whether this process prints and writes files (rank 0)."""
        return self.dist.is_main

    @property
    def validated_model(self) -> nn.Module:
        """The weights that validation measures: the average with ``ema``, else the model."""
        return self.ema.module if self.ema is not None else self.model

    def log(self, message: str, *, always: bool = False) -> None:
        """Print a line from the main process, without breaking a progress bar.

        Lines are shown with ``fit(progress=True)`` or ``"lines"``; ``always`` shows them
        also with ``progress=False`` (an interruption: what a log must keep).
        """
        if self.dist.is_main and (self.lines or always):
            tqdm.write(message)

    def emit(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every callback that has it, in order (only optional hooks may lack)."""
        for cb in self.callbacks:
            method = getattr(cb, hook, None)
            if method is not None:
                method(self, *args)
