"""The loss :func:`~visionblocks.train.fit` minimizes: a criterion, with optional class weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["balanced_class_weight", "make_criterion"]

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def balanced_class_weight(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``n / (K * n_c)`` per class, scikit-learn's ``"balanced"``: rare classes weigh more.

    Example:
        >>> balanced_class_weight(torch.tensor([0, 0, 0, 1]), 2)
        tensor([0.6667, 2.0000])
    """
    counts = torch.bincount(labels.long().cpu(), minlength=num_classes).double()
    if bool((counts == 0).any()):
        empty = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(
            f"class_weight='balanced' needs every class in the training labels; classes "
            f"{empty} have no example. Pass a weight tensor instead."
        )
    return (counts.sum() / (num_classes * counts)).float()


def make_criterion(
    loss: Criterion | None,
    *,
    label_smoothing: float,
    class_weight: str | torch.Tensor | None,
    labels: torch.Tensor | None,
    num_classes: int,
    device: torch.device,
) -> Criterion:
    """The loss ``fit`` minimizes: ``loss`` if given, else (weighted) label-smoothed cross-entropy.

    ``loss`` receives float32 logits ``(B, K)`` and targets that are class indices ``(B,)``,
    or class probabilities ``(B, K)`` with MixUp/CutMix.
    """
    if loss is not None:
        if class_weight is not None:
            raise ValueError(
                "class_weight applies to the built-in cross-entropy; with loss=... put the "
                "weights into your criterion (e.g. nn.CrossEntropyLoss(weight=...))."
            )
        if not callable(loss):
            raise TypeError(f"loss must be callable (logits, targets) -> loss; got {loss!r}.")
        if isinstance(loss, nn.Module):
            loss.to(device)
        return loss
    weight: torch.Tensor | None = None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"class_weight must be 'balanced', a tensor of {num_classes} weights or None; "
                f"got {class_weight!r}."
            )
        if labels is None:
            raise ValueError(
                "class_weight='balanced' counts the training labels, which only in-memory data "
                "has; pass a tensor of per-class weights instead."
            )
        weight = balanced_class_weight(labels, num_classes)
    elif class_weight is not None:
        weight = torch.as_tensor(class_weight, dtype=torch.float32)
        if weight.shape != (num_classes,) or not bool(torch.isfinite(weight).all()):
            raise ValueError(
                f"class_weight must hold {num_classes} finite weights (one per class); got "
                f"shape {tuple(weight.shape)}."
            )
        if bool((weight < 0).any()):
            raise ValueError(f"class_weight must be >= 0; got {weight.tolist()}.")
    return nn.CrossEntropyLoss(
        weight=None if weight is None else weight.to(device), label_smoothing=label_smoothing
    )
