"""Which parameters take weight decay: one rule for every optimizer ``fit`` builds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

__all__ = ["decay_groups", "nonempty_groups"]


def decay_groups(params: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """The trainable ``params`` in two groups: weights with ``weight_decay``, the rest without.

    No weight decay on biases and norm scales (the 1-D tensors): decaying them only fights
    BatchNorm and costs accuracy (the "no bias decay" trick, He et al. 2019, "Bag of
    Tricks"). Frozen parameters are left out.

    Example:
        >>> groups = decay_groups(nn.Linear(3, 2).parameters(), 1e-4)
        >>> [(len(g["params"]), g["weight_decay"]) for g in groups]
        [(1, 0.0001), (1, 0.0)]
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in params:
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def nonempty_groups(groups: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """``groups`` without the empty ones; an error if none is left (all frozen?).

    Example:
        >>> nonempty_groups([{"params": []}])
        Traceback (most recent call last):
            ...
        ValueError: the model has no trainable parameters (all frozen?); nothing to fit.
    """
    kept = [g for g in groups if list(g["params"])]
    if not kept:
        raise ValueError("the model has no trainable parameters (all frozen?); nothing to fit.")
    return kept
