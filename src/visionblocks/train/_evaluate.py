"""``evaluate``: accuracy, loss, per-class accuracy and the confusion matrix of a model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from visionblocks.train._data import Batches, DataLike, make_batches, stats_of
from visionblocks.train._device import ExecutionPlan, resolve_plan
from visionblocks.train._history import EvalResult

__all__ = ["evaluate", "model_stats", "run_eval"]

STATS_ATTR = "visionblocks_stats"
"""Attribute ``fit`` sets on a model: the ``(mean, std)`` its inputs were normalized with."""


def model_stats(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The normalization ``fit`` trained ``model`` with, if it was trained by ``fit``."""
    stats = getattr(model, STATS_ATTR, None)
    return None if stats is None else (tuple(stats[0]), tuple(stats[1]))


@torch.no_grad()
def run_eval(
    model: nn.Module, batches: Batches, plan: ExecutionPlan, *, tta: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predict every batch; return ``(loss_sum, confusion (K, K), predictions, targets)``.

    ``confusion`` and ``loss_sum`` are sums, so they can be reduced across processes.
    ``tta`` averages the logits of each image and its horizontal mirror.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=plan.device)
    confusion: torch.Tensor | None = None
    predictions, targets = [], []
    try:
        for x, y in batches:
            with plan.autocast():
                logits = model(x)
                if tta:
                    logits = (logits + model(x.flip(-1))) / 2
            logits = logits.float()  # (B, K)
            loss_sum += F.cross_entropy(logits, y, reduction="sum")
            pred = logits.argmax(dim=1)
            k = logits.shape[1]
            if confusion is None:
                confusion = torch.zeros(k, k, dtype=torch.int64, device=plan.device)
            confusion += torch.bincount(y * k + pred, minlength=k * k).view(k, k)
            predictions.append(pred)
            targets.append(y)
    finally:
        model.train(was_training)
    if confusion is None:
        raise ValueError("the evaluation data is empty.")
    return loss_sum, confusion, torch.cat(predictions), torch.cat(targets)


def evaluate(
    model: nn.Module,
    data: DataLike,
    *,
    batch_size: int = 512,
    tta: bool = False,
    device: str | torch.device = "auto",
    precision: str = "auto",
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
) -> EvalResult:
    """Measure a classifier on ``data``.

    Args:
        model: The classifier (moved to the evaluation device).
        data: An :class:`~visionblocks.data.ImageDataset`, an ``(images, labels)`` pair,
            a torch ``Dataset`` or a ``DataLoader``.
        batch_size: Images per forward pass.
        tta: Test-time augmentation: average the logits of each image and its mirror.
        device: ``"auto"`` (CUDA > MPS > CPU) or a device.
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        stats: ``(mean, std)`` to normalize in-memory images with. Default: what
            :func:`~visionblocks.train.fit` trained the model with, else the data's own.

    Returns:
        An :class:`EvalResult` with accuracy, loss, per-class accuracy and the confusion matrix.

    Example:
        >>> import visionblocks as vb
        >>> test = vb.load_dataset("sample", split="test")
        >>> result = evaluate(vb.simple_cnn(in_channels=1, image_size=28), test, precision="fp32")
        >>> result.confusion.shape, 0.0 <= result.accuracy <= 1.0
        (torch.Size([10, 10]), True)
    """
    plan = resolve_plan(device, precision)
    plan.prepare(model)
    batches = make_batches(
        data,
        batch_size=batch_size,
        train=False,
        device=plan.device,
        channels_last=plan.channels_last,
        stats=stats or model_stats(model) or stats_of(data),
    )
    loss_sum, confusion, predictions, targets = run_eval(model, batches, plan, tta=tta)
    confusion = confusion.cpu()
    per_class_total = confusion.sum(dim=1)
    per_class = (confusion.diagonal().double() / per_class_total.double()).tolist()
    total = int(per_class_total.sum())
    return EvalResult(
        accuracy=float(confusion.diagonal().sum()) / total,
        loss=float(loss_sum) / total,
        per_class_accuracy=per_class,
        confusion=confusion,
        predictions=predictions.cpu(),
        targets=targets.cpu(),
        classes=list(getattr(data, "classes", [])) or None,
    )
