"""A fine-tuned torchvision model's file rebuilds with load_model; pretrained cards' resize."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

import visionblocks as vb
from visionblocks.model_file import attach_card, card_of
from visionblocks.transfer import pretrained


@pytest.mark.parametrize(
    ("name", "in_channels", "suffix"),
    [("resnet18", 1, ".safetensors"), ("mobilenet_v3_small", 3, ".pt")],
)
def test_a_torchvision_fine_tune_rebuilds_from_its_file(
    name: str, in_channels: int, suffix: str, tmp_path: Path
) -> None:
    source = torchvision.models.get_model(name, weights=None).state_dict()
    model = pretrained(name, 4, weights=source, in_channels=in_channels).eval()
    card = vb.model_card(model)
    assert card is not None
    assert card.builder == f"torchvision.{name}"
    path = vb.save_checkpoint(tmp_path / f"m{suffix}", model)
    loaded = vb.load_model(path)
    x = torch.randn(2, in_channels, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_imagenet_sources_predict_with_the_aspect_ratio_kept() -> None:
    # The ImageNet sources evaluate by a shorter-side resize and a centre crop; a model
    # kept with its pretrained head must predict that way, not squashed.
    state = torchvision.models.resnet18(weights=None).state_dict()
    tv = vb.model_card(pretrained("resnet18", 1000, weights=state, keep_head=True))
    assert tv is not None
    assert tv.resize == "shorter-side+center-crop"


def test_a_visionblocks_checkpoint_keeps_its_own_resize_rule(tmp_path: Path) -> None:
    trained = vb.resnet20(num_classes=3)
    card = card_of(trained)
    assert card is not None
    attach_card(trained, card.replace(mean=(0.5,) * 3, std=(0.25,) * 3, resize="squash"))
    path = vb.save_checkpoint(tmp_path / "squash.pt", trained)
    card = vb.model_card(pretrained("resnet20", 3, weights=path))
    assert card is not None
    assert card.resize == "squash"
