"""CSVLogger and TensorBoardLogger: what they write, when, and what survives a kill."""

from __future__ import annotations

import csv
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks.train import (
    Callback,
    CSVLogger,
    RunState,
    TensorBoardLogger,
    fit,
    load_checkpoint,
)


def tiny_model() -> nn.Module:
    return vb.ResNet(vb.BasicBlock, widths=(8, 16), depths=(1, 1), stem_width=8, in_channels=1)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


class FirstLR(Callback):
    """The learning rate each epoch's first step uses (read before that step)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_epoch_start(self, trainer: RunState, epoch: int) -> None:
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


def test_csv_rows_equal_the_history(small: vb.data.ImageDataset, tmp_path: Path) -> None:
    logger, first_lr = CSVLogger(tmp_path / "metrics.csv", every_n_steps=1), FirstLR()
    history = fit(
        tiny_model(), small, small, epochs=2, batch_size=50, callbacks=[logger, first_lr],
        progress=False, seed=0, precision="fp32",
    )  # fmt: skip
    rows = read_csv(tmp_path / "metrics.csv")
    # Catches a missing or reordered column, a row per step, or values rounded on the way.
    assert list(rows[0]) == ["epoch", *[k for k in history.to_dict() if k != "epoch"]]
    assert len(rows) == len(history) == 2
    for row, record in zip(rows, history.records, strict=True):
        assert {k: float(v) for k, v in row.items()} == {k: float(v) for k, v in record.items()}

    steps = read_csv(logger.steps_path)
    assert logger.steps_path == tmp_path / "metrics_steps.csv"
    assert [int(r["step"]) for r in steps] == list(range(1, 17))  # 400 / 50 = 8 steps per epoch
    assert [int(r["epoch"]) for r in steps] == [1] * 8 + [2] * 8
    # Equal batches: the mean of the steps' losses is the epoch's train_loss. Catches a loss
    # divided by the accumulation group, or the same (stale) step logged every time.
    for epoch in (1, 2):
        losses = [float(r["loss"]) for r in steps if int(r["epoch"]) == epoch]
        assert sum(losses) / 8 == pytest.approx(history["train_loss"][epoch - 1], rel=1e-5)
        assert len(set(losses)) == 8
    # The rate a step used, not the one the schedule set after it (one-cycle moves every step).
    assert [float(steps[i]["lr"]) for i in (0, 8)] == pytest.approx(first_lr.lrs)
    assert float(steps[1]["lr"]) != pytest.approx(float(steps[0]["lr"]))


def test_csv_every_n_steps_and_epochs_only(small: vb.data.ImageDataset, tmp_path: Path) -> None:
    every3 = CSVLogger(tmp_path / "a.csv", every_n_steps=3, steps_path=tmp_path / "s" / "steps.csv")
    epochs_only = CSVLogger(tmp_path / "b.csv")
    fit(
        tiny_model(), small, epochs=2, batch_size=50, callbacks=[every3, epochs_only],
        progress=False, seed=0,
    )  # fmt: skip
    assert [int(r["step"]) for r in read_csv(tmp_path / "s" / "steps.csv")] == [3, 6, 9, 12, 15]
    assert len(read_csv(tmp_path / "b.csv")) == 2
    assert not (tmp_path / "b_steps.csv").exists()  # catches a step file nobody asked for


class InterruptAtEpochEnd(Callback):
    """Ctrl-C after an epoch's metrics are out, before its checkpoint is written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_csv_resume_appends_without_duplicates(small: vb.data.ImageDataset, tmp_path: Path) -> None:
    common = {"epochs": 3, "batch_size": 100, "seed": 0, "progress": False, "precision": "fp32"}
    path = tmp_path / "metrics.csv"
    (tmp_path / "metrics.csv").write_text("epoch,junk\n9,9\n")  # an old run's file
    fit(
        tiny_model(), small, small, checkpoint_dir=tmp_path,
        callbacks=[CSVLogger(path, every_n_steps=1), InterruptAtEpochEnd(2)], **common,
    )  # type: ignore[arg-type]  # fmt: skip
    # Epoch 2's row was written, but its checkpoint was not: epoch 2 will be replayed.
    assert [int(r["epoch"]) for r in read_csv(path)] == [1, 2]  # the old file was replaced
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1

    logger = CSVLogger(path, every_n_steps=1)
    history = fit(
        tiny_model(), small, small, checkpoint_dir=tmp_path, resume=True,
        callbacks=[logger, Callback()], **common,
    )  # type: ignore[arg-type]  # fmt: skip
    rows = read_csv(path)
    # Catches a resumed run that overwrites the file, or keeps the replayed epoch twice.
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [float(r["val_acc"]) for r in rows] == history["val_acc"]
    assert [int(r["step"]) for r in read_csv(logger.steps_path)] == list(range(1, 13))


def test_csv_logger_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is a folder"):
        CSVLogger(tmp_path)
    with pytest.raises(ValueError, match="every_n_steps must be an int >= 1 or None"):
        CSVLogger(tmp_path / "m.csv", every_n_steps=0)


def test_loggers_write_nothing_off_rank_0(tmp_path: Path) -> None:
    other_rank = SimpleNamespace(is_main_process=False, epoch=0, step=0, step_loss=None)
    csv_logger = CSVLogger(tmp_path / "m.csv", every_n_steps=1)
    tb_logger = TensorBoardLogger(tmp_path / "tb", every_n_steps=1)
    for logger in (csv_logger, tb_logger):
        logger.on_fit_start(other_rank)  # type: ignore[arg-type]
        logger.on_step_end(other_rank, 1)  # type: ignore[arg-type]
        logger.on_epoch_end(other_rank, 1, {"train_loss": 1.0})  # type: ignore[arg-type]
        logger.on_fit_end(other_rank)  # type: ignore[arg-type]
    assert not (tmp_path / "m.csv").exists()
    assert not (tmp_path / "m_steps.csv").exists()
    assert list((tmp_path / "tb").iterdir()) == []


KILLED_RUN = """
import sys, time
import torch
import visionblocks as vb
from visionblocks.train import Callback, CSVLogger

class SleepInEpoch3(Callback):
    def on_epoch_start(self, trainer, epoch):
        if epoch == 3:
            time.sleep(600)

torch.set_num_threads(1)
train = vb.subset(vb.load_dataset("sample"), 0.1, seed=0)
model = vb.ResNet(vb.BasicBlock, widths=(8,), depths=(1,), stem_width=8, in_channels=1)
vb.fit(model, train, train, epochs=5, batch_size=50, progress=False, seed=0,
       callbacks=[CSVLogger(sys.argv[1], every_n_steps=1), SleepInEpoch3()])
"""


def test_kill_9_keeps_every_finished_epoch(tmp_path: Path) -> None:
    script, path = tmp_path / "run.py", tmp_path / "metrics.csv"
    script.write_text(textwrap.dedent(KILLED_RUN))
    process = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 240
        while not (path.exists() and len(path.read_text().splitlines()) == 3):
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the run did not finish 2 epochs in 240 s"
            time.sleep(0.2)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    rows = read_csv(path)
    # Catches rows buffered in the process (lost with it), or a half-written row.
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for row in rows:
        assert all(math.isfinite(float(v)) for v in row.values()), row
        assert {"train_loss", "val_acc", "lr", "images_per_second"} <= set(row)
    steps = read_csv(path.with_name("metrics_steps.csv"))
    assert [int(r["step"]) for r in steps] == list(range(1, 9))  # 200 / 50 = 4 steps per epoch


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_tensorboard_writes_the_scalars(small: vb.data.ImageDataset, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    logger = TensorBoardLogger(tmp_path / "tb", every_n_steps=2)
    csv_logger = CSVLogger(tmp_path / "m.csv", every_n_steps=2)
    history = fit(
        tiny_model(), small, small, epochs=2, batch_size=50, callbacks=[logger, csv_logger],
        progress=False, seed=0,
    )  # fmt: skip
    found = scalars(tmp_path / "tb")
    expected = {f"epoch/{k}" for k in history.to_dict() if k != "epoch"} | {
        "step/train_loss",
        "step/lr",
    }
    assert set(found) == expected
    for key in history.to_dict():
        if key != "epoch":  # epoch scalars sit at the step that ended the epoch
            assert [s for s, _ in found[f"epoch/{key}"]] == [8, 16], key
            assert [v for _, v in found[f"epoch/{key}"]] == pytest.approx(history[key], rel=1e-6)
    steps = read_csv(tmp_path / "m_steps.csv")
    assert [s for s, _ in found["step/train_loss"]] == [2, 4, 6, 8, 10, 12, 14, 16]
    # The same step losses and rates the CSV logger recorded (float32 in the event file).
    assert [v for _, v in found["step/train_loss"]] == pytest.approx(
        [float(r["loss"]) for r in steps], rel=1e-6
    )
    assert [v for _, v in found["step/lr"]] == pytest.approx([float(r["lr"]) for r in steps])


def test_tensorboard_resume_hides_the_replayed_steps(
    small: vb.data.ImageDataset, tmp_path: Path
) -> None:
    pytest.importorskip("tensorboard")
    common = {"epochs": 3, "batch_size": 100, "seed": 0, "progress": False}
    log_dir = tmp_path / "tb"
    fit(
        tiny_model(), small, checkpoint_dir=tmp_path,
        callbacks=[TensorBoardLogger(log_dir, every_n_steps=1), InterruptAtEpochEnd(2)], **common,
    )  # type: ignore[arg-type]  # fmt: skip
    time.sleep(1.1)  # event files are named by the second they were opened
    fit(
        tiny_model(), small, checkpoint_dir=tmp_path, resume=True,
        callbacks=[TensorBoardLogger(log_dir, every_n_steps=1), Callback()], **common,
    )  # type: ignore[arg-type]  # fmt: skip
    found = scalars(log_dir)
    # Catches the interrupted run's steps 5-8 shown twice next to the replayed ones.
    assert [s for s, _ in found["step/train_loss"]] == list(range(1, 13))
    assert [s for s, _ in found["epoch/train_loss"]] == [4, 8, 12]


def test_tensorboard_bad_log_dir_fails_before_training(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(ValueError, match=r"cannot write to log_dir .*a_file/logs"):
        TensorBoardLogger(blocker / "logs")
    with pytest.raises(ValueError, match=r"every_n_steps must be an int >= 1, e\.g\. 50; got None"):
        TensorBoardLogger(tmp_path, every_n_steps=None)  # type: ignore[arg-type]


def test_tensorboard_missing_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r'pip install "visionblocks\[tensorboard\]"'):
        TensorBoardLogger(tmp_path / "tb")
    assert not (tmp_path / "tb").exists()  # nothing was created for a logger that cannot run


def test_step_loss_is_a_device_tensor_without_graph(small: vb.data.ImageDataset) -> None:
    class Spy(Callback):
        def __init__(self) -> None:
            self.losses: list[torch.Tensor] = []

        def on_step_end(self, trainer: RunState, step: int) -> None:
            assert trainer.step_loss is not None
            self.losses.append(trainer.step_loss)

    spy = Spy()
    fit(tiny_model(), small, epochs=1, batch_size=100, callbacks=[spy], progress=False, seed=0)
    assert len(spy.losses) == 4
    for loss in spy.losses:
        assert loss.shape == ()
        assert not loss.requires_grad  # catches a loss that keeps the step's graph alive
    assert len({float(v) for v in spy.losses}) == 4  # a fresh tensor per step, not one reused
