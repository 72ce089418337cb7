"""``fit(ema=...)``: the one exponential moving average of the weights, validated and kept.

Evaluating an average of the last few hundred steps' weights instead of the last
step's smooths out the noise of SGD (David Page's ResNet-9,
https://myrtle.ai/learn/how-to-train-your-resnet/; airbench). The average is PyTorch's
own :class:`~torch.optim.swa_utils.AveragedModel` with ``use_buffers=True``, so that
BatchNorm's running statistics are averaged with the weights (instead of recomputed,
which would need another pass over the data); integer buffers (BatchNorm's count of
batches) are not averaged. :class:`EMA` adds what the fast recipes need: an
update every ``every`` steps (cheaper) and the warm-up
``decay_t = min(decay, (1 + t) / (10 + t))``, so that the first averages are not
dominated by the random initialization.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel

__all__ = [
    "EMA",
    "ExponentialAverage",
    "apply_average",
    "as_ema",
    "make_ema",
    "one_average",
    "update_ema",
]

_Tensors = tuple[Tensor, ...] | list[Tensor]  # what AveragedModel passes its multi_avg_fn


@dataclass(frozen=True)
class EMA:
    """How ``fit(ema=...)`` averages the weights; ``fit(ema=0.99)`` is ``EMA(0.99)``, warmed up.

    Every ``every`` optimizer steps the average moves towards the current weights by
    ``1 - decay_t ** every`` (so ``decay`` is per step whatever ``every`` is), where
    ``decay_t = decay``, or with ``warmup`` ``min(decay, (1 + t) / (10 + t))`` after
    ``t`` steps. Validation measures the average, checkpoints save it (a resumed run
    continues it exactly), and at the end it is left in the model.

    Args:
        decay: Per-step decay in (0, 1); 0.99 averages over roughly the last 100 steps.
        every: Update the average every this many optimizer steps.
        warmup: Use the warm-up decay above for the first steps (the default). Without it
            the first steps' weights, far from the final ones, keep a large share of a short
            run's average: ResNet-20 on 320 images of 4 Fashion-MNIST classes, 8 epochs x 20
            steps, validated at 30% with ``EMA(0.99, warmup=False)``, 86% with warm-up and
            89% without an average.

    Raises:
        ValueError: ``decay`` outside (0, 1) or ``every`` not an int >= 1.

    Example:
        >>> EMA(0.99, every=2).decay_at(updates=1)  # t = 2 steps: 3 / 12, squared
        0.0625
        >>> EMA(0.99, warmup=False).decay_at(updates=1)
        0.99
        >>> EMA(1.0)
        Traceback (most recent call last):
            ...
        ValueError: ema is a per-step decay in (0, 1), e.g. 0.99; got 1.0.
    """

    decay: float
    every: int = 1
    warmup: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.decay, bool) or not isinstance(self.decay, int | float):
            raise TypeError(f"ema decay must be a number in (0, 1); got {self.decay!r}.")
        if not 0 < self.decay < 1:
            raise ValueError(f"ema is a per-step decay in (0, 1), e.g. 0.99; got {self.decay!r}.")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"ema every must be an int >= 1; got {self.every!r}.")

    def decay_at(self, updates: int) -> float:
        """The decay of the ``updates``-th update (counting from 1), for ``every`` steps."""
        t = updates * self.every
        per_step = min(self.decay, (1 + t) / (10 + t)) if self.warmup else self.decay
        return float(per_step**self.every)


def as_ema(ema: float | EMA | None) -> EMA | None:
    """``fit``'s ``ema=`` argument as an :class:`EMA` (a float is its per-step decay)."""
    if ema is None or isinstance(ema, EMA):
        return ema
    return EMA(ema)


class ExponentialAverage(AveragedModel):
    """``fit``'s average: an :class:`~torch.optim.swa_utils.AveragedModel` with its :class:`EMA`.

    Without warm-up the first update copies the weights (AveragedModel's way, and 0.2's
    ``fit(ema=0.99)``); with it the average starts at the initial weights and the first
    update already moves by ``1 - decay_at(1)`` (0.2's ``WeightAveraging``, which the
    fast recipe was tuned with): ``n_averaged`` counts the initial weights as one.
    """

    def __init__(self, model: nn.Module, options: EMA) -> None:
        super().__init__(model, multi_avg_fn=self._average, use_buffers=True)
        self.options = options
        self._weight = 0.0  # of the current weights in this update: 1 - decay_at(n)
        if options.warmup:
            self.n_averaged.fill_(1)

    def update_parameters(self, model: nn.Module) -> None:
        """Move the average towards ``model``'s weights (update ``n_averaged`` of the formula)."""
        # n_averaged lives on the CPU, so reading it does not wait for an accelerator.
        self._weight = 1.0 - self.options.decay_at(int(self.n_averaged))
        super().update_parameters(model)

    @torch.no_grad()
    def _average(self, averaged: _Tensors, current: _Tensors, _: Tensor | int) -> None:
        if not averaged[0].is_floating_point():  # AveragedModel groups tensors by dtype
            torch._foreach_copy_(list(averaged), list(current))  # counters are not averaged
            return
        torch._foreach_lerp_(list(averaged), list(current), self._weight)


def make_ema(model: nn.Module, options: EMA) -> ExponentialAverage:
    """An average of ``model``'s parameters and buffers, as ``options`` says."""
    return ExponentialAverage(model, options)


def update_ema(ema: AveragedModel, model: nn.Module, step: int) -> None:
    """After optimizer step ``step`` (from 1): move the average every ``every`` steps."""
    if not isinstance(ema, ExponentialAverage) or step % ema.options.every == 0:
        ema.update_parameters(model)


@torch.no_grad()
def apply_average(ema: AveragedModel, model: nn.Module) -> None:
    """Copy the averaged floating tensors into ``model`` (in place).

    Integer buffers (BatchNorm's count of batches seen) keep the live model's value: an
    average of a count means nothing, and the count is what the model has seen.
    """
    averaged = ema.module.state_dict()
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            value.copy_(averaged[name])


def one_average(ema: float | EMA | None, callbacks: Sequence[object]) -> EMA | None:
    """The run's one average: ``fit(ema=...)``, or a deprecated ``WeightAveraging`` callback's.

    Raises:
        ValueError: Both ask for an average (two would be stacked, one on the other).
    """
    options = as_ema(ema)
    asked = [cb for cb in callbacks if callable(getattr(cb, "fit_ema", None))]
    if len(asked) + (options is not None) > 1:
        raise ValueError(
            f"two weight averages were asked for (fit(ema={ema!r}) and "
            f"{', '.join(type(cb).__name__ for cb in asked)}): a run keeps one; pass "
            f"fit(ema=EMA(decay, every=...)) only."
        )
    return asked[0].fit_ema() if asked else options  # type: ignore[attr-defined]
