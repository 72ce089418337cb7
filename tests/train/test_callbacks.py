"""What callbacks see and keep: step_loss, on_exception, state saved across resume."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from state_copy import weights
from torch import nn

import visionblocks as vb
from visionblocks.train import BestCheckpoint, Callback, EarlyStopping, RunState, fit


def tiny_model() -> nn.Module:
    return vb.ResNet(vb.BasicBlock, widths=(8, 16), depths=(1, 1), stem_width=8, in_channels=1)


def linear_model() -> nn.Module:
    """No BatchNorm, no dropout: a step depends only on its batch and the weights."""
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


class StepLossCheck(Callback):
    """Recomputes each step's last micro-batch loss with the weights from before the step."""

    def __init__(self) -> None:
        self.inputs: torch.Tensor | None = None
        self.targets: torch.Tensor | None = None
        self.before: nn.Module | None = None
        self.pairs: list[tuple[float, float]] = []

    def criterion(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        self.targets = targets
        return F.cross_entropy(logits, targets)

    def on_fit_start(self, trainer: RunState) -> None:
        def keep_input(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            self.inputs = args[0].detach().clone()

        trainer.model.register_forward_pre_hook(keep_input)

    def on_after_backward(self, trainer: RunState, step: int) -> None:
        self.before = copy.deepcopy(trainer.model)  # the optimizer has not stepped yet

    def on_step_end(self, trainer: RunState, step: int) -> None:
        assert self.before is not None
        assert self.inputs is not None
        assert self.targets is not None
        assert trainer.step_loss is not None
        with torch.no_grad():
            again = F.cross_entropy(self.before(self.inputs), self.targets)
        self.pairs.append((float(trainer.step_loss), float(again)))


@pytest.mark.parametrize("accumulate", [1, 2])
def test_step_loss_is_the_loss_of_that_step(small: vb.data.ImageDataset, accumulate: int) -> None:
    check = StepLossCheck()
    fit(
        linear_model(), small, epochs=1, batch_size=50, accumulate=accumulate, augment=None,
        loss=check.criterion, callbacks=[check], precision="fp32", progress=False, seed=0,
    )  # fmt: skip
    assert len(check.pairs) == 8 // accumulate
    # Catches the loss of another step, a stale tensor, or one divided by the group size.
    for logged, recomputed in check.pairs:
        assert logged == pytest.approx(recomputed, rel=1e-5, abs=1e-6)
    assert len({logged for logged, _ in check.pairs}) == len(check.pairs)


class Record(Callback):
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def on_exception(self, trainer: RunState, error: BaseException) -> None:
        self.calls.append(("on_exception", error))

    def on_fit_end(self, trainer: RunState) -> None:
        self.calls.append(("on_fit_end", None))


class RaiseAt(Callback):
    def __init__(self, step: int, error: BaseException) -> None:
        self.step, self.error = step, error

    def on_step_end(self, trainer: RunState, step: int) -> None:
        if step == self.step:
            raise self.error


def test_on_exception_gets_the_error(small: vb.data.ImageDataset) -> None:
    boom, record = RuntimeError("boom"), Record()
    with pytest.raises(RuntimeError, match="boom"):
        fit(
            linear_model(), small, epochs=2, batch_size=100, callbacks=[RaiseAt(2, boom), record],
            progress=False, seed=0,
        )  # fmt: skip
    assert record.calls == [("on_exception", boom), ("on_fit_end", None)]

    stop, record = KeyboardInterrupt(), Record()
    history = fit(
        linear_model(), small, epochs=2, batch_size=100, callbacks=[RaiseAt(6, stop), record],
        progress=False, seed=0,
    )  # fmt: skip
    assert history.interrupted
    assert len(history) == 1  # step 6 is in epoch 2 (4 steps per epoch)
    assert record.calls == [("on_exception", stop), ("on_fit_end", None)]


def test_no_exception_no_on_exception(small: vb.data.ImageDataset) -> None:
    record = Record()
    fit(linear_model(), small, epochs=1, batch_size=100, callbacks=[record], progress=False)
    assert record.calls == [("on_fit_end", None)]


class Capture(Callback):
    """The live weights and the EMA's state when fit ends (before the average is applied)."""

    def on_fit_end(self, trainer: RunState) -> None:
        assert trainer.ema is not None
        self.live = weights(trainer.model)
        self.ema = {k: v.clone() for k, v in trainer.ema.state_dict().items()}


class InterruptAtStep(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_after_backward(self, trainer: RunState, step: int) -> None:
        if step == self.step:
            raise KeyboardInterrupt


def test_resume_with_ema_and_early_stopping_is_exact(
    small: vb.data.ImageDataset, tmp_path: Path
) -> None:
    common = {
        "epochs": 6, "batch_size": 64, "seed": 3, "precision": "fp32", "ema": 0.9,
        "progress": False, "device": "cpu",  # a GPU needs deterministic kernels for this
    }  # fmt: skip

    def stopper() -> EarlyStopping:
        # Only epoch 1 improves on -inf by 2.0: stops after epoch 3, once patience 2 runs out.
        # A stopper whose state was lost on resume would restart from -inf and stop later.
        return EarlyStopping("val_acc", patience=2, min_delta=2.0)

    torch.manual_seed(0)
    straight, straight_stop, straight_end = tiny_model(), stopper(), Capture()
    history = fit(straight, small, small, callbacks=[straight_stop, straight_end], **common)  # type: ignore[arg-type]
    assert history["epoch"] == [1, 2, 3]

    torch.manual_seed(0)
    first = tiny_model()
    # 400 images in batches of 64: 6 steps per epoch; step 9 is inside epoch 2.
    stopped = fit(
        first, small, small, checkpoint_dir=tmp_path,
        callbacks=[stopper(), Capture(), InterruptAtStep(9)], **common,
    )  # type: ignore[arg-type]  # fmt: skip
    assert stopped.interrupted

    torch.manual_seed(42)  # another init: everything must come from the checkpoint
    resumed, resumed_stop, resumed_end = tiny_model(), stopper(), Capture()
    again = fit(
        resumed, small, small, checkpoint_dir=tmp_path, resume=True,
        callbacks=[resumed_stop, resumed_end, Callback()], **common,
    )  # type: ignore[arg-type]  # fmt: skip
    assert again["epoch"] == [1, 2, 3]
    assert again["val_acc"] == history["val_acc"]  # validation measured the same average
    assert resumed_stop.state_dict() == straight_stop.state_dict()
    assert resumed_stop.stopped_epoch == 3
    for key, value in straight_end.live.items():
        assert torch.equal(value, resumed_end.live[key]), key
    assert set(resumed_end.ema) == set(straight_end.ema)
    for key, value in straight_end.ema.items():
        assert torch.equal(value, resumed_end.ema[key]), key  # n_averaged and BN buffers too
    for key, value in straight.state_dict().items():  # the average, left in the model
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_resume_with_other_callbacks_is_refused(
    small: vb.data.ImageDataset, tmp_path: Path
) -> None:
    common = {"epochs": 2, "batch_size": 100, "seed": 0, "progress": False}
    fit(
        linear_model(), small, checkpoint_dir=tmp_path,
        callbacks=[EarlyStopping("train_loss", patience=5)], **common,
    )  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ValueError, match=r"callback 0 \(BestCheckpoint\) has no saved state"):
        fit(
            linear_model(), small, checkpoint_dir=tmp_path, resume=True,
            callbacks=[BestCheckpoint(tmp_path / "best.pt", "train_loss")], **common,
        )  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(ValueError, match="written without ema; resume with the same ema="):
        fit(
            linear_model(), small, checkpoint_dir=tmp_path, resume=True, ema=0.9,
            callbacks=[EarlyStopping("train_loss", patience=5)], **common,
        )  # type: ignore[arg-type]  # fmt: skip
