"""fit(sampler="balanced"): it changes what is trained, and a resumed run ends bit-exact."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import visionblocks as vb
from visionblocks.train import Callback, RunState, fit, load_checkpoint


def tiny_model() -> nn.Module:
    """A small net with BatchNorm (whose running statistics resume must restore too)."""
    return vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16, batch_norm=True)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine a second one makes these runs ~6x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class StopAfter(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.epoch:
            trainer.should_stop = True


@pytest.fixture(scope="module")
def imbalanced(small: vb.data.ImageDataset) -> vb.data.ImageDataset:
    """The 400 real images of ``small`` with classes 0-2 cut to 4 images each: 292 images."""
    keep = torch.ones(len(small), dtype=torch.bool)
    for c in (0, 1, 2):
        keep[(small.labels == c).nonzero().flatten()[4:]] = False
    return dataclasses.replace(small, images=small.images[keep], labels=small.labels[keep])


def as_dataset(data: vb.data.ImageDataset) -> TensorDataset:
    """The same images as a user's Dataset (float, unnormalized)."""
    return TensorDataset(data.images.float() / 255, data.labels)


@pytest.mark.parametrize("kind", ["in memory", "Dataset"])
def test_resume_with_a_sampler_is_bit_exact(
    imbalanced: vb.data.ImageDataset, tmp_path: Path, kind: str
) -> None:
    train: Any = imbalanced if kind == "in memory" else as_dataset(imbalanced)
    common: dict[str, Any] = {
        "epochs": 2, "batch_size": 32, "seed": 7, "precision": "fp32", "progress": False,
        "sampler": "balanced",
    }  # fmt: skip
    torch.manual_seed(0)
    straight = tiny_model()
    fit(straight, train, checkpoint_dir=tmp_path / "a", **common)

    torch.manual_seed(0)
    stopped = tiny_model()
    fit(stopped, train, checkpoint_dir=tmp_path / "b", callbacks=[StopAfter(1)], **common)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1

    torch.manual_seed(123)  # another init and RNG state: resume must restore them
    resumed = tiny_model()
    history = fit(resumed, train, checkpoint_dir=tmp_path / "b", resume=True, **common)
    assert history["epoch"] == [1, 2]
    # Catches a draw that depends on what happened before the epoch (a generator kept
    # across epochs, the global RNG): the resumed epochs would draw other images.
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key

    torch.manual_seed(0)
    plain = tiny_model()
    fit(plain, train, **{**common, "sampler": None})
    # The control: without the sampler the same run ends elsewhere (the option is used).
    assert any(not torch.equal(v, plain.state_dict()[k]) for k, v in straight.state_dict().items())


def test_fit_refuses_an_unknown_sampler(imbalanced: vb.data.ImageDataset) -> None:
    with pytest.raises(
        ValueError, match="sampler must be None or one of 'balanced'; got 'oversample'"
    ):
        fit(tiny_model(), imbalanced, epochs=1, sampler="oversample", progress=False)
