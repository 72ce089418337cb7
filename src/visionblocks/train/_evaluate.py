"""``evaluate``: accuracy, loss, per-class accuracy, the confusion matrix and chosen metrics.

One pass over the data (:func:`run_eval`) counts what every metric needs; fit's
validation runs the same pass, so a metric of ``fit(metrics=...)`` and of
``evaluate(metrics=...)`` is one computation (see ``_metrics``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from visionblocks._tta import model_logits
from visionblocks.data import (
    DataLike,
    LoaderOptions,
    Task,
    check_stats,
    describe_data,
    is_in_memory,
    label_task,
    labels_of,
    stats_of,
)
from visionblocks.model_file import card_of, model_stats
from visionblocks.train._checks import check_data, check_labels
from visionblocks.train._data import Batches, make_batches
from visionblocks.train._device import ExecutionPlan
from visionblocks.train._distributed import (
    DistContext,
    all_gather_shards,
    all_reduce_sum,
    place_eval,
)
from visionblocks.train._history import EvalResult
from visionblocks.train._metrics import MetricSet, check_metrics, resolve_metrics, top5_accuracy
from visionblocks.train._multilabel import (
    average_precision,
    exact_match,
    images_of,
    label_thresholds,
    multilabel_batch,
)

__all__ = ["EvalSums", "evaluate", "reduce_sums", "run_eval"]


@dataclass
class EvalSums:
    """What one pass over evaluation data counts; the sums can be reduced across processes.

    Multi-label targets (``(B, K)`` multi-hot batches) are counted per label, in the same
    fields (see ``_multilabel``): binary cross-entropy summed over images and labels,
    ``(K, 2, 2)`` counts ``[[tn, fp], [fn, tp]]`` at the model card's thresholds,
    ``(N, K)`` 0/1 predictions and targets, the logits always kept; no top-5.

    Attributes:
        loss_sum: Summed cross-entropy (0-d).
        confusion: ``(K, K)`` counts; rows are true classes, columns predictions.
        top5_correct: Examples whose class is among the 5 highest logits (0-d; all of them
            when there are at most 5 classes).
        predictions: ``(N,)`` predicted classes (this process's examples).
        targets: ``(N,)`` true classes.
        nonfinite_batches: Batches whose images held NaN or infinite values (0-d), or
            ``None`` when the images were not checked (``run_eval(check_inputs=False)``).
        logits: ``(N, K)`` float32 logits, kept only for metrics that read them
            (``MetricSet.needs_outputs``), else ``None``.
    """

    loss_sum: torch.Tensor
    confusion: torch.Tensor
    top5_correct: torch.Tensor
    predictions: torch.Tensor
    targets: torch.Tensor
    nonfinite_batches: torch.Tensor | None = None
    logits: torch.Tensor | None = None


@torch.no_grad()
def run_eval(
    model: nn.Module,
    batches: Batches,
    plan: ExecutionPlan,
    *,
    tta: bool = False,
    check_inputs: bool = False,
    metrics: MetricSet | None = None,
) -> EvalSums:
    """Predict every batch and count what :class:`EvalSums` holds.

    ``tta`` averages the logits of each image and its horizontal mirror. ``metrics``
    that accumulate per batch are fed each batch on the device (nothing is read back),
    and the logits are kept for those that read every image's.
    ``check_inputs`` counts the batches holding NaN or infinite pixels (for data that
    was not checked as a whole before, such as a ``Dataset`` read batch by batch).
    Labels outside the model's outputs raise: on the CPU in every batch, on an
    accelerator in the first (each check there waits for the queued kernels).
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=plan.device)
    top5 = torch.zeros((), dtype=torch.int64, device=plan.device)
    nonfinite = torch.zeros((), dtype=torch.int64, device=plan.device) if check_inputs else None
    confusion: torch.Tensor | None = None
    thresholds: torch.Tensor | None = None  # (K,) of a multi-label model, from its card
    predictions, targets, kept = [], [], []
    keep = metrics is not None and metrics.needs_outputs
    per_batch = metrics is not None and metrics.updates
    if metrics is not None:
        metrics.start(plan.device)
    try:
        for x, y in batches:
            if nonfinite is not None:
                nonfinite += (~torch.isfinite(x)).any()
            with plan.autocast():
                logits = model_logits(model, x, tta=tta)
            if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] < 1:
                shape = (
                    f"shape {tuple(logits.shape)}"
                    if isinstance(logits, torch.Tensor)
                    else f"a {type(logits).__name__}"
                )
                raise ValueError(
                    f"the model must return (B, num_classes) logits with num_classes >= 1; it "
                    f"returned {shape} for a batch of shape {tuple(x.shape)}."
                )
            k = logits.shape[1]
            if confusion is None or y.device.type == "cpu":
                check_labels(y, k, "evaluation")
            logits = logits.float()  # (B, K)
            if y.dim() == 2:  # multi-label: (B, K) multi-hot, counted per label
                if thresholds is None:
                    thresholds = label_thresholds(model, k, plan.device)
                loss, counts, pred = multilabel_batch(logits, y, thresholds)
                loss_sum += loss
                confusion = counts if confusion is None else confusion + counts
                y = y.long()  # (B, K) 0/1, as metrics and EvalResult take targets
            else:
                loss_sum += F.cross_entropy(logits, y, reduction="sum")
                pred = logits.argmax(dim=1)
                if confusion is None:
                    confusion = torch.zeros(k, k, dtype=torch.int64, device=plan.device)
                confusion += torch.bincount(y * k + pred, minlength=k * k).view(k, k)
                top5 += (logits.topk(min(5, k), dim=1).indices == y[:, None]).any(dim=1).sum()
            predictions.append(pred)
            targets.append(y)
            if keep or thresholds is not None:  # mAP ranks every image's logits
                kept.append(logits)
            if per_batch:
                assert metrics is not None
                metrics.update(logits, y)
    finally:
        model.train(was_training)
    if confusion is None:
        raise ValueError("the evaluation data is empty.")
    return EvalSums(
        loss_sum, confusion, top5, torch.cat(predictions), torch.cat(targets), nonfinite,
        torch.cat(kept) if kept else None,
    )  # fmt: skip


def reduce_sums(sums: EvalSums, ctx: DistContext, *, per_example: bool = True) -> EvalSums:
    """The sums of all processes, each holding a round-robin shard of the data.

    Counts are summed, so each image counts once. With ``per_example``, predictions,
    targets and (if kept) logits are gathered back into the data's order; without, they
    stay this process's shard (fit's validation gathers them only for metrics that read
    them). The identity in a single-process run.
    """
    if not ctx.enabled:
        return sums
    confusion = all_reduce_sum(sums.confusion.clone(), ctx)
    # The images: every one is counted once in (K, K), and once per label in (K, 2, 2).
    size = int(confusion[0].sum()) if confusion.dim() == 3 else int(confusion.sum())
    nonfinite = sums.nonfinite_batches

    def gathered(values: torch.Tensor | None) -> torch.Tensor | None:
        if values is None or not per_example:
            return values
        return all_gather_shards(values, size, ctx)

    predictions, targets = gathered(sums.predictions), gathered(sums.targets)
    assert predictions is not None  # gathered() keeps a tensor a tensor
    assert targets is not None
    return EvalSums(
        loss_sum=all_reduce_sum(sums.loss_sum.clone(), ctx),
        confusion=confusion,
        top5_correct=all_reduce_sum(sums.top5_correct.clone(), ctx),
        predictions=predictions,
        targets=targets,
        nonfinite_batches=None if nonfinite is None else all_reduce_sum(nonfinite.clone(), ctx),
        logits=gathered(sums.logits),
    )


def evaluate(
    model: nn.Module,
    data: DataLike,
    *,
    batch_size: int = 512,
    tta: bool = False,
    device: str | torch.device = "auto",
    precision: str = "auto",
    stats: tuple[Sequence[float], Sequence[float]] | None = None,
    metrics: object = None,
) -> EvalResult:
    """Measure a classifier on ``data``.

    Under ``torchrun``, once a process group is up (``fit`` leaves one, or your own
    ``torch.distributed.init_process_group``), each process evaluates every
    ``world_size``-th image and the counts are summed over the processes: every rank
    returns the same result, which counts each image exactly once.

    Multi-label data (``(N, K)`` multi-hot labels) is measured per label (see
    :class:`EvalResult`): exact-match accuracy, binary cross-entropy per image, per-label
    counts at the model card's thresholds, and each label's average precision.

    Args:
        model: The classifier (moved to the evaluation device).
        data: An :class:`~visionblocks.data.ImageDataset`, an ``(images, labels)`` pair,
            a torch ``Dataset`` or a ``DataLoader``.
        batch_size: Images per forward pass.
        tta: Test-time augmentation: average the logits of each image and its mirror.
        device: ``"auto"`` (CUDA > MPS > CPU) or a device.
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        stats: ``(mean, std)`` to normalize in-memory images with (finite, std > 0, one
            value per channel). Default: what :func:`~visionblocks.train.fit` trained the
            model with, else the data's own.
        metrics: More metrics, as ``fit(metrics=...)`` takes them (built-in names such as
            ``"macro_f1"``, or ``"map"`` for multi-label data, functions
            ``fn(logits, targets)``, ``torchmetrics.Metric``
            objects); their values are in ``result.metrics``, equal to what ``fit``
            records as ``val_<name>`` for the same weights and data.

    Returns:
        An :class:`EvalResult` with accuracy, loss, per-class accuracy, the confusion
        matrix and the asked-for ``metrics``.

    Raises:
        ValueError: Before evaluating: empty data, NaN or out-of-range float images,
            labels outside the model's classes, bad ``stats``, ``batch_size``, ``device``
            or ``metrics`` (an unknown name: the message lists the built-in ones). While
            evaluating: a model output that is not ``(B, num_classes)`` logits, NaN images
            in streamed data, or NaN logits.

    Example:
        >>> import visionblocks as vb
        >>> test = vb.load_dataset("sample", split="test")
        >>> result = evaluate(vb.simple_cnn(in_channels=1, image_size=28), test, precision="fp32")
        >>> result.confusion.shape, int(result.confusion.sum()) == len(test)
        (torch.Size([10, 10]), True)
        >>> result = evaluate(vb.simple_cnn(in_channels=1, image_size=28), test,
        ...                   precision="fp32", metrics=["macro_f1", "balanced_accuracy"])
        >>> sorted(result.metrics), result.metrics["macro_f1"] == result.macro_f1
        (['balanced_accuracy', 'macro_f1'], True)
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    check_metrics(metrics)
    check_data(data, "evaluation data")
    task = _task(model, data)
    chosen = resolve_metrics(metrics, task=task)
    if stats is not None:
        if not isinstance(stats, tuple | list) or len(stats) != 2:
            raise TypeError(f"stats must be a (mean, std) pair; got {stats!r}.")
        channels = describe_data(data).in_channels if is_in_memory(data) else None
        stats = check_stats(stats[0], stats[1], channels)
    plan, ctx = place_eval(device, precision)  # under DDP: this rank's shard, then reduced
    plan.prepare(model)
    mean, std = stats or model_stats(model) or stats_of(data) or (None, None)
    loading = LoaderOptions(
        batch_size=batch_size, device=plan.device, channels_last=plan.channels_last,
        mean=mean, std=std, rank=ctx.rank, world_size=ctx.world_size,
    )  # fmt: skip
    batches = make_batches(data, loading, train=False)
    labels = labels_of(data)
    num_classes = getattr(model, "num_classes", None)
    if labels is not None and isinstance(num_classes, int):
        check_labels(labels, num_classes, "evaluation")
    if isinstance(num_classes, int):
        chosen.check(num_classes)
    sums = run_eval(
        model, batches, plan, tta=tta, check_inputs=not is_in_memory(data), metrics=chosen
    )
    sums = reduce_sums(sums, ctx)
    multilabel = sums.confusion.dim() == 3  # (K, 2, 2) per-label counts
    if task == "multilabel" and not multilabel:
        raise ValueError(
            "the model is multi-label (its card's task), but the evaluation data gave class "
            "indices; evaluate it on (N, K) multi-hot labels (visionblocks.data.multi_hot)."
        )
    if multilabel and task is None:  # a stream's targets, first seen in the pass
        chosen = resolve_metrics(metrics, task="multilabel")
    chosen.check(sums.confusion.shape[0])
    if sums.nonfinite_batches is not None and int(sums.nonfinite_batches) > 0:
        raise ValueError(
            f"evaluation data images contain NaN or infinite values (in "
            f"{int(sums.nonfinite_batches)} of {len(batches)} batches); clean them first."
        )
    if not torch.isfinite(sums.loss_sum):
        raise ValueError(
            f"the model returned NaN or infinite logits on the evaluation data (loss "
            f"{float(sums.loss_sum)}): its weights are not finite, or it overflows at "
            f"precision={precision!r}; check the weights or pass precision='fp32'."
        )
    confusion = sums.confusion.cpu()
    total = images_of(confusion) if multilabel else int(confusion.sum())  # the images
    predictions, targets = sums.predictions.cpu(), sums.targets.cpu()
    ap: list[float] | None = None
    if multilabel:
        assert sums.logits is not None  # run_eval keeps a multi-label pass's logits
        accuracy = exact_match(predictions, targets)
        ap = average_precision(sums.logits, targets)
    else:
        accuracy = float(confusion.diagonal().sum()) / total
    return EvalResult(
        accuracy=accuracy,
        loss=float(sums.loss_sum) / total,
        confusion=confusion,
        predictions=predictions,
        targets=targets,
        classes=list(getattr(data, "classes", [])) or None,
        top5_accuracy=top5_accuracy(sums) if confusion.shape[0] >= 5 and not multilabel else None,
        metrics=chosen.compute(sums),
        task="multilabel" if multilabel else "multiclass",
        average_precision=ap,
    )


def _task(model: nn.Module, data: DataLike) -> Task | None:
    """What ``data``'s labels are for, else what the model's card says it predicts, if known.

    Raises:
        ValueError: A multi-label model (by its card) and class-index labels.
    """
    labels = labels_of(data)
    card = card_of(model)
    if labels is None:
        return "multilabel" if card is not None and card.task == "multilabel" else None
    task = label_task(labels)
    if card is not None and card.task == "multilabel" and task == "multiclass":
        raise ValueError(
            f"the model is multi-label (its card's task), but the evaluation labels are class "
            f"indices of shape {tuple(labels.shape)}; evaluate it on (N, K) multi-hot labels "
            f"(visionblocks.data.multi_hot)."
        )
    return task
