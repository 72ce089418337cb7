"""The loss :func:`~visionblocks.train.fit` minimizes: a criterion, with optional class weights."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["balanced_class_weight", "check_loss_arguments", "check_loss_value", "make_criterion"]

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


def check_loss_arguments(loss: object, class_weight: object) -> None:
    """Refuse a ``loss`` that cannot be called on ``(logits, targets)`` and bad class weights.

    Checked before training; the class weights' count, which needs the model's number of
    outputs, is checked by :func:`make_criterion`.

    Example:
        >>> check_loss_arguments(None, torch.tensor([1.0, 0.0, 2.0]))
        >>> check_loss_arguments(None, torch.tensor([1.0, -0.5]))
        Traceback (most recent call last):
            ...
        ValueError: class_weight must be >= 0; class 1 has -0.5.
    """
    if loss is not None:
        if class_weight is not None:
            raise ValueError(
                "class_weight applies to the built-in cross-entropy; with loss=... put the "
                "weights into your criterion (e.g. nn.CrossEntropyLoss(weight=...))."
            )
        if not callable(loss):
            raise TypeError(f"loss must be callable (logits, targets) -> loss; got {loss!r}.")
        _check_takes_logits_and_targets(loss)
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise ValueError(
                f"class_weight must be 'balanced', a tensor of per-class weights or None; "
                f"got {class_weight!r}."
            )
    elif class_weight is not None:
        _check_weights(torch.as_tensor(class_weight, dtype=torch.float32))


def _check_takes_logits_and_targets(loss: Callable[..., object]) -> None:
    """A criterion that cannot take two arguments fails here, not inside the first step."""
    called = loss.forward if isinstance(loss, nn.Module) else loss
    try:
        signature = inspect.signature(called)
    except (TypeError, ValueError):  # a builtin without a signature: the first step tells
        return
    try:
        signature.bind(None, None)
    except TypeError:
        raise TypeError(
            f"loss is called as loss(logits, targets), but {_name(loss)}{signature} cannot "
            f"take those two arguments; give it a (logits, targets) signature."
        ) from None


def _check_weights(weight: torch.Tensor) -> None:
    bad = (~torch.isfinite(weight)).nonzero().flatten()
    if len(bad):
        k = int(bad[0])
        raise ValueError(
            f"class_weight must hold finite weights; class {k} has {float(weight[k])}."
        )
    bad = (weight < 0).nonzero().flatten()
    if len(bad):
        k = int(bad[0])
        raise ValueError(f"class_weight must be >= 0; class {k} has {float(weight[k])}.")
    if weight.numel() and not bool(weight.any()):
        # Cross-entropy averages over the weights of the batch: all zero is 0 / 0 = NaN.
        raise ValueError(
            "class_weight is all zeros (every example would weigh 0); give each class a weight > 0."
        )


def check_loss_value(value: object, loss: Callable[..., object], logits: torch.Tensor) -> None:
    """Refuse what ``loss(logits, targets)`` returned if ``backward()`` cannot start from it.

    ``fit`` runs it on the first batch, on the value it trains with (no extra forward
    pass): torch's own error would be "grad can be implicitly created only for scalar
    outputs", naming neither the loss nor the fix. It reads only metadata, not values,
    so it does not wait for the device.

    Example:
        >>> logits = torch.zeros(4, 3, requires_grad=True)
        >>> def per_example(logits, targets):
        ...     return nn.functional.cross_entropy(logits, targets, reduction="none")
        >>> value = per_example(logits, torch.zeros(4, dtype=torch.long))
        >>> try:
        ...     check_loss_value(value, per_example, logits)
        ... except TypeError as err:
        ...     print(str(err).split("; ")[1])
        per_example returned a tensor of shape (4,): reduce it, e.g. with .mean().
    """
    if isinstance(value, int | float):
        what = f"{type(value).__name__} {value!r}: compute it with torch operations on the logits"
    elif not isinstance(value, torch.Tensor):
        what = f"a value of type {type(value).__name__}: return one tensor"
    elif value.dim() != 0:
        what = f"a tensor of shape {tuple(value.shape)}: reduce it, e.g. with .mean()"
    elif logits.requires_grad and not value.requires_grad:
        what = (
            f"a {value.dtype} tensor without grad: compute it from the logits with torch "
            f"operations (no .item(), .detach() or torch.no_grad())"
        )
    else:
        return
    raise TypeError(
        f"loss must return a scalar tensor with grad, computed from (logits, targets); "
        f"{_name(loss)} returned {what}."
    )


def _name(loss: Callable[..., object]) -> str:
    return getattr(loss, "__name__", None) or type(loss).__name__


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
    or class probabilities ``(B, K)`` with MixUp/CutMix. ``loss`` and ``class_weight`` are
    those :func:`check_loss_arguments` accepted (``fit`` checks them first).
    """
    if loss is not None:
        if isinstance(loss, nn.Module):
            loss.to(device)
        return loss
    weight: torch.Tensor | None = None
    if isinstance(class_weight, str):  # "balanced", the one name check_loss_arguments accepts
        if labels is None:
            raise ValueError(
                "class_weight='balanced' counts the training labels, which only in-memory data "
                "has; pass a tensor of per-class weights instead."
            )
        weight = balanced_class_weight(labels, num_classes)
    elif class_weight is not None:
        weight = torch.as_tensor(class_weight, dtype=torch.float32)
        if weight.shape != (num_classes,):
            raise ValueError(
                f"class_weight must hold {num_classes} weights (one per class); got shape "
                f"{tuple(weight.shape)}."
            )
    return nn.CrossEntropyLoss(
        weight=None if weight is None else weight.to(device), label_smoothing=label_smoothing
    )
