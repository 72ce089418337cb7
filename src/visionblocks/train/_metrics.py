"""Metrics of a classifier's outputs: the one home of fit's validation metrics and evaluate's.

A metric has a name, a direction (``"max"``: higher is better, ``"min"``, or ``None``
when nobody said) and a way to be computed from one pass over the data, which
:func:`~visionblocks.train._evaluate.run_eval` makes and
:func:`~visionblocks.train._evaluate.reduce_sums` combines over DDP processes:

* **from the counts** (the ``(K, K)`` confusion matrix, top-5 hits, the summed loss):
  every built-in. Counts are summed over the processes, which evaluate disjoint
  round-robin shards, so each image is counted once; nothing is kept per image.
* **per batch** (``update(logits, targets)`` on the device, no read-back): a
  ``torchmetrics.Metric``, which syncs its own state across processes when computed.
* **from the gathered outputs** (``needs_outputs``): the ``(N, K)`` logits and ``(N,)``
  targets of every image, gathered back into the data's order under DDP: a user's
  function ``fn(logits, targets)``. A multi-label metric such as mAP plugs in here.

Why the built-ins come from the confusion matrix: it is what ``evaluate`` already counts
in its loop, so fit's validation adds no per-batch work for them and one ``K x K``
all-reduce under DDP; precision, recall, F1 and balanced accuracy are all ratios of
its rows, columns and diagonal, computed as scikit-learn does.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import torch

if TYPE_CHECKING:
    from visionblocks.train._evaluate import EvalSums

__all__ = [
    "BUILTIN_METRICS",
    "MetricFn",
    "MetricMode",
    "MetricSet",
    "balanced_accuracy",
    "check_metrics",
    "known_mode",
    "macro_f1",
    "per_class_f1",
    "per_class_precision",
    "per_class_recall",
    "resolve_metrics",
]

MetricMode = Literal["max", "min"]
MetricFn: TypeAlias = Callable[[torch.Tensor, torch.Tensor], "float | torch.Tensor"]
"""A user metric: ``fn(logits (N, K) float32, targets (N,) int64)`` -> one number."""


# --------------------------------------------------------------------------- formulas
# On a (K, K) confusion matrix, rows true classes, columns predictions, or on the (K, 2, 2)
# per-label counts [[tn, fp], [fn, tp]] of multi-label outputs (see _multilabel); float64
# on the CPU; 0 where a ratio is undefined, as scikit-learn's zero_division=0.


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> list[float]:
    num, den = numerator.double(), denominator.double()
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num)).tolist()


def _tp_fp_fn(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(K,)`` true positives, false positives and false negatives of each class or label."""
    if confusion.dim() == 3:  # (K, 2, 2) per-label counts
        return confusion[:, 1, 1], confusion[:, 0, 1], confusion[:, 1, 0]
    tp = confusion.diagonal()
    return tp, confusion.sum(dim=0) - tp, confusion.sum(dim=1) - tp


def per_class_recall(confusion: torch.Tensor) -> list[float]:
    """Per class: correct / examples of the class (0 for a class with no examples)."""
    tp, _, fn = _tp_fp_fn(confusion)
    return _ratio(tp, tp + fn)


def per_class_precision(confusion: torch.Tensor) -> list[float]:
    """Per class: correct / examples predicted as the class (0 if never predicted)."""
    tp, fp, _ = _tp_fp_fn(confusion)
    return _ratio(tp, tp + fp)


def per_class_f1(confusion: torch.Tensor) -> list[float]:
    """Per class: ``2 tp / (2 tp + fp + fn)``, the harmonic mean of precision and recall.

    0 where the class is neither present nor predicted (scikit-learn's ``zero_division=0``).
    """
    tp, fp, fn = _tp_fp_fn(confusion)
    return _ratio(2 * tp, 2 * tp + fp + fn)


def macro_f1(confusion: torch.Tensor) -> float:
    """Unweighted mean of the per-class F1 over all K classes of the model.

    Example:
        >>> round(macro_f1(torch.tensor([[3, 1], [0, 2]])), 4)
        0.8286
    """
    f1 = per_class_f1(confusion)
    return sum(f1) / len(f1)


def balanced_accuracy(confusion: torch.Tensor) -> float:
    """Mean recall over the classes that have examples (scikit-learn's ``balanced_accuracy_score``).

    Example:
        >>> balanced_accuracy(torch.tensor([[3, 1, 0], [0, 2, 0], [0, 0, 0]]))  # (0.75 + 1) / 2
        0.875
    """
    present = confusion.sum(dim=1) > 0
    recall = torch.tensor(per_class_recall(confusion), dtype=torch.float64)
    return float(recall[present].mean())


def _min_recall(confusion: torch.Tensor) -> float:
    present = confusion.sum(dim=1) > 0
    return float(torch.tensor(per_class_recall(confusion), dtype=torch.float64)[present].min())


def top5_accuracy(sums: EvalSums) -> float:
    """Fraction of examples whose class is among the 5 highest logits."""
    return float(sums.top5_correct) / int(sums.confusion.sum())


# --------------------------------------------------------------------------- metrics


class Metric:
    """One metric of a pass over the data: a name, a direction, how it is computed.

    Subclasses override :meth:`keys` (the values it records, default its name),
    :meth:`update` (called on every batch, on the device; must not read values back) and
    :meth:`compute` (once, after the pass, on the counts of all processes).

    Attributes:
        name: The metric's name (``fit`` records ``val_<key>`` for each of its keys).
        mode: ``"max"``, ``"min"`` or ``None`` (a direction nobody gave).
        needs_outputs: Whether :meth:`compute` reads the gathered ``logits``/``targets``.
        per_class: Whether it records one value per class (not shown in the epoch line).
    """

    name: str = ""
    mode: MetricMode | None = None
    needs_outputs: bool = False
    per_class: bool = False

    def keys(self, num_classes: int) -> list[str]:
        """The names of the values :meth:`compute` returns."""
        return [self.name]

    def check(self, num_classes: int) -> None:
        """Raise if the metric means nothing for ``num_classes`` outputs."""

    def start(self, device: torch.device) -> None:
        """Prepare a pass on ``device``."""

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Account for one batch: ``(B, K)`` float32 logits, ``(B,)`` class indices."""

    def compute(self, sums: EvalSums) -> dict[str, float]:
        """The values after the pass (``sums`` reduced over processes, on the CPU)."""
        raise NotImplementedError


class _CountMetric(Metric):
    """A built-in computed from the pass's counts (confusion matrix, top-5, loss)."""

    def __init__(
        self,
        name: str,
        key: str,
        formula: Callable[[EvalSums], float],
        *,
        mode: MetricMode = "max",
        min_classes: int = 1,
    ) -> None:
        self.name, self.key, self.formula = name, key, formula
        self.mode, self.min_classes = mode, min_classes

    def keys(self, num_classes: int) -> list[str]:
        return [self.key]

    def check(self, num_classes: int) -> None:
        if num_classes < self.min_classes:
            raise ValueError(
                f"metrics has {self.name!r}, which needs at least {self.min_classes} classes; "
                f"the model has {num_classes}: drop it."
            )

    def compute(self, sums: EvalSums) -> dict[str, float]:
        return {self.key: self.formula(sums)}


class _PerClassRecall(Metric):
    name = "per_class_recall"
    mode = "max"
    per_class = True

    def keys(self, num_classes: int) -> list[str]:
        return [f"recall_{c}" for c in range(num_classes)]

    def compute(self, sums: EvalSums) -> dict[str, float]:
        recall = per_class_recall(sums.confusion)
        return {f"recall_{c}": value for c, value in enumerate(recall)}


def _total(sums: EvalSums) -> int:
    return int(sums.confusion.sum())


_BUILTINS: tuple[Metric, ...] = (
    _CountMetric("loss", "loss", lambda s: float(s.loss_sum) / _total(s), mode="min"),
    _CountMetric("accuracy", "acc", lambda s: float(s.confusion.diagonal().sum()) / _total(s)),
    _CountMetric("top5_accuracy", "top5_accuracy", top5_accuracy, min_classes=5),
    _CountMetric("macro_f1", "macro_f1", lambda s: macro_f1(s.confusion)),
    _CountMetric(
        "balanced_accuracy", "balanced_accuracy", lambda s: balanced_accuracy(s.confusion)
    ),
    _PerClassRecall(),
    _CountMetric("min_recall", "min_recall", lambda s: _min_recall(s.confusion)),
)
_BY_NAME = {m.name: m for m in _BUILTINS}
_ALIASES = {
    "acc": "accuracy", "top5": "top5_accuracy", "top_5": "top5_accuracy",
    "top5_acc": "top5_accuracy", "f1": "macro_f1", "balanced_acc": "balanced_accuracy",
    "recall": "per_class_recall",
}  # fmt: skip
BUILTIN_METRICS: tuple[str, ...] = tuple(m.name for m in _BUILTINS if m.name != "loss")
"""The names ``fit(metrics=[...])`` and ``evaluate(metrics=[...])`` know (``loss`` and
``accuracy`` are always recorded by ``fit`` as ``val_loss`` and ``val_acc``)."""
_ALWAYS = ("loss", "accuracy")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class _FunctionMetric(Metric):
    """``fn(logits, targets)`` on all the pass's outputs, gathered in the data's order."""

    needs_outputs = True

    def __init__(self, name: str, fn: MetricFn) -> None:
        self.name, self.fn = name, fn

    def compute(self, sums: EvalSums) -> dict[str, float]:
        assert sums.logits is not None  # run_eval keeps them for a metric that needs them
        return {self.name: _one_number(self.name, self.fn(sums.logits, sums.targets))}


class _TorchMetric(Metric):
    """A ``torchmetrics.Metric``: updated per batch, synced by torchmetrics under DDP."""

    def __init__(self, name: str, metric: Any) -> None:
        self.name, self.metric = name, metric
        better = getattr(metric, "higher_is_better", None)
        self.mode = None if better is None else "max" if better else "min"

    def start(self, device: torch.device) -> None:
        self.metric.reset()
        self.metric.to(device)

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.metric.update(logits, targets)

    def compute(self, sums: EvalSums) -> dict[str, float]:
        value = self.metric.compute()
        self.metric.reset()
        return {self.name: _one_number(self.name, value)}


def _one_number(name: str, value: object) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    shown = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else (
        f"a {type(value).__name__}"
    )  # fmt: skip
    raise TypeError(
        f"metric {name!r} returned {shown}; a metric returns one number (a float or a "
        f"one-element tensor): for per-class values, make one metric per class."
    )


def _is_torchmetric(obj: object) -> bool:
    """Whether ``obj`` is a ``torchmetrics.Metric`` (without importing the optional package)."""
    module = sys.modules.get("torchmetrics")
    return module is not None and isinstance(obj, module.Metric)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _registry(task: str) -> tuple[dict[str, Metric], dict[str, str], tuple[str, ...]]:
    """The built-ins of ``task`` by name, their aliases, and those ``fit`` always records."""
    if task != "multilabel":
        return _BY_NAME, _ALIASES, _ALWAYS
    # Imported here: _multilabel builds its metrics on this module's Metric.
    from visionblocks.train._multilabel import MULTILABEL_ALIASES, multilabel_metrics

    by_name = {m.name: m for m in multilabel_metrics()}
    return by_name, MULTILABEL_ALIASES, ("loss", "accuracy", "map")


def _builtin(name: str, task: str | None) -> Metric:
    key = name.strip().lower().replace("-", "_")
    tasks = ("multiclass", "multilabel") if task is None else (task,)
    for each in tasks:
        by_name, aliases, _ = _registry(each)
        found = by_name.get(aliases.get(key, key))
        if found is not None:
            return found
    known = [n for each in tasks for n in _registry(each)[0] if n != "loss"]
    spellings = [*known, *(a for each in tasks for a in _registry(each)[1])]
    close = difflib.get_close_matches(key, spellings, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    other_task = {"multiclass": "multilabel", "multilabel": "multiclass"}.get(task or "")
    if other_task is not None:
        other_names, other_aliases, _ = _registry(other_task)
        if other_aliases.get(key, key) not in other_names:
            other_task = None
    if other_task is not None:
        other = "multi-label" if other_task == "multilabel" else "multi-class"
        raise ValueError(
            f"metrics has {name!r}, a {other} metric, but the targets are "
            f"{'multi-label' if task == 'multilabel' else 'multi-class'}; the built-in "
            f"metrics here are {', '.join(dict.fromkeys(known))}."
        )
    raise ValueError(
        f"metrics has an unknown name {name!r}{hint}; the built-in metrics are "
        f"{', '.join(dict.fromkeys(known))}; or pass a function fn(logits, targets) or a "
        f"torchmetrics.Metric."
    )


def _user(item: object, index: int) -> Metric:
    name: object
    if isinstance(item, tuple):
        if len(item) != 2:
            raise TypeError(
                f"metrics[{index}] is a tuple of {len(item)}; a named metric is a pair "
                f"(name, function or torchmetrics.Metric)."
            )
        name, item = item
    elif _is_torchmetric(item):
        name = _snake(type(item).__name__)
    elif callable(item):
        name = getattr(item, "__name__", None) or _snake(type(item).__name__)
        if name == "<lambda>":
            raise TypeError(
                f"metrics[{index}] is a lambda, which has no name to record it under; pass "
                f"('my_metric', fn) or a def."
            )
    else:
        raise TypeError(
            f"metrics[{index}] is a {type(item).__name__}; a metric is a built-in name "
            f"({', '.join(BUILTIN_METRICS)}), a function fn(logits, targets), a "
            f"torchmetrics.Metric or a (name, metric) pair."
        )
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"metrics[{index}] is named {name!r}; a metric's name starts with a letter and "
            f"has only letters, digits and _ (it becomes a column, val_<name>)."
        )
    multilabel, aliases, _ = _registry("multilabel")
    taken = {
        *BUILTIN_METRICS, *_ALIASES, *(k for m in _BUILTINS for k in m.keys(1)),
        *multilabel, *aliases, *(k for m in multilabel.values() for k in m.keys(1)),
    }  # fmt: skip
    if name.lower() in taken or re.fullmatch(r"(recall|ap|f1)_\d+", name):
        raise ValueError(
            f"metrics[{index}] is named {name!r}, a built-in metric's name; name it otherwise."
        )
    if _is_torchmetric(item):
        return _TorchMetric(name, item)
    if callable(item):
        return _FunctionMetric(name, item)
    raise TypeError(
        f"metrics[{index}] pairs {name!r} with a {type(item).__name__}; pair a name with a "
        f"function fn(logits, targets) or a torchmetrics.Metric."
    )


@dataclass(frozen=True)
class MetricSet:
    """The metrics of one run (or evaluation), in the order they were asked for.

    Example:
        >>> metrics = resolve_metrics(["macro_f1", "per_class_recall"], always=True)
        >>> list(metrics.modes(3))
        ['loss', 'acc', 'macro_f1', 'recall_0', 'recall_1', 'recall_2']
    """

    metrics: tuple[Metric, ...] = ()

    @property
    def needs_outputs(self) -> bool:
        """Whether a metric reads every image's logits (kept and gathered for it)."""
        return any(m.needs_outputs for m in self.metrics)

    @property
    def updates(self) -> bool:
        """Whether a metric accumulates batch by batch (its :meth:`update` is called)."""
        return any(isinstance(m, _TorchMetric) for m in self.metrics)

    def check(self, num_classes: int) -> None:
        """Raise for a metric that means nothing with ``num_classes`` outputs."""
        for metric in self.metrics:
            metric.check(num_classes)

    def modes(self, num_classes: int) -> dict[str, MetricMode | None]:
        """Each recorded key and its direction."""
        return {key: m.mode for m in self.metrics for key in m.keys(num_classes)}

    def shown(self, num_classes: int) -> list[str]:
        """The keys worth a place in the epoch line: one number per metric, not per class."""
        return [k for m in self.metrics if not m.per_class for k in m.keys(num_classes)]

    def start(self, device: torch.device) -> None:
        """Prepare every metric for a pass on ``device``."""
        for metric in self.metrics:
            metric.start(device)

    def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        """Feed one batch to the metrics that accumulate per batch."""
        for metric in self.metrics:
            metric.update(logits, targets)

    def compute(self, sums: EvalSums) -> dict[str, float]:
        """Every metric's values from ``sums`` (reduced over processes; moved to the CPU here)."""
        cpu = replace(
            sums,
            loss_sum=sums.loss_sum.cpu(),
            confusion=sums.confusion.cpu(),
            top5_correct=sums.top5_correct.cpu(),
            targets=sums.targets.cpu(),
            logits=None if sums.logits is None else sums.logits.cpu(),
        )
        values: dict[str, float] = {}
        for metric in self.metrics:
            values.update(metric.compute(cpu))
        return values


def resolve_metrics(
    metrics: object, *, always: bool = False, task: str | None = "multiclass"
) -> MetricSet:
    """The :class:`MetricSet` that ``metrics`` asks for, checked (before any data is read).

    ``metrics`` is ``None``, one metric, a comma-separated string of built-in names, or a
    sequence of metrics: built-in names, functions ``fn(logits, targets)``,
    ``torchmetrics.Metric`` objects and ``(name, function or torchmetrics.Metric)``
    pairs. ``always`` puts ``loss`` and ``accuracy`` first (``fit``'s validation records
    them in every run; a multi-label run ``map`` too). A metric asked for twice counts
    once. ``task`` picks the built-ins: ``"multiclass"`` or ``"multilabel"`` (see
    ``_multilabel``); ``None`` accepts the names of either (to check them before the
    targets are seen) and gives the multi-class ones.

    Raises:
        ValueError: An unknown built-in name (the message lists the known ones), a
            user metric's name that is not a plain identifier or is a built-in's, or two
            user metrics of one name.
        TypeError: An item that is not a metric.
    """
    items: list[object]
    if metrics is None:
        items = []
    elif isinstance(metrics, str):
        items = [part for part in metrics.split(",") if part.strip()]
    elif isinstance(metrics, Iterable) and not _is_torchmetric(metrics):
        items = list(metrics)
    else:
        items = [metrics]
    chosen: dict[str, Metric] = {}
    by_name, _, first = _registry(task or "multiclass")
    if always:
        chosen.update((name, by_name[name]) for name in first)
    for index, item in enumerate(items):
        if isinstance(item, str):
            metric = _builtin(item, task)
            if task is None:  # a name of either task, checked; the multi-class set's
                metric = by_name.get(metric.name, metric)
        else:
            metric = _user(item, index)
        if metric.name in chosen and chosen[metric.name] is not metric:
            raise ValueError(
                f"metrics has two metrics named {metric.name!r}; name them apart with "
                f"(name, metric) pairs."
            )
        chosen[metric.name] = metric
    return MetricSet(tuple(chosen.values()))


def check_metrics(metrics: object, task: str | None = None) -> None:
    """Refuse what ``fit(metrics=...)`` and ``evaluate(metrics=...)`` cannot compute.

    ``fit`` runs it first; the command line runs it on ``--metrics`` before reading data.
    ``task``: ``"multiclass"`` or ``"multilabel"`` when the targets are known, else
    ``None``: a built-in name of either task passes.

    Raises:
        ValueError: An unknown name (the message lists the built-in ones), a bad or
            repeated user metric name.
        TypeError: An item that is not a metric.

    Example:
        >>> check_metrics(["macro_f1", "balanced_accuracy", "per_class_recall"])
        >>> try:
        ...     check_metrics("macro_f")
        ... except ValueError as err:
        ...     print(str(err).split(";")[0])
        metrics has an unknown name 'macro_f' (did you mean 'macro_f1'?)
    """
    resolve_metrics(metrics, task=task)


def known_mode(key: str) -> MetricMode | None:
    """The direction of a history key that every run names alike, or ``None``.

    ``train_loss``/``train_acc`` and ``val_`` plus a built-in metric's key; a user metric's
    direction is known only once ``fit`` has its metrics (``History.modes``).

    Example:
        >>> known_mode("val_macro_f1"), known_mode("train_loss"), known_mode("val_mine")
        ('max', 'min', None)
    """
    split: Sequence[str] = key.split("_", 1)
    if len(split) != 2 or split[0] not in ("train", "val"):
        return None
    phase, rest = split
    if phase == "train":
        train: dict[str, MetricMode] = {"loss": "min", "acc": "max"}
        return train.get(rest)
    if re.fullmatch(r"(recall|ap|f1)_\d+", rest):
        return "max"
    every = (*_BUILTINS, *_registry("multilabel")[0].values())
    return next((m.mode for m in every if rest in m.keys(1)), None)
