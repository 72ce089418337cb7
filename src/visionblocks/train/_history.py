"""What a training run returns: :class:`History` (per epoch) and :class:`EvalResult`."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from visionblocks.train._metrics import (
    MetricMode,
    balanced_accuracy,
    known_mode,
    macro_f1,
    per_class_f1,
    per_class_precision,
    per_class_recall,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EvalResult", "History"]


@dataclass
class History:
    """Per-epoch metrics of a :func:`~visionblocks.train.fit` run.

    Each record holds ``epoch`` (1-based), ``train_loss``, ``train_acc``, ``lr``
    (at the end of the epoch), ``seconds`` (wall time of the epoch, validation
    included), ``images_per_second`` (training throughput) and, when validation
    data was given, ``val_loss``, ``val_acc`` and ``val_<key>`` for each metric of
    ``fit(metrics=...)`` (``val_macro_f1``; per-class recall as ``val_recall_0``,
    ``val_recall_1``, ...). Accuracies are fractions in [0, 1].

    Attributes:
        records: One dict of metrics per completed epoch.
        interrupted: Whether the run was interrupted (Ctrl-C).
        modes: The direction of each metric the run records (``"max"``: higher is
            better, ``"min"``, or ``None`` for a user metric that did not say), set by
            ``fit`` before the first epoch; what ``EarlyStopping`` and
            ``BestCheckpoint`` check their ``monitor`` against.

    Example:
        >>> h = History()
        >>> h.append({"epoch": 1, "train_loss": 0.9, "train_acc": 0.7})
        >>> h.to_dict()["train_acc"]
        [0.7]
    """

    records: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    modes: dict[str, MetricMode | None] = field(default_factory=dict)

    def append(self, record: dict[str, float]) -> None:
        """Add one epoch's metrics."""
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list[float]:
        """All values of one metric, e.g. ``history["val_acc"]``."""
        if key not in self.keys():
            known = ", ".join(self.keys()) or "none yet"
            raise KeyError(f"no metric {key!r} in this history; known: {known}.")
        return [r.get(key, math.nan) for r in self.records]

    def keys(self) -> list[str]:
        """Metric names, in first-seen order."""
        names: dict[str, None] = {}
        for record in self.records:
            names.update(dict.fromkeys(record))
        return list(names)

    @property
    def last(self) -> dict[str, float]:
        """The metrics of the last completed epoch."""
        if not self.records:
            raise IndexError("the history is empty: no epoch has completed.")
        return self.records[-1]

    def best(self, key: str = "val_acc", *, mode: str = "auto") -> dict[str, float]:
        """The record with the best value of ``key`` (NaN values never are).

        ``mode`` is ``"max"``, ``"min"`` or ``"auto"``: the metric's own direction (of a
        built-in metric, or one ``fit`` recorded in :attr:`modes`).

        Example:
            >>> h = History([{"val_loss": 0.5, "val_acc": 0.8}, {"val_loss": 0.4, "val_acc": 0.7}])
            >>> h.best("val_loss")["val_acc"], h.best("val_acc")["val_loss"]
            (0.7, 0.5)
        """
        values = self[key]
        if mode == "auto":
            direction = self.modes.get(key) or known_mode(key)
            if direction is None:
                raise ValueError(
                    f"the direction of {key!r} is unknown; pass mode='max' (higher is better) "
                    f"or mode='min'."
                )
            mode = direction
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max', 'min' or 'auto'; got {mode!r}.")
        finite = [(v, i) for i, v in enumerate(values) if not math.isnan(v)]
        if not finite:
            raise ValueError(f"no epoch has a value of {key!r}.")
        pick = max if mode == "max" else min
        return self.records[pick(finite, key=lambda pair: pair[0])[1]]

    def to_dict(self) -> dict[str, list[float]]:
        """Column view: ``{"epoch": [...], "train_loss": [...], ...}``."""
        return {key: self[key] for key in self.keys()}

    def state_dict(self) -> dict[str, Any]:
        """Plain data for checkpoints (loadable with ``weights_only=True``)."""
        return {"records": [dict(r) for r in self.records], "interrupted": self.interrupted}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> History:
        """Rebuild a history saved with :meth:`state_dict`."""
        return cls([dict(r) for r in state["records"]], bool(state.get("interrupted", False)))

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per epoch to ``path``; return the path."""
        path = Path(path)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.keys())
            writer.writeheader()
            writer.writerows(self.records)
        return path

    def to_json(self, path: str | Path) -> Path:
        """Write the column view as JSON to ``path``; return the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def plot(self, save: str | Path | None = None) -> Figure:
        """Loss and accuracy curves (needs the ``viz`` extra: matplotlib)."""
        from visionblocks.analysis import plot_history  # lazy: matplotlib is optional

        figure: Figure = plot_history(self, save=save)
        return figure

    def __repr__(self) -> str:
        if not self.records:
            return "History(0 epochs)"
        last = ", ".join(
            f"{k}={v:.4g}" for k, v in self.records[-1].items() if k not in ("epoch", "seconds")
        )
        return f"History({len(self.records)} epochs; last: {last})"


@dataclass(frozen=True)
class EvalResult:
    """Metrics of :func:`~visionblocks.train.evaluate` on one dataset.

    Per-class precision, recall and F1 are computed from the confusion matrix as
    scikit-learn's ``precision_recall_fscore_support`` does (0 where undefined).

    For multi-label data (``task == "multilabel"``) the per-class values are per label,
    from the labels predicted at the model card's thresholds: ``accuracy`` is the
    exact-match ratio (every label of an image right), ``loss`` the binary cross-entropy
    summed over the labels and averaged over the images (as ``fit`` trains with),
    ``confusion`` the ``(K, 2, 2)`` counts ``[[tn, fp], [fn, tp]]`` of each label
    (scikit-learn's ``multilabel_confusion_matrix``), ``predictions`` and ``targets``
    ``(N, K)`` 0/1, ``support`` each label's positives, and ``average_precision`` each
    label's AP (:attr:`mean_average_precision` their mean).

    Attributes:
        accuracy: Top-1 accuracy, a fraction in [0, 1].
        loss: Mean cross-entropy.
        confusion: ``(K, K)`` counts; rows are true classes, columns predictions.
        predictions: ``(N,)`` predicted class of every example.
        targets: ``(N,)`` true class of every example.
        classes: Class names when the data has them.
        top5_accuracy: Fraction of examples whose class is among the 5 highest scores;
            ``None`` with fewer than 5 classes (where it would always be 1).
        metrics: The values of ``evaluate(metrics=...)``, by name (``{"macro_f1": ...}``;
            per-class recall as ``recall_0``, ``recall_1``, ...).
        task: ``"multiclass"`` or ``"multilabel"`` (what the data's labels are).
        average_precision: Multi-label: the average precision of each label (NaN for a
            label without a positive example); ``None`` for multi-class data.

    Example:
        >>> confusion = torch.tensor([[3, 1], [0, 2]])
        >>> r = EvalResult(0.833, 0.4, confusion, torch.zeros(6), torch.zeros(6))
        >>> r.recall, r.precision, round(r.macro_f1, 4)
        ([0.75, 1.0], [1.0, 0.6666666666666666], 0.8286)
    """

    accuracy: float
    loss: float
    confusion: torch.Tensor
    predictions: torch.Tensor
    targets: torch.Tensor
    classes: list[str] | None = None
    top5_accuracy: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    task: str = "multiclass"
    average_precision: list[float] | None = None

    @property
    def support(self) -> list[int]:
        """Examples of each true class (multi-label: images with each label)."""
        if self.task == "multilabel":
            return [int(v) for v in self.confusion[:, 1, :].sum(dim=1)]  # fn + tp
        return [int(v) for v in self.confusion.sum(dim=1)]

    @property
    def per_class_accuracy(self) -> list[float]:
        """Accuracy on each true class (its recall; NaN for classes not present).

        Multi-label: the share of images whose label ``k`` is predicted right (present
        or absent).
        """
        c = self.confusion.double()
        if self.task == "multilabel":
            return ((c[:, 0, 0] + c[:, 1, 1]) / c[0].sum()).tolist()
        return (c.diagonal() / c.sum(dim=1)).tolist()

    @property
    def mean_average_precision(self) -> float | None:
        """The mean of :attr:`average_precision` over the labels present (mAP), if multi-label."""
        if self.average_precision is None:
            return None
        present = [v for v in self.average_precision if not math.isnan(v)]
        return sum(present) / len(present) if present else math.nan

    @property
    def recall(self) -> list[float]:
        """Per class: correct / examples of the class (0 for classes not present)."""
        return per_class_recall(self.confusion)

    @property
    def precision(self) -> list[float]:
        """Per class: correct / examples predicted as the class (0 if never predicted)."""
        return per_class_precision(self.confusion)

    @property
    def f1(self) -> list[float]:
        """Per class: harmonic mean of precision and recall (0 where both are 0)."""
        return per_class_f1(self.confusion)

    @property
    def macro_f1(self) -> float:
        """Unweighted mean of the per-class F1 scores (over all the model's classes)."""
        return macro_f1(self.confusion)

    @property
    def balanced_accuracy(self) -> float:
        """Mean recall over the classes present (scikit-learn's ``balanced_accuracy_score``)."""
        if self.task == "multilabel":
            raise ValueError(
                "balanced accuracy is a multi-class metric; for multi-label results read "
                "mean_average_precision, macro_f1 or the per-label recall."
            )
        return balanced_accuracy(self.confusion)

    def __str__(self) -> str:
        names = self.classes or [str(i) for i in range(self.confusion.shape[0])]
        if self.task == "multilabel":
            return self._multilabel_table(names)
        width = max(max(len(n) for n in names), 5)
        top5 = f"  top-5 {self.top5_accuracy:.2%}" if self.top5_accuracy is not None else ""
        rows = [
            f"accuracy {self.accuracy:.2%}{top5}  macro F1 {self.macro_f1:.4f}  "
            f"loss {self.loss:.4f}",
            f"  {'class':<{width}}  {'acc':>7}  {'prec':>7}  {'recall':>7}  {'F1':>7}  {'n':>6}",
        ]
        rows += [
            f"  {n:<{width}}  {a:7.2%}  {p:7.2%}  {r:7.2%}  {f:7.4f}  {s:6d}"
            for n, a, p, r, f, s in zip(
                names, self.per_class_accuracy, self.precision, self.recall, self.f1,
                self.support, strict=True,
            )
        ]  # fmt: skip
        return "\n".join(rows)

    def _multilabel_table(self, names: list[str]) -> str:
        width = max(max(len(n) for n in names), 5)
        ap = self.average_precision or [math.nan] * len(names)
        rows = [
            f"exact match {self.accuracy:.2%}  mAP {self.mean_average_precision:.4f}  "
            f"macro F1 {self.macro_f1:.4f}  loss {self.loss:.4f}",
            f"  {'label':<{width}}  {'AP':>7}  {'prec':>7}  {'recall':>7}  {'F1':>7}  {'n':>6}",
        ]
        rows += [
            f"  {n:<{width}}  {a:7.4f}  {p:7.2%}  {r:7.2%}  {f:7.4f}  {s:6d}"
            for n, a, p, r, f, s in zip(
                names, ap, self.precision, self.recall, self.f1, self.support, strict=True
            )
        ]
        return "\n".join(rows)
