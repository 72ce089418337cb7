"""Argument checks that make ``fit`` fail before training, with the bad value named."""

from __future__ import annotations

import torch
from torch import nn

from visionblocks.data import ImageDataset
from visionblocks.train._data import Batches, DataLike

__all__ = ["check_fit_arguments", "check_model_fits_data"]


def check_fit_arguments(
    *,
    epochs: object,
    batch_size: object,
    lr: float | None,
    momentum: float,
    weight_decay: float,
    warmup: float,
    label_smoothing: float,
    mixup: float,
    cutmix: float,
    grad_clip: float | None,
) -> None:
    """Reject out-of-range hyper-parameters with a message naming the value."""
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int; got {value!r}.")
    if lr is not None and not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}.")
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
            raise ValueError(f"{name} is a Beta(alpha, alpha) parameter >= 0; got {alpha!r}.")
    if grad_clip is not None and not grad_clip > 0:
        raise ValueError(f"grad_clip must be > 0 or None; got {grad_clip!r}.")


def _labels_of(data: DataLike) -> torch.Tensor | None:
    if isinstance(data, ImageDataset):
        return data.labels
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[1], torch.Tensor):
        return data[1]
    return None


def check_model_fits_data(model: nn.Module, data: DataLike, batches: Batches) -> int:
    """Check channels and label range on one real batch; return the number of classes.

    Runs one forward pass in eval mode without gradients (BatchNorm statistics are
    untouched), so a mismatch fails here, with a clear message, and not mid-epoch.
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
        raise ValueError(
            f"the model cannot process a training batch of shape {tuple(x.shape)}: {err}"
        ) from err
    finally:
        model.train(was_training)
    if out.dim() != 2:
        raise ValueError(
            f"the model must return (B, num_classes) logits; it returned shape {tuple(out.shape)}."
        )
    num_classes = int(out.shape[1])
    labels = _labels_of(data)
    labels = labels if labels is not None else y
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"labels range over [{low}, {high}] but the model has {num_classes} outputs; "
            f"build it with num_classes={high + 1} (or remap the labels to 0..{num_classes - 1})."
        )
    return num_classes
