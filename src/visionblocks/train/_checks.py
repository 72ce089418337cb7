"""Argument and data checks that make ``fit`` fail before training, with the bad value named."""

from __future__ import annotations

import math

import torch
from torch import nn

from visionblocks.data import (
    DataLike,
    Task,
    check_multi_hot,
    is_in_memory,
    label_task,
    labels_of,
    tensors_of,
)
from visionblocks.train._callbacks import check_callbacks
from visionblocks.train._data import Batches
from visionblocks.train._defaults import FIT_DEFAULTS as D
from visionblocks.train._ema import EMA, as_ema
from visionblocks.train._loss import check_loss_arguments
from visionblocks.train._multilabel import check_task, task_mismatch
from visionblocks.train._optim import check_optimizer, check_schedule

__all__ = ["check_data", "check_fit_arguments", "check_labels", "check_model_fits_data"]


def check_fit_arguments(
    *,
    epochs: object = 1,
    batch_size: object = D.batch_size,
    lr: float | None = None,
    momentum: float = D.momentum,
    weight_decay: float = D.weight_decay,
    warmup: float = D.warmup,
    label_smoothing: float = D.label_smoothing,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    grad_clip: float | None = None,
    ema: float | EMA | None = None,
    accumulate: object = 1,
    val_every: object = 1,
    loss: object = None,
    class_weight: object = None,
    callbacks: object = (),
    task: object = None,
    optimizer: object = D.optimizer,
    schedule: object = D.schedule,
) -> None:
    """Reject out-of-range hyper-parameters of :func:`~visionblocks.train.fit`, naming the value.

    ``fit`` runs it first; a caller that collects the arguments elsewhere (the command
    line) can run it earlier, before any data is read. Arguments left out take ``fit``'s
    defaults (``epochs`` 1), which pass.

    Raises:
        ValueError: A value out of range; the message starts with the argument's name.
        TypeError: A float argument that is not a number, a ``loss`` that cannot take
            ``(logits, targets)``, or a callback that is not a ``Callback`` instance.

    Example:
        >>> check_fit_arguments(lr=0.1, epochs=3, ema=EMA(0.99, every=2))
        >>> check_fit_arguments(momentum=1.0)
        Traceback (most recent call last):
            ...
        ValueError: momentum must be in [0, 1); got 1.0.
    """
    check_optimizer(optimizer)
    check_schedule(schedule)
    ints = {
        "epochs": epochs, "batch_size": batch_size, "accumulate": accumulate,
        "val_every": val_every,
    }  # fmt: skip
    for name, value in ints.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    floats = {
        "lr": lr, "momentum": momentum, "weight_decay": weight_decay, "warmup": warmup,
        "label_smoothing": label_smoothing, "mixup": mixup, "cutmix": cutmix,
        "grad_clip": grad_clip,
    }  # fmt: skip
    for name, number in floats.items():
        if number is None:
            continue
        if not isinstance(number, int | float) or isinstance(number, bool):
            raise TypeError(f"{name} must be a number; got {number!r}.")
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number; got {number!r}.")
    if lr is not None and not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}.")
    as_ema(ema)  # a float is EMA(decay), which checks its fields
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1); got {momentum!r}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0; got {weight_decay!r}.")
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup is a fraction of the run in [0, 1); got {warmup!r}.")
    if not 0 <= label_smoothing < 1:
        raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}.")
    for name, alpha in (("mixup", mixup), ("cutmix", cutmix)):
        if alpha < 0:
            raise ValueError(f"{name} must be a Beta(alpha, alpha) parameter >= 0; got {alpha!r}.")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be a norm > 0 (None: no clipping); got {grad_clip!r}.")
    check_loss_arguments(loss, class_weight)
    check_callbacks(callbacks)
    check_task(task)


def check_data(data: DataLike, name: str) -> None:
    """Refuse empty data and, for in-memory data, images and labels torch would misread."""
    size: int | None = None
    if is_in_memory(data):  # an (images, labels) pair has len() 2: count its images
        size = len(tensors_of(data)[0])
    else:
        try:
            size = len(data)  # type: ignore[arg-type]
        except TypeError:
            size = None
    if size == 0:
        raise ValueError(f"{name} is empty (0 images); pass data with at least one image.")
    if not is_in_memory(data):
        return
    images, labels = tensors_of(data)
    if images.is_floating_point():
        low, high = float(images.min()), float(images.max())
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{name} images contain NaN or infinite values; clean them first.")
        if low < 0 or high > 1:
            raise ValueError(
                f"{name} images are floats in [{low:.3g}, {high:.3g}], but float images must be "
                f"in [0, 1] (visionblocks normalizes them itself): pass uint8 0-255 images, or "
                f"divide by 255."
            )
    if labels.dim() == 2:  # multi-label: (N, K) multi-hot
        check_multi_hot(labels, name=f"{name} labels")
    elif labels.is_floating_point() and not bool((labels == labels.round()).all()):
        bad = labels[labels != labels.round()][:3].tolist()
        raise ValueError(
            f"{name} labels must be class indices; got non-integer values such as {bad}. "
            f"Pass integer labels (soft labels come from MixUp/CutMix inside fit)."
        )


def check_labels(labels: torch.Tensor, num_classes: int, name: str) -> None:
    """Class indices in ``[0, num_classes)``, or multi-hot over ``num_classes`` labels.

    Else a message with the fix.
    """
    if labels.dim() == 2:  # multi-label: (N, K) multi-hot, one column per output
        if labels.shape[1] != num_classes:
            raise ValueError(
                f"{name} labels are multi-hot over {labels.shape[1]} labels but the model has "
                f"{num_classes} outputs; build it with num_classes={labels.shape[1]}."
            )
        check_multi_hot(labels, name=f"{name} labels")
        return
    if labels.numel() == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"{name} labels range over [{low}, {high}] but the model has {num_classes} outputs; "
            f"build it with num_classes={max(high + 1, num_classes)} (or remap the labels to "
            f"0..{num_classes - 1})."
        )


def check_model_fits_data(
    model: nn.Module,
    data: DataLike,
    batches: Batches,
    *,
    val: DataLike | None = None,
    task: Task | None = None,
) -> tuple[int, Task]:
    """Check channels and labels on one real batch; return the number of classes and the task.

    Runs one forward pass in eval mode without gradients (BatchNorm statistics are
    untouched), so a mismatch fails here, with a clear message, and not mid-epoch. The
    task is ``task``, else what the labels are for (:func:`~visionblocks.data.label_task`:
    ``(N, K)`` multi-hot labels are multi-label); training and validation labels must be
    for it.
    """
    x, y = next(iter(batches))
    in_channels = getattr(model, "in_channels", None)
    if isinstance(in_channels, int) and x.shape[1] != in_channels:
        raise ValueError(
            f"the model takes {in_channels}-channel images but the data has {x.shape[1]} "
            f"channels (batch shape {tuple(x.shape)}); build the model with "
            f"in_channels={x.shape[1]}."
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    try:
        with torch.no_grad():
            out = model(x[:2].to(device))
    except (RuntimeError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"the model cannot process a training batch of shape {tuple(x.shape)}: {reason}"
        ) from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"the model must return (B, num_classes) logits; it returned {shape}.")
    num_classes = int(out.shape[1])
    if num_classes < 1 or getattr(model, "num_classes", None) == 0:  # 0: pooled features out
        raise ValueError(
            "the model's head has 0 outputs; build it with num_classes >= 1 (or "
            "reset_classifier(num_classes) after a feature extractor)."
        )
    labels = labels_of(data)
    labels = labels if labels is not None else y
    task = task or label_task(labels)
    val_labels = labels_of(val) if val is not None else None
    for name, given in (("training", labels), ("validation", val_labels)):
        problem = None if given is None else task_mismatch(task, given, name)
        if problem is not None:
            raise ValueError(problem)
    check_labels(labels, num_classes, "training")
    if val_labels is not None:
        check_labels(val_labels, num_classes, "validation")
    return num_classes, task
