"""fit(metrics=...) and evaluate(metrics=...): scikit-learn as the reference, monitors, loggers.

The model here is a lookup table: image ``i`` carries its index in pixel (0, 0), and the
model returns row ``i`` of a logits table (plus ``0 * w``, so ``fit`` has a parameter to
step). The logits are then known exactly, and scikit-learn computes every metric from them.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from lookup_model import Lookup
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
    recall_score,
    top_k_accuracy_score,
)
from torch import nn
from torch.utils.data import TensorDataset

import visionblocks as vb
from visionblocks.train import (
    BUILTIN_METRICS,
    BestCheckpoint,
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    RunState,
    evaluate,
    fit,
)

SIZE = 300
ALL_BUILTINS = ["accuracy", "top5_accuracy", "macro_f1", "balanced_accuracy", "per_class_recall",
                "min_recall"]  # fmt: skip


def lookup_data(labels: torch.Tensor) -> TensorDataset:
    """A Dataset (not normalized by fit) of ``(1, 2, 2)`` images that carry their index."""
    images = torch.zeros(len(labels), 1, 2, 2)
    images[:, 0, 0, 0] = torch.arange(len(labels), dtype=torch.float32) / SIZE
    return TensorDataset(images, labels)


def case(num_classes: int, *, seed: int, skill: float = 1.5) -> tuple[torch.Tensor, torch.Tensor]:
    """Imbalanced labels (with K = 10, class 9 has no example) and logits that favour them."""
    generator = torch.Generator().manual_seed(seed)
    if num_classes == 2:
        weights = torch.tensor([0.85, 0.15])
    else:
        weights = torch.tensor([30, 20, 12, 10, 8, 8, 5, 4, 3, 0], dtype=torch.float32)
    labels = torch.multinomial(weights, SIZE, replacement=True, generator=generator)
    logits = torch.randn(SIZE, num_classes, generator=generator)
    logits[torch.arange(SIZE), labels] += skill
    return logits, labels


def sklearn_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Every built-in metric as scikit-learn computes it (all K classes of the model)."""
    k = logits.shape[1]
    y, pred, classes = labels.numpy(), logits.argmax(1).numpy(), list(range(k))
    recall = recall_score(y, pred, labels=classes, average=None, zero_division=0)
    present = [c for c in classes if (y == c).any()]
    with warnings.catch_warnings():  # class 9 is predicted but never true: sklearn warns
        warnings.simplefilter("ignore")
        balanced = balanced_accuracy_score(y, pred)
    reference = {
        "loss": log_loss(y, logits.double().softmax(1).numpy(), labels=classes),
        "acc": accuracy_score(y, pred),
        "macro_f1": f1_score(y, pred, labels=classes, average="macro", zero_division=0),
        "balanced_accuracy": balanced,
        "min_recall": min(recall[c] for c in present),
        **{f"recall_{c}": recall[c] for c in classes},
    }
    if k > 5:
        reference["top5_accuracy"] = top_k_accuracy_score(y, logits.numpy(), k=5, labels=classes)
    return {key: float(value) for key, value in reference.items()}


COMMON: dict[str, Any] = {
    "epochs": 2, "batch_size": 64, "device": "cpu", "precision": "fp32", "progress": False,
    "seed": 0,
}  # fmt: skip


@pytest.mark.parametrize("num_classes", [2, 10])
def test_metrics_of_fit_and_evaluate_match_scikit_learn(num_classes: int) -> None:
    logits, labels = case(num_classes, seed=num_classes)
    data = lookup_data(labels)
    chosen = [m for m in ALL_BUILTINS if num_classes > 5 or m != "top5_accuracy"]
    model = Lookup(logits)
    history = fit(model, data, data, metrics=chosen, **COMMON)
    result = evaluate(model, data, precision="fp32", device="cpu", metrics=chosen)
    reference = sklearn_metrics(logits, labels)
    recorded = {k[4:]: v for k, v in history.last.items() if k.startswith("val_")}
    # Catches a formula that differs from scikit-learn's (macro F1 over present classes
    # only, balanced accuracy counting the absent class 9, recall_<i> shifted, a lost image).
    assert set(recorded) == set(reference)
    for key, value in reference.items():
        assert recorded[key] == pytest.approx(value, rel=1e-6 if key == "loss" else 1e-12), key
    # Catches fit's validation and evaluate computing a metric two ways.
    assert result.metrics == {k: v for k, v in recorded.items() if k != "loss"}
    assert result.macro_f1 == recorded["macro_f1"]
    assert result.balanced_accuracy == recorded["balanced_accuracy"]
    assert result.recall == [recorded[f"recall_{c}"] for c in range(num_classes)]


def test_a_user_function_gets_every_logit_once_in_order() -> None:
    logits, labels = case(10, seed=1)
    data = lookup_data(labels)
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def weighted_error(out: torch.Tensor, targets: torch.Tensor) -> float:
        calls.append((out, targets))
        wrong = (out.argmax(1) != targets).double()
        return float((wrong * torch.arange(len(targets))).sum())  # depends on the order

    history = fit(Lookup(logits), data, data, metrics=[weighted_error], **COMMON)
    assert len(calls) == COMMON["epochs"]  # once per validation, not per batch
    for out, targets in calls:
        # Catches batches concatenated out of order, a dropped last batch, or bf16 logits.
        assert out.dtype == torch.float32
        assert torch.equal(out, logits)
        assert torch.equal(targets, labels)
    expected = float(((logits.argmax(1) != labels).double() * torch.arange(SIZE)).sum())
    assert history["val_weighted_error"] == [expected, expected]
    assert history.modes["val_weighted_error"] is None  # nobody said which way is better


def test_a_torchmetrics_metric_is_fed_each_batch_and_reset_each_validation() -> None:
    torchmetrics = pytest.importorskip("torchmetrics")
    from torchmetrics.classification import MulticlassF1Score

    class Seen(torchmetrics.Metric):  # type: ignore[misc]
        higher_is_better = False

        def __init__(self) -> None:
            super().__init__()
            self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

        def update(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
            self.count += len(targets)

        def compute(self) -> torch.Tensor:
            return self.count

    logits, labels = case(10, seed=2)
    data = lookup_data(labels)
    f1 = MulticlassF1Score(num_classes=10, average="macro")
    history = fit(Lookup(logits), data, data, metrics=["macro_f1", ("tm_f1", f1), Seen()], **COMMON)
    # Catches a metric never reset (600 in epoch 2) or fed only part of the data.
    assert history["val_seen"] == [SIZE, SIZE]
    assert history["val_tm_f1"] == pytest.approx(history["val_macro_f1"], rel=1e-6)
    # The direction comes from higher_is_better, named after the class in snake case.
    assert history.modes["val_tm_f1"] == "max"
    assert history.modes["val_seen"] == "min"


class Swap(Callback):
    """Before each epoch, give the Lookup model that epoch's table (a metric that moves)."""

    def __init__(self, tables: list[torch.Tensor]) -> None:
        self.tables = tables

    def on_epoch_start(self, trainer: RunState, epoch: int) -> None:
        trainer.model.table = self.tables[epoch - 1]  # type: ignore[union-attr]


def test_early_stopping_and_best_checkpoint_follow_a_metric_s_direction(tmp_path: Path) -> None:
    good, labels = case(10, seed=3, skill=3.0)
    poor, _ = case(10, seed=3, skill=0.5)
    data = lookup_data(labels)
    stopper = EarlyStopping("val_macro_f1", patience=1)
    best = BestCheckpoint(tmp_path / "best.pt", monitor="val_balanced_accuracy")
    assert stopper.mode == best.mode == "max"  # known before the run, for built-ins
    history = fit(
        Lookup(poor), data, data, metrics=["macro_f1", "balanced_accuracy"],
        callbacks=[Swap([poor, good, poor, good]), stopper, best], **{**COMMON, "epochs": 4},
    )  # fmt: skip
    # Epoch 2 is the best; epoch 3 worse. Catches a metric taken as lower-is-better (the
    # best would be epoch 1 or 3, and the stopper would wait on).
    assert history["val_macro_f1"][1] > max(history["val_macro_f1"][0], history["val_macro_f1"][2])
    assert stopper.stopped_epoch == 3
    assert best.best_epoch == 2
    assert vb.load_checkpoint(best.path)["metrics"]["val_balanced_accuracy"] == best.best
    assert history.best("val_macro_f1")["epoch"] == 2


def test_a_user_metric_is_monitored_with_the_direction_given() -> None:
    good, labels = case(10, seed=4, skill=3.0)
    poor, _ = case(10, seed=4, skill=0.5)
    data = lookup_data(labels)

    def errors(out: torch.Tensor, targets: torch.Tensor) -> float:
        return float((out.argmax(1) != targets).sum())

    with pytest.raises(
        ValueError, match=r"'val_errors', a metric of unknown direction; pass mode="
    ):
        fit(Lookup(good), data, data, metrics=[errors], callbacks=[EarlyStopping("val_errors")],
            **COMMON)  # fmt: skip
    stopper = EarlyStopping("val_errors", patience=1, mode="min")
    history = fit(
        Lookup(poor), data, data, metrics=[errors],
        callbacks=[Swap([poor, good, poor, good]), stopper], **{**COMMON, "epochs": 4},
    )  # fmt: skip
    assert history["val_errors"][1] < history["val_errors"][2]
    assert stopper.stopped_epoch == 3  # catches mode="min" ignored (stops at 2 on "max")
    assert stopper.best == history["val_errors"][1]


class CountEpochs(Callback):
    def __init__(self) -> None:
        self.started = 0

    def on_epoch_start(self, trainer: RunState, epoch: int) -> None:
        self.started += 1


@pytest.mark.parametrize(
    ("monitor", "metrics", "val", "fix"),
    [
        ("val_macro_f2", ["macro_f1"], True, "add it to fit(metrics=[...])"),
        ("val_macro_f1", None, True, "add it to fit(metrics=[...])"),
        ("val_macro_f1", ["macro_f1"], False, "pass val= to fit()"),
        ("lr", None, True, "monitor a val_ or train_ metric"),
    ],
)
def test_an_unknown_monitor_fails_before_training_naming_the_valid_ones(
    monitor: str, metrics: list[str] | None, val: bool, fix: str
) -> None:
    logits, labels = case(10, seed=5)
    data = lookup_data(labels)
    counter = CountEpochs()
    with pytest.raises(ValueError, match=r"monitors .* which this run does not record") as err:
        fit(Lookup(logits), data, data if val else None, metrics=metrics,
            callbacks=[counter, EarlyStopping(monitor)], **COMMON)  # fmt: skip
    message = str(err.value)
    assert counter.started == 0  # catches a check made only once an epoch has ended
    assert fix in message
    assert "'train_loss'" in message  # the names to pick from
    if val and metrics:
        assert "'val_macro_f1'" in message


@pytest.mark.parametrize("checker", ["EarlyStopping", "BestCheckpoint"])
def test_a_refused_monitor_leaves_an_earlier_loggers_file_alone(
    checker: str, tmp_path: Path
) -> None:
    # The CSVLogger comes first in callbacks and rewrites its file when the run starts: the
    # monitor check must run before that, or a rerun with a misspelt monitor empties the
    # previous run's history.csv.
    logits, labels = case(10, seed=5)
    data = lookup_data(labels)
    history = tmp_path / "history.csv"
    history.write_text("epoch,val_acc\n1,0.5\n")
    watcher = (
        EarlyStopping("val_acc_typo")
        if checker == "EarlyStopping"
        else BestCheckpoint(tmp_path / "best.pt", "val_acc_typo")
    )
    with pytest.raises(ValueError, match="which this run does not record"):
        fit(Lookup(logits), data, data, callbacks=[CSVLogger(history), watcher], **COMMON)
    assert history.read_text() == "epoch,val_acc\n1,0.5\n"


def _no_name(out: torch.Tensor, targets: torch.Tensor) -> float:
    return 0.0


@pytest.mark.parametrize(
    ("metrics", "error", "message"),
    [
        (["macro_f2"], ValueError, "unknown name 'macro_f2' (did you mean 'macro_f1'?)"),
        ("accuracy,f2_score", ValueError, "the built-in metrics are accuracy, top5_accuracy"),
        ([lambda out, y: 0.0], TypeError, "metrics[0] is a lambda"),
        ([3], TypeError, "metrics[0] is a int; a metric is a built-in name"),
        ([("macro_f1", _no_name)], ValueError, "'macro_f1', a built-in metric's name"),
        ([("val loss", _no_name)], ValueError, "has only letters, digits and _"),
        ([("a", _no_name), ("a", _no_name)], ValueError, "two metrics named 'a'"),
        ([("a", _no_name, "max")], TypeError, "a tuple of 3"),
        ([("a", 3.0)], TypeError, "pairs 'a' with a float"),
    ],
)
def test_bad_metrics_are_refused_before_any_data_is_read(
    metrics: Any, error: type[Exception], message: str
) -> None:
    class Unreadable(torch.utils.data.Dataset[Any]):
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> Any:
            raise AssertionError("the data was read")  # a check made too late

    with pytest.raises(error) as err:
        fit(nn.Linear(1, 2), Unreadable(), metrics=metrics, epochs=1, progress=False)
    assert message in str(err.value)
    for name in BUILTIN_METRICS:  # the unknown-name error lists every built-in
        if "unknown name" in message:
            assert name in str(err.value)


def test_top5_needs_more_classes_than_five() -> None:
    logits, labels = case(2, seed=6)
    data = lookup_data(labels)
    with pytest.raises(ValueError, match="'top5_accuracy', which needs at least 5 classes"):
        fit(Lookup(logits), data, data, metrics=["top5"], **COMMON)
    with pytest.raises(ValueError, match="the model has 2: drop it"):
        evaluate(Lookup(logits), data, metrics=["top5"], device="cpu")


def test_a_function_that_returns_a_vector_is_refused() -> None:
    logits, labels = case(10, seed=7)
    data = lookup_data(labels)

    def per_class(out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.zeros(10)

    with pytest.raises(TypeError, match=r"'per_class' returned a tensor of shape \(10,\)"):
        evaluate(Lookup(logits), data, metrics=[per_class], device="cpu")


def test_csv_and_tensorboard_loggers_record_the_metrics(tmp_path: Path) -> None:
    logits, labels = case(10, seed=8)
    data = lookup_data(labels)
    callbacks: list[Callback] = [CSVLogger(tmp_path / "metrics.csv")]
    tensorboard = pytest.importorskip("tensorboard")
    callbacks.append(vb.TensorBoardLogger(tmp_path / "tb"))
    history = fit(Lookup(logits), data, data, metrics=["macro_f1", "per_class_recall"],
                  callbacks=callbacks, **COMMON)  # fmt: skip
    rows = list(csv.DictReader((tmp_path / "metrics.csv").read_text().splitlines()))
    recall_columns = [f"val_recall_{c}" for c in range(10)]
    for column in ["val_macro_f1", *recall_columns]:
        # Catches a metric that reaches the history but not the CSV file.
        assert [float(r[column]) for r in rows] == history[column], column

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert tensorboard is not None
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"epoch/val_macro_f1", *(f"epoch/{c}" for c in recall_columns)} <= tags
    logged = [e.value for e in events.Scalars("epoch/val_macro_f1")]
    assert logged == pytest.approx(history["val_macro_f1"], rel=1e-6)  # stored as float32


def test_history_best_takes_each_metric_s_direction() -> None:
    h = History([
        {"epoch": 1, "val_loss": 0.9, "val_macro_f1": 0.7, "val_mine": 3.0},
        {"epoch": 2, "val_loss": 0.5, "val_macro_f1": 0.6, "val_mine": 1.0},
        {"epoch": 3, "val_loss": 0.7, "val_macro_f1": math.nan, "val_mine": 2.0},
    ])  # fmt: skip
    assert h.best("val_loss")["epoch"] == 2  # catches the old default, max, for a loss
    assert h.best("val_macro_f1")["epoch"] == 1  # and a NaN taken as best
    with pytest.raises(ValueError, match="direction of 'val_mine' is unknown"):
        h.best("val_mine")
    h.modes["val_mine"] = "min"
    assert h.best("val_mine")["epoch"] == 2
    assert h.best("val_mine", mode="max")["epoch"] == 1


def test_metrics_in_the_epoch_line(capsys: pytest.CaptureFixture[str]) -> None:
    logits, labels = case(10, seed=9)
    data = lookup_data(labels)
    history = fit(Lookup(logits), data, data, metrics=["macro_f1", "per_class_recall"],
                  **{**COMMON, "epochs": 1, "progress": "lines"})  # fmt: skip
    captured = capsys.readouterr()
    line = next(x for x in (captured.out + captured.err).splitlines() if x.startswith("epoch"))
    assert f"macro_f1 {history.last['val_macro_f1']:.4f}" in line
    assert "recall_0" not in line  # per-class values stay in the history
