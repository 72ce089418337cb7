"""Optimizers and learning-rate schedules for :func:`~visionblocks.train.fit`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from visionblocks.train._muon import Muon
from visionblocks.train._param_groups import decay_groups, nonempty_groups

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "check_optimizer",
    "check_schedule",
    "default_lr",
    "make_optimizer",
    "make_schedule",
]

OPTIMIZERS = ("sgd", "muon", "adamw", "adam")
SCHEDULES = ("onecycle", "cosine", "step", "plateau", "none")
Schedule = LRScheduler | ReduceLROnPlateau


def default_lr(optimizer: str, batch_size: int) -> float:
    """Peak learning rate that works for the library's models with one-cycle.

    SGD (and Muon's SGD steps, see :meth:`~visionblocks.train.Muon.for_model`): 0.2 per
    256 examples, scaled linearly with the batch (Goyal et al. 2017,
    https://arxiv.org/abs/1706.02677). AdamW: 2e-3, independent of the batch.
    """
    return 0.2 * batch_size / 256 if optimizer in ("sgd", "muon") else 2e-3


def check_optimizer(optimizer: object) -> None:
    """Refuse an optimizer that is neither a known name nor a ``torch.optim.Optimizer``."""
    if isinstance(optimizer, torch.optim.Optimizer):
        return
    if not isinstance(optimizer, str) or optimizer.lower() not in OPTIMIZERS:
        raise ValueError(
            f"unknown optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)} "
            f"or pass a torch.optim.Optimizer."
        )


def check_schedule(schedule: object) -> None:
    """Refuse a learning-rate schedule that is not a known name (or None)."""
    name = "none" if schedule is None else schedule
    if not isinstance(name, str) or name not in SCHEDULES:
        raise ValueError(
            f"unknown schedule {schedule!r}; use one of {', '.join(SCHEDULES)} or None."
        )


def make_optimizer(
    optimizer: str | torch.optim.Optimizer,
    model: nn.Module,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
    param_groups: Iterable[dict[str, Any]] | None = None,
) -> torch.optim.Optimizer:
    """Build the optimizer by name, or pass through one the user built.

    ``param_groups`` (e.g. from :func:`visionblocks.param_groups`) replaces the
    default grouping; each group's ``lr`` is its peak learning rate.
    """
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    check_optimizer(optimizer)
    assert isinstance(optimizer, str)  # check_optimizer refused anything else
    name = optimizer.lower()
    if name == "muon" and param_groups is None:  # its own grouping: filters apart
        return Muon.for_model(model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    groups = nonempty_groups(
        [dict(g) for g in param_groups]
        if param_groups is not None
        else decay_groups(model.parameters(), weight_decay)
    )
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay
        )
    if name == "muon":
        return Muon(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def make_schedule(
    schedule: str | None,
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup: float,
) -> Schedule | None:
    """A per-step schedule (``"plateau"`` steps per epoch on the validation loss).

    Args:
        schedule: ``"onecycle"``, ``"cosine"``, ``"step"``, ``"plateau"`` or ``None``.
        optimizer: The optimizer; each group's current ``lr`` is its peak.
        total_steps: Optimizer steps in the whole run.
        warmup: Fraction of the run spent warming up (one-cycle and cosine).
    """
    check_schedule(schedule)
    name = "none" if schedule is None else schedule
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup is a fraction of the run in [0, 1); got {warmup}.")
    if name == "none":
        return None
    if name == "plateau":
        return ReduceLROnPlateau(optimizer, factor=0.1, patience=3)
    warm = int(warmup * total_steps)

    def factor(step: int) -> float:
        progress = min((step - warm) / max(total_steps - warm, 1), 1.0)
        if name == "onecycle":
            # Smith & Topin 2017 (https://arxiv.org/abs/1708.07120): warm up linearly from
            # peak/10 to the peak, then anneal linearly to peak/1000 by the last step; it trains
            # in a fraction of the epochs a step schedule needs.
            if step < warm:
                return 0.1 + 0.9 * step / warm
            return 1.0 - (1.0 - 1e-3) * progress
        if step < warm:
            return (step + 1) / warm
        if name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))  # step: /10 at 50% and 75%

    return LambdaLR(optimizer, factor)
