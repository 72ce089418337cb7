"""What the INT8 tests of every path share: realistic BN statistics, the error measure."""

from __future__ import annotations

import torch
from torch import nn


def with_trained_bn_statistics(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """``model`` in eval mode with BN statistics estimated on ``x``.

    Freshly initialised BN layers normalise with mean 0 / var 1 whatever comes in, so deep
    untrained nets have exploding activations no trained net has.
    """
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for batch in x.split(32):
            model(batch)
    return model.eval()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` over the whole tensors."""
    return float((a - b).norm() / b.norm())
