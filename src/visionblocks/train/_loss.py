"""The loss :func:`~visionblocks.train.fit` minimizes: a criterion, with optional class weights.

The built-in loss is label-smoothed cross-entropy, or with ``loss="focal"`` the focal loss
of Lin et al. (https://arxiv.org/abs/1708.02002): cross-entropy with each term scaled by
``(1 - p)^gamma``, so the examples the model already gets right (``p`` near 1) weigh
little and the hard ones, often the rare classes', dominate the gradient. Both take
class weights and label smoothing the same way, and targets as class indices or, with
MixUp/CutMix, as class probabilities. Multi-label targets train with binary cross-entropy
on the logits instead (``_multilabel``).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from visionblocks.train._multilabel import MultilabelBCE, balanced_pos_weight

__all__ = [
    "LOSSES",
    "FocalLoss",
    "balanced_class_weight",
    "check_loss_arguments",
    "check_loss_value",
    "make_criterion",
]

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

LOSSES = ("focal",)
"""The built-in losses ``fit(loss=...)`` takes by name (``None``: label-smoothed cross-entropy)."""


class FocalLoss(nn.Module):
    """Softmax focal loss: cross-entropy whose every term is scaled by ``(1 - p)^gamma``.

    For an example of class ``y`` predicted with probability ``p_y`` the loss is
    ``-w_y (1 - p_y)^gamma log p_y`` (Lin et al., https://arxiv.org/abs/1708.02002, with
    a softmax over the classes); with class-probability targets ``q`` (MixUp/CutMix, label
    smoothing) it is ``-sum_k q_k w_k (1 - p_k)^gamma log p_k``. The batch is reduced
    as ``nn.CrossEntropyLoss`` reduces it (a mean, weighted by ``w_y`` for class-index
    targets), so ``gamma=0`` is exactly ``nn.CrossEntropyLoss(weight, label_smoothing)``.

    ``fit(loss="focal")`` uses ``FocalLoss(label_smoothing=<fit's label_smoothing>)``
    with fit's ``class_weight``; pass an instance to choose ``gamma``, e.g.
    ``fit(loss=FocalLoss(gamma=1.0))`` (fit's ``class_weight`` still applies to it, its
    own ``label_smoothing`` replaces fit's).

    Args:
        gamma: Focusing parameter >= 0; 0 is cross-entropy, the paper uses 2.
        weight: Per-class weights ``(K,)`` (>= 0, not all 0), as ``nn.CrossEntropyLoss``'s.
        label_smoothing: Share of each target spread uniformly over the classes, in [0, 1).

    Example:
        >>> logits = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
        >>> labels = torch.tensor([0, 0])
        >>> cross_entropy = nn.functional.cross_entropy(logits, labels)
        >>> FocalLoss(gamma=0.0)(logits, labels).item() == cross_entropy.item()
        True
        >>> round(cross_entropy.item(), 4), round(FocalLoss()(logits, labels).item(), 4)
        (0.5113, 0.1888)
        >>> FocalLoss(gamma=-1)
        Traceback (most recent call last):
            ...
        ValueError: gamma must be a number >= 0 (0 is cross-entropy); got -1.
    """

    weight: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        *,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if (
            not isinstance(gamma, int | float)
            or isinstance(gamma, bool)
            or not math.isfinite(gamma)
            or gamma < 0
        ):
            raise ValueError(f"gamma must be a number >= 0 (0 is cross-entropy); got {gamma!r}.")
        if not isinstance(label_smoothing, int | float) or not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}.")
        self.gamma = float(gamma)
        self.label_smoothing = float(label_smoothing)
        if weight is not None:
            weight = torch.as_tensor(weight, dtype=torch.float32)
            if weight.dim() != 1:
                raise ValueError(
                    f"weight must hold one weight per class, shape (K,); got {tuple(weight.shape)}."
                )
            _check_weights(weight)
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The focal loss of ``(B, K)`` logits for ``(B,)`` classes or ``(B, K)`` probabilities."""
        log_p = F.log_softmax(logits.float(), dim=1)  # (B, K)
        classes = log_p.shape[1]
        hard = targets.dim() == 1
        q = F.one_hot(targets.long(), classes).to(log_p.dtype) if hard else targets.to(log_p)
        if self.label_smoothing:
            q = q * (1 - self.label_smoothing) + self.label_smoothing / classes
        terms = -log_p  # (B, K) cross-entropy terms
        if self.gamma:
            # 1 - p as -expm1(log p): exact where p is near 1, the examples focal loss damps.
            # The clamp keeps (1 - p)^gamma's gradient finite at p = 1 for gamma < 1.
            one_minus_p = (-log_p.expm1()).clamp_min(torch.finfo(log_p.dtype).tiny)
            terms = terms * one_minus_p.pow(self.gamma)
        if self.weight is not None:
            terms = terms * self.weight
        total = (q * terms).sum()
        if hard and self.weight is not None:  # nn.CrossEntropyLoss's weighted mean
            return total / self.weight[targets.long()].sum()
        return total / len(log_p)

    def extra_repr(self) -> str:
        weighted = ", weight=(...)" if self.weight is not None else ""
        return f"gamma={self.gamma}, label_smoothing={self.label_smoothing}{weighted}"


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
    if isinstance(loss, str):
        if loss not in LOSSES:
            names = ", ".join(repr(name) for name in LOSSES)
            raise ValueError(
                f"loss must be None (label-smoothed cross-entropy), one of {names}, or a "
                f"criterion (logits, targets) -> loss; got {loss!r}."
            )
    elif isinstance(loss, FocalLoss):
        if class_weight is not None and loss.weight is not None:
            raise ValueError(
                "class_weight was given twice: to fit and as the FocalLoss's weight; keep one."
            )
    elif loss is not None:
        if class_weight is not None:
            raise ValueError(
                "class_weight applies to the built-in losses (None, 'focal' or a FocalLoss); "
                "with loss=... put the weights into your criterion (e.g. "
                "nn.CrossEntropyLoss(weight=...))."
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
    loss: Criterion | str | None,
    *,
    label_smoothing: float,
    class_weight: str | torch.Tensor | None,
    labels: torch.Tensor | None,
    num_classes: int,
    device: torch.device,
    task: str = "multiclass",
) -> Criterion:
    """The loss ``fit`` minimizes: ``loss`` if given, else (weighted) label-smoothed cross-entropy.

    With ``task="multilabel"`` the built-in loss is binary cross-entropy on the logits, summed
    over the labels, with label smoothing (``MultilabelBCE``), the class weights its
    ``pos_weight``; focal loss is refused.

    ``loss`` receives float32 logits ``(B, K)`` and targets that are class indices ``(B,)``,
    or class probabilities ``(B, K)`` with MixUp/CutMix. ``"focal"`` is
    :class:`FocalLoss` with ``label_smoothing`` and the class weights; a
    :class:`FocalLoss` given without weights is used with the class weights. ``loss`` and
    ``class_weight`` are those :func:`check_loss_arguments` accepted (``fit`` checks them
    first).
    """
    if task == "multilabel":
        return _multilabel_criterion(
            loss, label_smoothing, class_weight, labels, num_classes, device
        )
    weight = _class_weight(class_weight, labels, num_classes)
    if loss == "focal":
        return FocalLoss(weight=weight, label_smoothing=label_smoothing).to(device)
    if isinstance(loss, FocalLoss) and weight is not None:  # a copy: the caller's stays as given
        loss = FocalLoss(loss.gamma, weight=weight, label_smoothing=loss.label_smoothing)
    if isinstance(loss, str):  # pragma: no cover - check_loss_arguments accepts only LOSSES
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}.")
    if loss is not None:
        if isinstance(loss, nn.Module):
            loss.to(device)
        return loss
    return nn.CrossEntropyLoss(
        weight=None if weight is None else weight.to(device), label_smoothing=label_smoothing
    )


def _multilabel_criterion(
    loss: Criterion | str | None,
    label_smoothing: float,
    class_weight: str | torch.Tensor | None,
    labels: torch.Tensor | None,
    num_classes: int,
    device: torch.device,
) -> Criterion:
    """A multi-label run's loss: ``loss`` as given, else BCE with ``pos_weight`` and smoothing."""
    if loss == "focal" or isinstance(loss, FocalLoss):
        raise ValueError(
            "loss='focal' is the softmax focal loss of one class per image, but the targets "
            "are multi-label, trained with binary cross-entropy: drop loss=, or pass a criterion "
            "(logits, targets) -> loss, e.g. one built on torchvision.ops.sigmoid_focal_loss."
        )
    if isinstance(loss, str):  # pragma: no cover - check_loss_arguments accepts only LOSSES
        raise ValueError(f"unknown loss {loss!r}; choose one of {LOSSES}.")
    if loss is not None:
        if isinstance(loss, nn.Module):
            loss.to(device)
        return loss
    pos_weight: torch.Tensor | None = None
    if isinstance(class_weight, str):  # "balanced": negatives / positives of each label
        if labels is None:
            raise ValueError(
                "class_weight='balanced' counts the training labels, which this data does not "
                "give without loading it (a Dataset needs a .targets attribute); pass a tensor "
                "of per-label weights instead."
            )
        pos_weight = balanced_pos_weight(labels)
    elif class_weight is not None:
        pos_weight = torch.as_tensor(class_weight, dtype=torch.float32)
        if pos_weight.shape != (num_classes,):
            raise ValueError(
                f"class_weight must hold {num_classes} weights (one per label, the loss's "
                f"pos_weight); got shape {tuple(pos_weight.shape)}."
            )
    return MultilabelBCE(label_smoothing=label_smoothing, pos_weight=pos_weight).to(device)


def _class_weight(
    class_weight: str | torch.Tensor | None, labels: torch.Tensor | None, num_classes: int
) -> torch.Tensor | None:
    """The ``(K,)`` weights ``class_weight`` asks for: counted from ``labels``, or as given."""
    weight: torch.Tensor | None = None
    if isinstance(class_weight, str):  # "balanced", the one name check_loss_arguments accepts
        if labels is None:
            raise ValueError(
                "class_weight='balanced' counts the training labels, which this data does not "
                "give without loading it (a Dataset needs a .targets attribute); pass a tensor "
                "of per-class weights instead."
            )
        weight = balanced_class_weight(labels, num_classes)
    elif class_weight is not None:
        weight = torch.as_tensor(class_weight, dtype=torch.float32)
        if weight.shape != (num_classes,):
            raise ValueError(
                f"class_weight must hold {num_classes} weights (one per class); got shape "
                f"{tuple(weight.shape)}."
            )
    return weight
