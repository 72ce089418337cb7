"""fit(ema=...) and fit(accumulate=N) against references computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from state_copy import weights
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import visionblocks as vb
from visionblocks.data import DeviceLoader, load_dataset, subset
from visionblocks.train import (
    EMA,
    BestCheckpoint,
    Callback,
    RunState,
    evaluate,
    fit,
    load_checkpoint,
)


def linear_model() -> nn.Module:
    """No BatchNorm, no dropout: a step depends only on its batch and the weights."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


class LiveWeights(Callback):
    """The model's weights after every optimizer step."""

    def __init__(self) -> None:
        self.after_step: list[dict[str, torch.Tensor]] = []

    def on_step_end(self, trainer: RunState, step: int) -> None:
        self.after_step.append(weights(trainer.model))


def test_ema_leaves_the_hand_computed_average(small: vb.data.ImageDataset) -> None:
    model, live = linear_model(), LiveWeights()
    fit(
        model, small, epochs=2, batch_size=50, ema=EMA(0.8, warmup=False), augment=None,
        callbacks=[live], precision="fp32", progress=False, seed=0,
    )  # fmt: skip
    assert len(live.after_step) == 16
    # torch's EMA: the first update copies the weights, then avg = d * avg + (1 - d) * w.
    average = dict(live.after_step[0])
    for step in live.after_step[1:]:
        average = {k: 0.8 * average[k] + 0.2 * step[k] for k in average}
    assert max_difference(weights(model), average) < 1e-6
    # Catches the live weights left in the model (they differ from the average by far more).
    assert max_difference(weights(model), live.after_step[-1]) > 1e-3


def test_a_float_ema_warms_up_from_the_initial_weights(small: vb.data.ImageDataset) -> None:
    # fit(ema=0.8) is EMA(0.8) with warm-up: the average starts at the initial weights and
    # step t moves it by 1 - min(0.8, (1 + t) / (10 + t)). Fails if a float means no warm-up
    # (the first update would copy the weights) or if the warm-up decay is mis-indexed.
    model, live = linear_model(), LiveWeights()
    average = weights(model)
    fit(
        model, small, epochs=2, batch_size=50, ema=0.8, augment=None, callbacks=[live],
        precision="fp32", progress=False, seed=0,
    )  # fmt: skip
    assert len(live.after_step) == 16
    for t, step in enumerate(live.after_step, start=1):
        decay = min(0.8, (1 + t) / (10 + t))
        average = {k: decay * average[k] + (1 - decay) * step[k] for k in average}
    assert max_difference(weights(model), average) < 1e-6
    no_warmup = dict(live.after_step[0])
    for step in live.after_step[1:]:
        no_warmup = {k: 0.8 * no_warmup[k] + 0.2 * step[k] for k in no_warmup}
    assert max_difference(weights(model), no_warmup) > 1e-3


def test_ema_equals_averaged_model_run_by_hand(small: vb.data.ImageDataset) -> None:
    model, live = linear_model(), LiveWeights()
    by_hand = AveragedModel(
        linear_model(), multi_avg_fn=get_ema_multi_avg_fn(0.95), use_buffers=True
    )
    fit(
        model, small, epochs=1, batch_size=50, ema=EMA(0.95, warmup=False), callbacks=[live],
        precision="fp32", progress=False, seed=0,
    )  # fmt: skip
    shadow = linear_model()
    for state in live.after_step:
        shadow.load_state_dict(state)
        by_hand.update_parameters(shadow)
    assert int(by_hand.n_averaged) == 8
    state = weights(model)
    for key, value in by_hand.module.state_dict().items():
        assert torch.equal(value, state[key]), key


class ValidatedWeights(Callback):
    """What validation measured each epoch: the EMA's weights, and the live ones beside them."""

    def __init__(self) -> None:
        self.validated: dict[int, dict[str, torch.Tensor]] = {}
        self.live: dict[int, dict[str, torch.Tensor]] = {}

    def on_validation_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        self.validated[epoch] = weights(trainer.validated_model)
        self.live[epoch] = weights(trainer.model)


def test_best_checkpoint_saves_the_validated_average(
    small: vb.data.ImageDataset, tmp_path: Path
) -> None:
    val = subset(load_dataset("sample"), 0.1, seed=1)
    best, seen = BestCheckpoint(tmp_path / "best.pt", "val_loss"), ValidatedWeights()
    model = linear_model()
    history = fit(
        model, small, val, epochs=3, batch_size=50, ema=0.9, callbacks=[best, seen],
        precision="fp32", progress=False, seed=0,
    )  # fmt: skip
    saved = load_checkpoint(tmp_path / "best.pt")
    epoch = saved["epoch"]
    assert epoch == best.best_epoch
    assert saved["metrics"]["val_loss"] == min(history["val_loss"])
    # Catches the live weights saved under the average's score.
    assert max_difference(saved["model"], seen.validated[epoch]) == 0
    assert max_difference(saved["model"], seen.live[epoch]) > 1e-3
    model.load_state_dict(saved["model"])  # keeps the training stats fit recorded on it
    assert evaluate(model, val, precision="fp32").loss == pytest.approx(
        saved["metrics"]["val_loss"], rel=1e-5
    )


def test_device_loader_order_does_not_depend_on_batch_size(small: vb.data.ImageDataset) -> None:
    def epoch_labels_and_images(batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        loader = DeviceLoader(small, batch_size=batch_size, shuffle=True, seed=5, drop_last=True)
        loader.set_epoch(2)
        xs, ys = zip(*loader, strict=True)
        return torch.cat(xs), torch.cat(ys)

    x20, y20 = epoch_labels_and_images(20)
    x80, y80 = epoch_labels_and_images(80)
    assert len(y20) == len(y80) == 400
    assert torch.equal(y20, y80)
    assert torch.equal(x20, x80)
    loader = DeviceLoader(small, batch_size=400, shuffle=True, seed=5)
    loader.set_epoch(3)
    assert not torch.equal(next(iter(loader))[1], y20)  # catches an order that never changes


def test_accumulate_equals_a_larger_batch(small: vb.data.ImageDataset) -> None:
    common = {
        "epochs": 2, "lr": 0.05, "augment": None, "precision": "fp32", "progress": False,
        "seed": 0,
    }  # fmt: skip
    big, accumulated, plain = linear_model(), linear_model(), linear_model()
    fit(big, small, batch_size=80, **common)  # type: ignore[arg-type]
    fit(accumulated, small, batch_size=20, accumulate=4, **common)  # type: ignore[arg-type]
    fit(plain, small, batch_size=20, **common)  # type: ignore[arg-type]
    assert max_difference(weights(accumulated), weights(big)) < 1e-5
    # The control: without accumulation the same micro-batches take 4x the steps.
    assert max_difference(weights(plain), weights(big)) > 1e-3


@pytest.mark.parametrize("ema", [0, 1, -0.5, 1.5])
def test_ema_outside_0_1_is_refused(small: vb.data.ImageDataset, ema: float) -> None:
    with pytest.raises(ValueError, match=rf"ema is a per-step decay in \(0, 1\).*got {ema}"):
        fit(linear_model(), small, epochs=1, ema=ema, progress=False)


@pytest.mark.parametrize("accumulate", [0, -2, 1.5, True])
def test_accumulate_below_1_is_refused(small: vb.data.ImageDataset, accumulate: object) -> None:
    with pytest.raises(ValueError, match=rf"accumulate must be a positive int; got {accumulate}"):
        fit(linear_model(), small, epochs=1, accumulate=accumulate, progress=False)  # type: ignore[arg-type]
