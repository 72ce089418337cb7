"""A model's state as a CPU copy, for tests that compare weights before and after fit.

On the CPU, because fit moves the model to the GPU where there is one.
"""

from __future__ import annotations

import torch
from torch import nn


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of every tensor in ``model.state_dict()``."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
