"""Bad training inputs are refused up front, each with one line that names the value and the fix.

The training side of ``test_bad_inputs.py``: a custom loss that returns what ``backward``
cannot start from, class weights that make the loss 0 / 0, callbacks that are not
instances, loggers whose files cannot be written, and config files whose keys would be
read twice or not at all. Every case checks the exception type, that the message names
the bad value, that it is a single line and that it carries no torch internals; the ones
raised by ``fit`` also check that no optimizer step was taken.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks._cli import train as train_module
from visionblocks._cli._common import CLIError
from visionblocks._cli.config import dumps, read_config
from visionblocks.cli import build_parser
from visionblocks.data import load_dataset, subset
from visionblocks.train import (
    BestCheckpoint,
    Callback,
    CSVLogger,
    EarlyStopping,
    TensorBoardLogger,
)

INTERNALS = ("aten::", "Traceback", "torch/", "site-packages", "implicitly created")
TINY = {"in_channels": 1, "image_size": 28, "widths": (4, 8, 8), "hidden": 16}
SPECS = train_module.train_options(build_parser().parse_args(["train"])).specs


def tiny() -> nn.Module:
    return vb.simple_cnn(10, **TINY)


@pytest.fixture(scope="module")
def data() -> vb.data.ImageDataset:
    return subset(load_dataset("sample"), 0.02)  # 40 images, 4 per class


class _StepRecorder(Callback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, trainer: Any, step: int) -> None:
        self.steps.append(step)


def fit(data: Any, model: nn.Module | None = None, **kwargs: Any) -> vb.History:
    kwargs = {
        "epochs": 1, "batch_size": 16, "progress": False, "precision": "fp32", "device": "cpu",
        "seed": 0, **kwargs,
    }  # fmt: skip
    return vb.fit(model or tiny(), data, **kwargs)


def assert_one_clear_line(error: BaseException, names: str) -> None:
    message = str(error)
    assert names in message, message
    assert "\n" not in message.strip(), message
    leaked = [word for word in INTERNALS if word in message]
    assert not leaked, f"torch internals {leaked} in: {message}"


def assert_refused(call: Callable[[], object], error: type[BaseException], names: str) -> str:
    """``call()`` raises ``error`` in one clear line naming ``names``; returns the message."""
    with pytest.raises(error) as caught:
        call()
    assert_one_clear_line(caught.value, names)
    return str(caught.value)


def assert_refused_before_any_step(
    data: Any, error: type[BaseException], names: str, **kwargs: Any
) -> None:
    """``fit(**kwargs)`` raises ``error`` naming ``names`` with the weights untouched."""
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recorder = _StepRecorder()
    callbacks = [*kwargs.pop("callbacks", []), recorder]
    assert_refused(lambda: fit(data, model, callbacks=callbacks, **kwargs), error, names)
    assert recorder.steps == []
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# --- a custom loss --------------------------------------------------------------------------


def per_example(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, targets, reduction="none")


def as_float(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return nn.functional.cross_entropy(logits, targets).item()


def as_int(logits: torch.Tensor, targets: torch.Tensor) -> int:
    return 3


def detached(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, targets).detach()


def error_rate(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) != targets).float().mean()  # no grad through argmax


def logits_only(logits: torch.Tensor) -> torch.Tensor:
    return logits.logsumexp(1).mean()


BAD_LOSSES: dict[str, tuple[Callable[..., Any], str]] = {
    "vector": (per_example, "per_example returned a tensor of shape (16,)"),
    "python-float": (as_float, "as_float returned float"),
    "python-int": (as_int, "as_int returned int 3"),
    "detached": (detached, "detached returned a torch.float32 tensor without grad"),
    "no-grad-path": (error_rate, "error_rate returned a torch.float32 tensor without grad"),
}


@pytest.mark.parametrize(("loss", "names"), BAD_LOSSES.values(), ids=list(BAD_LOSSES))
def test_a_loss_that_backward_cannot_start_from_is_named(
    loss: Callable[..., Any], names: str, data: vb.data.ImageDataset
) -> None:
    assert_refused_before_any_step(data, TypeError, names, loss=loss)


def test_a_loss_message_says_what_a_loss_must_return(data: vb.data.ImageDataset) -> None:
    with pytest.raises(TypeError, match=r"must return a scalar tensor with grad, computed from "):
        fit(data, loss=per_example)


def test_a_loss_of_one_argument_is_refused_before_training(data: vb.data.ImageDataset) -> None:
    assert_refused_before_any_step(data, TypeError, "logits_only(logits:", loss=logits_only)


def test_good_custom_losses_train(data: vb.data.ImageDataset) -> None:
    # Control: the checks above refuse only what backward() cannot use.
    def mean_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits, targets)

    for loss in (
        nn.CrossEntropyLoss(),
        mean_ce,
        lambda logits, targets, *rest: mean_ce(logits, targets),
    ):
        assert fit(data, loss=loss).last["epoch"] == 1
    assert fit(data, loss=nn.CrossEntropyLoss(), mixup=0.2).last["epoch"] == 1  # soft targets


BAD_WEIGHTS: dict[str, tuple[torch.Tensor, str]] = {
    "all-zero": (torch.zeros(10), "class_weight is all zeros"),
    "negative": (torch.tensor([1.0] * 9 + [-1.0]), "class 9 has -1.0"),
    "nan": (torch.tensor([1.0, math.nan] + [1.0] * 8), "class 1 has nan"),
    "inf": (torch.tensor([1.0] * 5 + [math.inf] + [1.0] * 4), "class 5 has inf"),
}


@pytest.mark.parametrize(("weight", "names"), BAD_WEIGHTS.values(), ids=list(BAD_WEIGHTS))
def test_bad_class_weights_are_refused_by_value(
    weight: torch.Tensor, names: str, data: vb.data.ImageDataset
) -> None:
    assert_refused_before_any_step(data, ValueError, names, class_weight=weight)


def test_class_weights_are_checked_with_the_other_arguments() -> None:
    # Before any data or model is needed: the CLI and fit's first line run this.
    with pytest.raises(ValueError, match="class_weight is all zeros"):
        vb.train.check_fit_arguments(class_weight=torch.zeros(3))


def test_some_zero_class_weights_train(data: vb.data.ImageDataset) -> None:
    # Control: a zero weight drops a class, which is a choice; only all zeros is 0 / 0.
    weight = torch.tensor([0.0] + [1.0] * 9)
    assert math.isfinite(fit(data, class_weight=weight).last["train_loss"])


# --- callbacks ------------------------------------------------------------------------------


def test_early_stopping_refuses_a_negative_patience() -> None:
    message = assert_refused(
        lambda: EarlyStopping("val_loss", patience=-2), ValueError, "patience must be an int >= 1"
    )
    assert "got -2" in message


def test_best_checkpoint_names_a_metric_that_never_appears(
    data: vb.data.ImageDataset, tmp_path: Path
) -> None:
    best = BestCheckpoint(tmp_path / "best.pt", monitor="val_accuracy")
    message = assert_refused(
        lambda: fit(data, val=data, callbacks=[best]),
        ValueError,
        "BestCheckpoint monitors 'val_accuracy'",
    )
    assert "'val_acc'" in message  # the metrics there are, to pick from


def test_best_checkpoint_without_validation_data_says_pass_val(
    data: vb.data.ImageDataset, tmp_path: Path
) -> None:
    assert_refused(
        lambda: fit(data, callbacks=[BestCheckpoint(tmp_path / "best.pt", monitor="val_acc")]),
        ValueError,
        "pass val= to fit()",
    )


def test_best_checkpoint_waits_for_skipped_validations(
    data: vb.data.ImageDataset, tmp_path: Path
) -> None:
    # Control: with val_every=2 epoch 1 has no val_acc, which is not an error.
    best = BestCheckpoint(tmp_path / "best.pt", monitor="val_acc")
    fit(data, val=data, epochs=2, val_every=2, callbacks=[best])
    assert best.best_epoch == 2
    assert best.path.is_file()


def _on_epoch_end(trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
    pass


BAD_CALLBACKS: dict[str, tuple[Callable[[Path], Any], str]] = {
    "class": (lambda tmp: [CSVLogger], "pass CSVLogger(...), an instance"),
    "function": (lambda tmp: [_on_epoch_end], "callbacks[0] is the function _on_epoch_end"),
    "second-item": (
        lambda tmp: [CSVLogger(tmp / "m.csv"), EarlyStopping],
        "callbacks[1] is the class EarlyStopping",
    ),
    "not-a-list": (lambda tmp: CSVLogger(tmp / "m.csv"), "callbacks=[...]"),
}


@pytest.mark.parametrize(("make", "names"), BAD_CALLBACKS.values(), ids=list(BAD_CALLBACKS))
def test_callbacks_that_are_not_instances_are_refused_up_front(
    make: Callable[[Path], Any], names: str, data: vb.data.ImageDataset, tmp_path: Path
) -> None:
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert_refused(lambda: fit(data, model, callbacks=make(tmp_path)), TypeError, names)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# --- loggers --------------------------------------------------------------------------------


def test_csv_logger_refuses_a_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("")
    assert_refused(
        lambda: CSVLogger(tmp_path / "taken" / "metrics.csv"),
        ValueError,
        f"{str(tmp_path / 'taken')!r} is a file",
    )


def test_csv_logger_refuses_a_folder(tmp_path: Path) -> None:
    assert_refused(lambda: CSVLogger(tmp_path), ValueError, "is a folder; give a file")


UNWRITABLE = pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")


@UNWRITABLE
def test_csv_logger_refuses_an_unwritable_place() -> None:
    assert_refused(
        lambda: CSVLogger("/proc/visionblocks/metrics.csv"),
        ValueError,
        "CSVLogger cannot write to path '/proc/visionblocks",
    )


@UNWRITABLE
def test_csv_logger_refuses_an_unwritable_steps_path(tmp_path: Path) -> None:
    assert_refused(
        lambda: CSVLogger(tmp_path / "m.csv", every_n_steps=5, steps_path="/proc/steps.csv"),
        ValueError,
        "steps_path '/proc/steps.csv'",
    )


@UNWRITABLE
def test_both_loggers_say_the_same_for_the_same_place(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    (tmp_path / "taken").write_text("")
    reason = f"({str(tmp_path / 'taken')!r} is a file, not a folder)"
    logs = tmp_path / "taken" / "logs"
    assert_refused(lambda: CSVLogger(logs / "m.csv"), ValueError, reason)
    assert_refused(lambda: TensorBoardLogger(logs), ValueError, reason)


def test_csv_logger_creates_its_folder_when_made(tmp_path: Path) -> None:
    # Control: a path in folders that do not exist yet is fine (they are created).
    logger = CSVLogger(tmp_path / "a" / "b" / "metrics.csv")
    assert logger.path.parent.is_dir()


# --- config files ---------------------------------------------------------------------------


def _read(tmp_path: Path, text: str) -> dict[str, Any]:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return read_config(path, SPECS)


BAD_CONFIGS = {
    "same-key-twice": ("batch_size = 16\nbatch-size = 64\n", "batch_size and batch-size"),
    "fit-table-alone": ("epochs = 2\n[fit]\nlr = 1.0\n", "the table [fit] (lr) sets nothing"),
    "other-table": ("[train]\nepochs = 2\n", "the table [train] (epochs) sets nothing"),
    "nested-table": ("[model.args]\nwidth = 8\n", "the table [model]"),
}


@pytest.mark.parametrize(("text", "names"), BAD_CONFIGS.values(), ids=list(BAD_CONFIGS))
def test_config_keys_read_twice_or_not_at_all_are_refused(
    text: str, names: str, tmp_path: Path
) -> None:
    assert_refused(lambda: _read(tmp_path, text), CLIError, names)


def test_a_table_error_says_where_options_go(tmp_path: Path) -> None:
    with pytest.raises(CLIError, match=r"options are top-level keys .*\[fit\] and \[environment\]"):
        _read(tmp_path, "[fit]\nbatch_size = 64\n")


def test_a_runs_own_config_reads_back(tmp_path: Path) -> None:
    # Control: config.toml records [fit] and [environment] as a pair; they set nothing.
    text = dumps(
        {"batch_size": 64, "fit": {"lr": 1.0, "tta": False}, "environment": {"torch": "x"}}
    )
    assert _read(tmp_path, text) == {"batch_size": 64}
