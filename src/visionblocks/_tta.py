"""Flip test-time augmentation: the one definition that ``evaluate``, ``fit`` and ``predict`` share.

It sits at the root of the package, below ``train`` and ``inference``, because
``evaluate(tta=True)`` (and ``fit(val_tta=True)`` through it) and ``predict(tta=True)``
must compute the same numbers for the same image: a model's predictions in
``EvalResult`` and in a :class:`~visionblocks.inference.Prediction` may never disagree
because one side averaged probabilities and the other logits.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["model_logits"]


def model_logits(model: nn.Module, images: torch.Tensor, *, tta: bool = False) -> torch.Tensor:
    """The model's output for ``images`` ``(B, C, H, W)``; with ``tta``, averaged with its mirror's.

    The mirror is the horizontal flip (``images.flip(-1)``), the augmentation every
    training preset applies, so the network has seen both orientations. The *logits*
    are averaged, before any softmax: the loss, the argmax and the probabilities
    computed from them then all describe one output. ``tta`` costs a second forward pass.

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(2, 1, bias=False))
        >>> with torch.no_grad():
        ...     _ = model[1].weight.copy_(torch.tensor([[1.0, 0.0]]))  # reads the left pixel
        >>> x = torch.tensor([[[[3.0, 5.0]]]])  # (1, 1, 1, 2)
        >>> model_logits(model, x).item(), model_logits(model, x, tta=True).item()
        (3.0, 4.0)
    """
    logits: torch.Tensor = model(images)
    if tta:
        logits = (logits + model(images.flip(-1))) / 2
    return logits
