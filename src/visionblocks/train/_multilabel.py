"""Multi-label classification: its task, loss, per-label counts and metrics.

A multi-label model says, for each of its ``K`` labels, whether the label applies to
the image: any number of them, none included. Its targets are ``(N, K)`` multi-hot rows
(:func:`~visionblocks.data.multi_hot`); ``fit`` infers the task from them (2-D targets
are multi-label, class indices multi-class) or takes ``task="multilabel"``.

* **Loss**: binary cross-entropy on the logits (:class:`MultilabelBCE`): each logit's
  own sigmoid, not a softmax that would make the labels compete. It is summed over the
  labels and averaged over the images, ``K`` times ``nn.BCEWithLogitsLoss()``'s mean
  over both, so that each logit's gradient has the scale cross-entropy gives it and
  ``fit``'s default learning rates carry over: with the mean, ``K = 10`` labels trained
  ten times slower (``benchmarks/multilabel.py --train 4000 --test 1000 --seeds 0``,
  Fashion-MNIST mosaics, 3 epochs: test mAP 55% with the mean, 85% with the sum).
  ``fit``'s ``label_smoothing`` ``e`` moves each target towards 1/2,
  ``y (1 - e) + e / 2``; ``class_weight`` becomes the loss's ``pos_weight``
  (``"balanced"``: negatives / positives of each label, so each label's positives weigh
  as much as its negatives). Softmax focal loss and the class-balanced sampler, which
  assume one class per image, are refused.
* **Predictions** are the labels whose sigmoid probability reaches the label's
  threshold (the model card's ``thresholds``, 0.5 by default).
* **Counts**: per label, ``[[tn, fp], [fn, tp]]`` at the thresholds: a ``(K, 2, 2)``
  tensor in scikit-learn's ``multilabel_confusion_matrix`` layout, summed over DDP
  processes like the multi-class confusion matrix.
* **Metrics** (``fit(metrics=...)``, ``evaluate(metrics=...)``): ``accuracy`` is the
  exact-match ratio (every label of the image right, scikit-learn's ``accuracy_score``
  on multi-label data); ``map``, the mean over labels of the average precision
  (scikit-learn's ``average_precision_score``: the area under each label's
  precision-recall steps, from the scores' ranking, so no threshold); ``macro_f1``, the
  mean over labels of F1 at the thresholds (``f1_score(average="macro",
  zero_division=0)``); ``per_label_ap`` and ``per_label_f1`` record each label's
  (``ap_<k>``, ``f1_<k>``). ``val_map`` is recorded in every multi-label run and is what
  ``BestCheckpoint`` monitors by default.

Average precision is undefined for a label with no positive example in the data: its
``ap_<k>`` is NaN and ``map`` averages the labels that have one (scikit-learn instead
counts such a label as 0, with a warning; on the labels present the two agree).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from visionblocks.data import Task, label_task
from visionblocks.model_file import DEFAULT_THRESHOLD, TASKS, card_of
from visionblocks.train._metrics import Metric, macro_f1, per_class_f1

if TYPE_CHECKING:
    from visionblocks.train._evaluate import EvalSums

__all__ = [
    "MULTILABEL_ALIASES",
    "MULTILABEL_METRICS",
    "MultilabelBCE",
    "average_precision",
    "balanced_pos_weight",
    "check_task",
    "exact_match",
    "images_of",
    "label_counts",
    "label_thresholds",
    "mean_average_precision",
    "multilabel_batch",
    "multilabel_metrics",
    "task_mismatch",
]


def check_task(task: object) -> Task | None:
    """``fit(task=...)`` checked: ``None`` (inferred from the targets) or one of the tasks.

    Example:
        >>> check_task("multilabel"), check_task(None)
        ('multilabel', None)
        >>> check_task("multi-label")
        Traceback (most recent call last):
            ...
        ValueError: task must be None (inferred from the targets), 'multiclass' or 'multilabel'; got 'multi-label'.
    """  # noqa: E501  (the doctest's expected error is one long line)
    if task is None:
        return None
    if task not in TASKS:
        raise ValueError(
            f"task must be None (inferred from the targets), 'multiclass' or 'multilabel'; "
            f"got {task!r}."
        )
    return "multilabel" if task == "multilabel" else "multiclass"


def task_mismatch(task: Task, labels: torch.Tensor, name: str) -> str | None:
    """Why ``labels`` cannot train or test a ``task`` model, or ``None`` when they can.

    Example:
        >>> task_mismatch("multilabel", torch.tensor([0, 2]), "training")
        "task='multilabel' needs (N, K) multi-hot training labels, but they are class indices of shape (2,); build them with visionblocks.data.multi_hot(...), or pass task='multiclass'."
    """  # noqa: E501  (the doctest's expected message is one long line)
    found = label_task(labels)
    if found == task:
        return None
    if task == "multilabel":
        return (
            f"task='multilabel' needs (N, K) multi-hot {name} labels, but they are class "
            f"indices of shape {tuple(labels.shape)}; build them with "
            f"visionblocks.data.multi_hot(...), or pass task='multiclass'."
        )
    return (
        f"task='multiclass' needs {name} labels that are class indices (N,), but they are "
        f"multi-hot of shape {tuple(labels.shape)} (multi-label); pass task='multilabel' "
        f"or leave task to be inferred."
    )


# --------------------------------------------------------------------------- loss


class MultilabelBCE(nn.Module):
    """Binary cross-entropy on logits with label smoothing: the loss of multi-label runs.

    Each label is its own binary problem: ``-[w y log s(z) + (1 - y) log(1 - s(z))]`` per
    image and label, with ``s`` the sigmoid and ``w`` the label's ``pos_weight``, summed
    over the ``K`` labels and averaged over the images: ``K`` times
    ``nn.BCEWithLogitsLoss()`` (see the module notes for why). ``label_smoothing`` ``e``
    trains on ``y (1 - e) + e / 2`` (a target of 1 becomes ``1 - e/2``, 0 becomes ``e/2``).

    Args:
        label_smoothing: In [0, 1).
        pos_weight: ``(K,)`` weight of each label's positive term (>= 0), as
            ``nn.BCEWithLogitsLoss``'s.

    Example:
        >>> logits, targets = torch.tensor([[2.0, -1.0]]), torch.tensor([[1.0, 0.0]])
        >>> MultilabelBCE()(logits, targets) == 2 * nn.BCEWithLogitsLoss()(logits, targets)
        tensor(True)
        >>> round(MultilabelBCE(label_smoothing=0.1)(logits, targets).item(), 4)  # on 0.95, 0.05
        0.5902
    """

    pos_weight: torch.Tensor | None

    def __init__(
        self, *, label_smoothing: float = 0.0, pos_weight: torch.Tensor | None = None
    ) -> None:
        super().__init__()
        if not isinstance(label_smoothing, int | float) or not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}.")
        self.label_smoothing = float(label_smoothing)
        self.register_buffer(
            "pos_weight", None if pos_weight is None else pos_weight.to(torch.float32)
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss per image of ``(B, K)`` logits for ``(B, K)`` targets in [0, 1] (or mixed)."""
        if targets.shape != logits.shape:
            raise ValueError(
                f"multi-label targets must be (B, K) like the logits {tuple(logits.shape)}; "
                f"got {tuple(targets.shape)}."
            )
        targets = targets.to(logits.dtype)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
        terms = F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight, reduction="none"
        )  # (B, K)
        return terms.sum(dim=1).mean()

    def extra_repr(self) -> str:
        weighted = ", pos_weight=(...)" if self.pos_weight is not None else ""
        return f"label_smoothing={self.label_smoothing}{weighted}"


def balanced_pos_weight(labels: torch.Tensor) -> torch.Tensor:
    """Per label, negatives / positives: ``class_weight="balanced"`` for multi-hot labels.

    With it a label's positive examples weigh, in total, as much as its negative ones
    (torch's advice for ``BCEWithLogitsLoss``'s ``pos_weight``).

    Raises:
        ValueError: A label without a positive example (no weight makes it learnable).

    Example:
        >>> balanced_pos_weight(torch.tensor([[1, 0], [1, 1], [0, 0], [1, 0]]))
        tensor([0.3333, 3.0000])
    """
    labels = labels.detach().to(torch.float64).cpu()
    positives = labels.sum(dim=0)
    if bool((positives == 0).any()):
        empty = (positives == 0).nonzero().flatten().tolist()
        raise ValueError(
            f"class_weight='balanced' needs a positive example of every label in the training "
            f"labels; labels {empty} have none. Pass a tensor of per-label weights instead."
        )
    return ((len(labels) - positives) / positives).float()


# --------------------------------------------------------------------------- counts


def label_thresholds(model: nn.Module, num_labels: int, device: torch.device) -> torch.Tensor:
    """``(K,)`` thresholds of a multi-label model: its card's, else 0.5 for every label."""
    card = card_of(model)
    given = card.label_thresholds if card is not None else None
    values = given if given is not None and len(given) == num_labels else None
    if values is None:
        values = (DEFAULT_THRESHOLD,) * num_labels
    return torch.tensor(values, dtype=torch.float32, device=device)


def label_counts(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(K, 2, 2)`` counts ``[[tn, fp], [fn, tp]]`` of each label (scikit-learn's layout).

    Args:
        predictions: ``(N, K)`` 0/1 (or bool) predicted labels.
        targets: ``(N, K)`` 0/1 (or bool) true labels.

    Example:
        >>> label_counts(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 1], [0, 1]])).tolist()
        [[[0, 1], [0, 1]], [[0, 0], [1, 1]]]
    """
    pred, true = predictions.bool(), targets.bool()
    tp = (pred & true).sum(dim=0)
    fp = (pred & ~true).sum(dim=0)
    fn = (~pred & true).sum(dim=0)
    tn = (~pred & ~true).sum(dim=0)
    return torch.stack([torch.stack([tn, fp], dim=1), torch.stack([fn, tp], dim=1)], dim=1)


def multilabel_batch(
    logits: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One evaluation batch: summed BCE (0-d), ``(K, 2, 2)`` counts, ``(B, K)`` int64 predictions.

    The loss is summed over images and labels (the pass divides by the ``N`` images, as
    :class:`MultilabelBCE` averages); a label is predicted when its sigmoid reaches its
    threshold.
    """
    loss = F.binary_cross_entropy_with_logits(logits, targets.float(), reduction="sum")
    predictions = (logits.sigmoid() >= thresholds).long()  # (B, K)
    return loss, label_counts(predictions, targets), predictions


# --------------------------------------------------------------------------- formulas


def exact_match(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of images whose every label is right (scikit-learn's multi-label ``accuracy_score``).

    Example:
        >>> exact_match(torch.tensor([[1, 0], [1, 1]]), torch.tensor([[1, 0], [0, 1]]))
        0.5
    """
    return float((predictions.bool() == targets.bool()).all(dim=1).double().mean())


def average_precision(scores: torch.Tensor, targets: torch.Tensor) -> list[float]:
    """Average precision of each label (scikit-learn's ``average_precision_score``); NaN if absent.

    ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct scores ``n`` from the highest
    down, with ``P_n``/``R_n`` the precision/recall of predicting every image scored at
    least that high (ties count together). Any monotone score works alike: logits or
    probabilities. A label without a positive image has no AP (NaN).

    Args:
        scores: ``(N, K)`` scores of each label (logits or probabilities).
        targets: ``(N, K)`` 0/1 true labels.

    Example:
        >>> scores = torch.tensor([[0.9, 0.1], [0.8, 0.7], [0.3, 0.2]])
        >>> average_precision(scores, torch.tensor([[1, 0], [0, 1], [1, 0]]))
        [0.8333333333333333, 1.0]
    """
    scores, truth = scores.detach().double().cpu(), targets.detach().double().cpu()
    order = scores.argsort(dim=0, descending=True, stable=True)  # (N, K) per-label ranking
    ranked = scores.gather(0, order)
    hits = truth.gather(0, order)
    tp = hits.cumsum(dim=0)  # (N, K) true positives among the top n + 1
    seen = torch.arange(1, len(scores) + 1, dtype=torch.float64)[:, None]  # (N, 1)
    # The last image of each group of tied scores is where a threshold can fall.
    last = torch.ones_like(ranked, dtype=torch.bool)
    last[:-1] = ranked[1:] != ranked[:-1]
    tp_at = torch.where(last, tp, torch.zeros_like(tp))
    before = torch.cat([torch.zeros_like(tp[:1]), tp_at[:-1]]).cummax(dim=0).values
    positives = truth.sum(dim=0)  # (K,)
    terms = torch.where(last, (tp - before) * tp / seen, torch.zeros_like(tp))
    ap = terms.sum(dim=0) / positives.clamp(min=1)
    return torch.where(positives > 0, ap, torch.full_like(ap, math.nan)).tolist()


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean of :func:`average_precision` over the labels with a positive image (NaN if none).

    Example:
        >>> scores = torch.tensor([[0.9, 0.1, 0.5], [0.8, 0.7, 0.5], [0.3, 0.2, 0.5]])
        >>> truth = torch.tensor([[1, 0, 0], [0, 1, 0], [1, 0, 0]])  # label 2: no positive
        >>> round(mean_average_precision(scores, truth), 4)  # (0.8333 + 1) / 2
        0.9167
    """
    present = [v for v in average_precision(scores, targets) if not math.isnan(v)]
    return sum(present) / len(present) if present else math.nan


# --------------------------------------------------------------------------- metrics


def _outputs(sums: EvalSums) -> tuple[torch.Tensor, torch.Tensor]:
    assert sums.logits is not None  # run_eval keeps a multi-label pass's logits
    return sums.logits, sums.targets


def images_of(counts: torch.Tensor) -> int:
    """The images that ``(K, 2, 2)`` per-label counts were counted on."""
    return int(counts[0].sum())


class _Loss(Metric):
    """Binary cross-entropy per image (summed over labels), as the training loss."""

    name, mode = "loss", "min"

    def compute(self, sums: EvalSums) -> dict[str, float]:
        return {"loss": float(sums.loss_sum) / images_of(sums.confusion)}


class _ExactMatch(Metric):
    name, mode, needs_outputs = "accuracy", "max", True

    def keys(self, num_classes: int) -> list[str]:
        return ["acc"]

    def compute(self, sums: EvalSums) -> dict[str, float]:
        return {"acc": exact_match(sums.predictions, sums.targets)}


class _MeanAP(Metric):
    name, mode, needs_outputs = "map", "max", True

    def compute(self, sums: EvalSums) -> dict[str, float]:
        return {"map": mean_average_precision(*_outputs(sums))}


class _PerLabelAP(Metric):
    name, mode, needs_outputs, per_class = "per_label_ap", "max", True, True

    def keys(self, num_classes: int) -> list[str]:
        return [f"ap_{k}" for k in range(num_classes)]

    def compute(self, sums: EvalSums) -> dict[str, float]:
        return {f"ap_{k}": v for k, v in enumerate(average_precision(*_outputs(sums)))}


class _MacroF1(Metric):
    name, mode = "macro_f1", "max"

    def compute(self, sums: EvalSums) -> dict[str, float]:
        return {"macro_f1": macro_f1(sums.confusion)}  # of the (K, 2, 2) per-label counts


class _PerLabelF1(Metric):
    name, mode, per_class = "per_label_f1", "max", True

    def keys(self, num_classes: int) -> list[str]:
        return [f"f1_{k}" for k in range(num_classes)]

    def compute(self, sums: EvalSums) -> dict[str, float]:
        return {f"f1_{k}": v for k, v in enumerate(per_class_f1(sums.confusion))}


_MULTILABEL: tuple[Metric, ...] = (
    _Loss(), _ExactMatch(), _MeanAP(), _MacroF1(), _PerLabelAP(), _PerLabelF1(),
)  # fmt: skip


def multilabel_metrics() -> tuple[Metric, ...]:
    """The built-in metrics of multi-label runs."""
    return _MULTILABEL


MULTILABEL_METRICS: tuple[str, ...] = tuple(m.name for m in _MULTILABEL if m.name != "loss")
"""The names ``fit(metrics=[...])`` and ``evaluate(metrics=[...])`` know for multi-label
targets (``loss``, ``accuracy`` as exact match and ``map`` are always recorded by ``fit``)."""
MULTILABEL_ALIASES = {
    "acc": "accuracy", "exact_match": "accuracy", "subset_accuracy": "accuracy",
    "mean_average_precision": "map", "f1": "macro_f1", "average_precision": "per_label_ap",
    "ap": "per_label_ap",
}  # fmt: skip
