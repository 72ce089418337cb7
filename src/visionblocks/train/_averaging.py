"""Weight averaging: an exponential moving average of the weights, as a ``fit()`` callback.

Evaluating an average of the last few hundred steps' weights instead of the last
step's smooths out the noise of SGD; it is one of the ingredients of the CIFAR-10
speed records (David Page's ResNet-9, https://myrtle.ai/learn/how-to-train-your-resnet/,
and airbench's early versions). BatchNorm running statistics are averaged with the weights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from visionblocks.train._callbacks import Callback

if TYPE_CHECKING:
    from visionblocks.train._state import RunState

__all__ = ["WeightAveraging"]


class WeightAveraging(Callback):
    """Keep an exponential moving average (EMA) of the model's weights while ``fit()`` trains.

    Every ``every`` optimizer steps the average moves towards the current weights by
    ``1 - decay ** every`` (so ``decay`` is per step whatever ``every`` is), with the
    usual warm-up ``decay_t = min(decay, (1 + t) / (10 + t))`` so that the first
    averages are not dominated by the random initialization. The averaged weights are
    swapped in for each epoch's validation and swapped back for training; at the end of
    training they are loaded into the model for good (``apply_at_end=True``).

    The average is saved in ``fit``'s training checkpoints (:meth:`state_dict`), so a run
    resumed with ``fit(resume=...)`` continues it exactly. ``fit(ema=...)`` is the simpler
    way to average; this callback adds the warm-up and the ``every`` option.

    Args:
        decay: Per-step decay in [0, 1); 0.99 averages over roughly the last 100 steps.
        every: Update the average every this many steps (cheaper than every step).
        apply_at_end: Leave the averaged weights in the model when training ends.

    Example:
        >>> import visionblocks as vb
        >>> ema = WeightAveraging(decay=0.9, every=1)
        >>> model = vb.simple_cnn(in_channels=1, image_size=28)
        >>> _ = vb.fit(model, vb.load_dataset("sample"), epochs=1, batch_size=250,
        ...            callbacks=[ema], progress=False, seed=0)
        >>> ema.updates  # 2,000 images / 250 per step
        8
    """

    def __init__(self, decay: float = 0.99, *, every: int = 1, apply_at_end: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), e.g. 0.99; got {decay}.")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1; got {every!r}.")
        self.decay = decay
        self.every = every
        self.apply_at_end = apply_at_end
        self.updates = 0
        self.average: dict[str, torch.Tensor] = {}
        self._backup: dict[str, torch.Tensor] | None = None
        self._restored: dict[str, object] | None = None

    def state_dict(self) -> dict[str, object]:
        """The average and its update count, for ``fit``'s training checkpoint."""
        return {"updates": self.updates, "average": dict(self.average)}

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore what :meth:`state_dict` returned (after ``on_fit_start`` re-initialized it)."""
        self._restored = state

    def _live(self, trainer: RunState) -> dict[str, torch.Tensor]:
        # state_dict() tensors share storage with the parameters and buffers, so copying into
        # them changes the model; integer buffers (BN's batch counters) are not averaged.
        return {k: v for k, v in trainer.model.state_dict().items() if v.is_floating_point()}

    def on_fit_start(self, trainer: RunState) -> None:
        """Start the average at the initial weights."""
        self.average = {k: v.detach().clone() for k, v in self._live(trainer).items()}
        self.updates = 0
        restored, self._restored = self._restored, None
        if restored is not None:
            self.updates = int(restored["updates"])  # type: ignore[call-overload]
            for name, value in restored["average"].items():  # type: ignore[attr-defined]
                self.average[name].copy_(value)

    @torch.no_grad()
    def on_step_end(self, trainer: RunState, step: int) -> None:
        """Move the average towards the current weights every ``every`` steps."""
        if step % self.every:
            return
        self.updates += 1
        t = self.updates * self.every
        decay = min(self.decay, (1 + t) / (10 + t)) ** self.every
        live = self._live(trainer)
        for name, avg in self.average.items():
            avg.lerp_(live[name], 1.0 - decay)

    @torch.no_grad()
    def _swap_in(self, trainer: RunState) -> None:
        live = self._live(trainer)
        self._backup = {k: v.detach().clone() for k, v in live.items()}
        for name, avg in self.average.items():
            live[name].copy_(avg)

    @torch.no_grad()
    def _swap_out(self, trainer: RunState) -> None:
        if self._backup is None:
            return
        live = self._live(trainer)
        for name, saved in self._backup.items():
            live[name].copy_(saved)
        self._backup = None

    def on_validation_start(self, trainer: RunState, epoch: int) -> None:
        """Validate the averaged weights."""
        if self.average:
            self._swap_in(trainer)

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        """Restore the training weights after validation."""
        self._swap_out(trainer)

    @torch.no_grad()
    def on_fit_end(self, trainer: RunState) -> None:
        """Restore (after an interrupt) and, with ``apply_at_end``, load the average for good."""
        self._swap_out(trainer)
        if self.apply_at_end and self.average:
            live = self._live(trainer)
            for name, avg in self.average.items():
                live[name].copy_(avg)
