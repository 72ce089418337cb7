"""What a training run returns: :class:`History` (per epoch) and :class:`EvalResult`."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["EvalResult", "History"]


@dataclass
class History:
    """Per-epoch metrics of a :func:`~visionblocks.train.fit` run.

    Each record holds ``epoch`` (1-based), ``train_loss``, ``train_acc``, ``lr``
    (at the end of the epoch), ``seconds`` (wall time of the epoch, validation
    included), ``images_per_second`` (training throughput) and, when validation
    data was given, ``val_loss`` and ``val_acc``. Accuracies are fractions in [0, 1].

    Example:
        >>> h = History()
        >>> h.append({"epoch": 1, "train_loss": 0.9, "train_acc": 0.7})
        >>> h.to_dict()["train_acc"]
        [0.7]
    """

    records: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False

    def append(self, record: dict[str, float]) -> None:
        """Add one epoch's metrics."""
        self.records.append(dict(record))

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list[float]:
        """All values of one metric, e.g. ``history["val_acc"]``."""
        if not self.records or key not in self.records[-1]:
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

    def best(self, key: str = "val_acc", *, mode: str = "max") -> dict[str, float]:
        """The record with the best value of ``key`` (``mode`` ``"max"`` or ``"min"``)."""
        values = self[key]
        pick = max if mode == "max" else min
        return self.records[values.index(pick(values))]

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

    Attributes:
        accuracy: Top-1 accuracy, a fraction in [0, 1].
        loss: Mean cross-entropy.
        per_class_accuracy: Accuracy of each true class (NaN for classes not present).
        confusion: ``(K, K)`` counts; rows are true classes, columns predictions.
        predictions: ``(N,)`` predicted class of every example.
        targets: ``(N,)`` true class of every example.
        classes: Class names when the data has them.
    """

    accuracy: float
    loss: float
    per_class_accuracy: list[float]
    confusion: torch.Tensor
    predictions: torch.Tensor
    targets: torch.Tensor
    classes: list[str] | None = None

    def __str__(self) -> str:
        names = self.classes or [str(i) for i in range(len(self.per_class_accuracy))]
        width = max(len(n) for n in names)
        rows = [f"accuracy {self.accuracy:.2%}  loss {self.loss:.4f}"]
        rows += [
            f"  {n:<{width}}  {a:7.2%}" for n, a in zip(names, self.per_class_accuracy, strict=True)
        ]
        return "\n".join(rows)
