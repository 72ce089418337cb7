"""One weight average: fit(ema=EMA(...)) with warm-up and every-k, and never two at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch
from state_copy import weights
from torch import nn

import visionblocks as vb
from visionblocks.cli import main
from visionblocks.train import EMA, Callback, RunState, WeightAveraging, fit


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))


class LiveWeights(Callback):
    """The model's weights after every optimizer step."""

    def __init__(self) -> None:
        self.after_step: list[dict[str, torch.Tensor]] = []

    def on_step_end(self, trainer: RunState, step: int) -> None:
        self.after_step.append(weights(trainer.model))


class StopAfter(Callback):
    """Stop the run after ``epoch`` (an interruption between epochs, checkpoint written)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        trainer.should_stop = epoch == self.epoch


@pytest.mark.parametrize("every", [1, 3])
def test_warmup_and_every_k_match_the_formula_by_hand(
    small: vb.data.ImageDataset, every: int
) -> None:
    model, live = linear_model(), LiveWeights()
    initial = weights(model)
    options = EMA(0.9, every=every, warmup=True)
    fit(model, small, epochs=2, batch_size=50, ema=options, augment=None, callbacks=[live],
        precision="fp32", progress=False, seed=0)  # fmt: skip
    assert len(live.after_step) == 16
    # With warm-up the average starts at the initial weights; update u (from 1) happens
    # after step u * every and moves by 1 - min(0.9, (1 + t) / (10 + t)) ** every, t = u * every.
    average = dict(initial)
    for u, state in enumerate(live.after_step[every - 1 :: every], start=1):
        t = u * every
        decay = min(0.9, (1 + t) / (10 + t)) ** every
        average = {k: decay * average[k] + (1 - decay) * state[k] for k in average}
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value.cpu(), average[key], rtol=0, atol=1e-6)
    # Catches the live weights left in the model.
    final = model.state_dict()["1.weight"].cpu()
    assert (final - live.after_step[-1]["1.weight"]).abs().max() > 1e-3


class OldWeightAveraging(Callback):
    """0.2's WeightAveraging callback, its math verbatim: the reference for the fast recipe."""

    def __init__(self, decay: float, every: int) -> None:
        self.decay, self.every, self.updates = decay, every, 0
        self.average: dict[str, torch.Tensor] = {}
        self.backup: dict[str, torch.Tensor] | None = None

    def live(self, trainer: RunState) -> dict[str, torch.Tensor]:
        return {k: v for k, v in trainer.model.state_dict().items() if v.is_floating_point()}

    def on_fit_start(self, trainer: RunState) -> None:
        self.average = {k: v.detach().clone() for k, v in self.live(trainer).items()}

    @torch.no_grad()
    def on_step_end(self, trainer: RunState, step: int) -> None:
        if step % self.every:
            return
        self.updates += 1
        t = self.updates * self.every
        decay = min(self.decay, (1 + t) / (10 + t)) ** self.every
        live = self.live(trainer)
        for name, avg in self.average.items():
            avg.lerp_(live[name], 1.0 - decay)

    @torch.no_grad()
    def on_validation_start(self, trainer: RunState, epoch: int) -> None:
        live = self.live(trainer)
        self.backup = {k: v.detach().clone() for k, v in live.items()}
        for name, avg in self.average.items():
            live[name].copy_(avg)

    @torch.no_grad()
    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        live = self.live(trainer)
        for name, saved in (self.backup or {}).items():
            live[name].copy_(saved)
        self.backup = None

    @torch.no_grad()
    def on_fit_end(self, trainer: RunState) -> None:
        live = self.live(trainer)
        for name, avg in self.average.items():
            live[name].copy_(avg)


def bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(4, 10),
    )  # fmt: skip


def test_the_recipes_average_is_the_old_callbacks_bit_for_bit(
    small: vb.data.ImageDataset, sample: vb.data.ImageDataset
) -> None:
    # The fast recipe was tuned with 0.2's callback: starting at the initial weights, floats
    # only (BN running statistics too, not its batch counter), updates every 2 steps.
    val = vb.data.subset(sample, 0.1, seed=1)
    kwargs = {"epochs": 3, "batch_size": 80, "precision": "fp32", "progress": False,
              "seed": 0, "augment": None, "device": "cpu"}  # fmt: skip
    old, new, steps = bn_model(), bn_model(), LiveWeights()
    old_history = fit(old, small, val, callbacks=[OldWeightAveraging(0.9, 2), steps], **kwargs)  # type: ignore[arg-type]
    new_history = fit(new, small, val, ema=EMA(0.9, every=2, warmup=True), **kwargs)  # type: ignore[arg-type]
    assert len(steps.after_step) % 2 == 1  # the last step is not an update step
    for key, value in old.state_dict().items():
        assert torch.equal(value, new.state_dict()[key]), key
    assert old_history["val_loss"] == new_history["val_loss"]
    # Catches a model that did not average (or averaged something else).
    assert not torch.equal(
        new.state_dict()["1.running_mean"], steps.after_step[-1]["1.running_mean"]
    )


def test_resume_with_a_warmed_up_every_k_average_is_exact(
    small: vb.data.ImageDataset, tmp_path: Path
) -> None:
    options = EMA(0.9, every=2, warmup=True)
    kwargs = {"batch_size": 50, "ema": options, "precision": "fp32", "progress": False,
              "seed": 0, "augment": None}  # fmt: skip
    whole = linear_model()
    fit(whole, small, epochs=3, **kwargs)  # type: ignore[arg-type]
    first = linear_model()
    fit(first, small, epochs=3, checkpoint_dir=tmp_path, callbacks=[StopAfter(2)], **kwargs)  # type: ignore[arg-type]
    resumed = linear_model()
    fit(resumed, small, epochs=3, checkpoint_dir=tmp_path, resume=True, **kwargs)  # type: ignore[arg-type]
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_two_averages_are_one_clear_error(small: vb.data.ImageDataset) -> None:
    with pytest.warns(DeprecationWarning, match=r"use fit\(ema=EMA"):
        callback = WeightAveraging(0.99, every=2)
    with pytest.raises(ValueError, match=r"two weight averages.*WeightAveraging"):
        fit(linear_model(), small, epochs=1, ema=0.9, callbacks=[callback], progress=False)


def test_the_deprecated_callback_alone_is_fits_average(small: vb.data.ImageDataset) -> None:
    with pytest.warns(DeprecationWarning, match="WeightAveraging"):
        callback = WeightAveraging(0.9, every=2)
    kwargs = {"batch_size": 50, "precision": "fp32", "progress": False, "seed": 0,
              "augment": None}  # fmt: skip
    old, new = linear_model(), linear_model()
    fit(old, small, epochs=1, callbacks=[callback], **kwargs)  # type: ignore[arg-type]
    fit(new, small, epochs=1, ema=EMA(0.9, every=2, warmup=True), **kwargs)  # type: ignore[arg-type]
    for key, value in old.state_dict().items():
        assert torch.equal(value, new.state_dict()[key]), key


@pytest.mark.parametrize(("kwargs", "match"), [({"decay": 1.0}, "decay"), ({"every": 0}, "every")])
def test_bad_ema_options_are_refused(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EMA(**{"decay": 0.9, **kwargs})  # type: ignore[arg-type]


def test_cli_ema_with_the_fast_recipe_sets_the_one_average(tmp_path: Path) -> None:
    # 0.2 added fit(ema=0.9) on top of the recipe's WeightAveraging: two averages. The
    # preset with an average of its own (0.2's); --ema keeps its every/warm-up.
    out = tmp_path / "run"
    code = main(["train", "--recipe", "fast", "--preset", "fashion-mnist-v2", "--ema", "0.9",
                 "--epochs", "1", "--limit", "300", "--out", str(out),
                 "--no-progress"])  # fmt: skip
    assert code == 0
    fitted = tomllib.loads((out / "config.toml").read_text())["fit"]
    assert fitted["ema"] == "EMA(decay=0.9, every=2, warmup=True)"
    assert "WeightAveraging" not in fitted["callbacks"]
