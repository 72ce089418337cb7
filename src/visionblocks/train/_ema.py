"""``fit(ema=...)``: an exponential moving average of the weights, validated and kept.

Evaluating an average of the last few hundred steps' weights instead of the last
step's smooths out the noise of SGD (David Page's ResNet-9,
https://myrtle.ai/learn/how-to-train-your-resnet/; airbench). The average is PyTorch's
own :class:`~torch.optim.swa_utils.AveragedModel` with ``get_ema_multi_avg_fn``, and
``use_buffers=True`` so that BatchNorm's running statistics are averaged with the
weights (instead of recomputed, which would need another pass over the data).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

__all__ = ["apply_average", "make_ema"]


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """An EMA of ``model``'s parameters and buffers with per-step ``decay`` in (0, 1)."""
    average = get_ema_multi_avg_fn(decay)  # type: ignore[no-untyped-call]
    return AveragedModel(model, multi_avg_fn=average, use_buffers=True)


@torch.no_grad()
def apply_average(ema: AveragedModel, model: nn.Module) -> None:
    """Copy the averaged parameters and buffers into ``model`` (in place)."""
    averaged = ema.module.state_dict()
    for name, value in model.state_dict().items():
        value.copy_(averaged[name])
