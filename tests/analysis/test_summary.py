"""summary(): shapes and parameter counts against torchinfo, FLOPs against the formula."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionblocks import SimpleCNN, create_model, list_models, resnet20, simple_cnn
from visionblocks.analysis import summary

torchinfo = pytest.importorskip("torchinfo")


@pytest.mark.parametrize("name", list_models())
def test_matches_torchinfo_on_every_registered_model(name: str) -> None:
    model = create_model(name)
    # A small input keeps this fast; SimpleCNN's FC layer fixes its input size.
    side = max(model.min_input_size, 8)
    size = model.default_input_size if isinstance(model, SimpleCNN) else (3, side, side)
    ours = summary(model, size)
    ref = torchinfo.summary(model, input_size=(1, *size), verbose=0, depth=100)
    ref_rows = [row for row in ref.summary_list if row.depth > 0]
    # Same calls in the same order, each with torchinfo's output shape and parameter count.
    assert [(r.type, r.depth) for r in ours.layers] == [(r.class_name, r.depth) for r in ref_rows]
    assert [list(r.output_shape or ()) for r in ours.layers] == [r.output_size for r in ref_rows]
    assert [r.num_params for r in ours.layers] == [r.num_params for r in ref_rows]
    assert ours.total_params == ref.total_params
    assert ours.trainable_params == ref.trainable_params


def test_flops_follow_the_conv_and_linear_formulas() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16 * 16, 5))
    s = summary(model, (3, 16, 16), batch_size=2)
    conv_flops = 2 * 2 * 8 * 3 * 3 * 3 * 16 * 16  # 2 per multiply-add, x batch, per output
    linear_flops = 2 * 2 * 8 * 16 * 16 * 5
    assert [layer.flops for layer in s.layers] == [conv_flops, 0, linear_flops]
    assert s.total_flops == conv_flops + linear_flops
    assert s.input_shape == (2, 3, 16, 16)
    assert s.output_shape == (2, 5)


def test_parent_rows_sum_their_children() -> None:
    s = summary(resnet20(), (3, 32, 32))
    by_name = {layer.name: layer for layer in s.layers}
    stages = [by_name[f"stages.{i}"] for i in range(3)]
    assert by_name["stages"].num_params == sum(stage.num_params for stage in stages)
    assert by_name["stages"].flops == sum(stage.flops for stage in stages)
    assert s.total_flops == sum(layer.flops for layer in s.layers if layer.depth == 1)


def test_frozen_parameters_are_counted_separately() -> None:
    model = simple_cnn()
    for p in model.features.parameters():
        p.requires_grad_(False)
    s = summary(model, (3, 32, 32))
    frozen = sum(p.numel() for p in model.features.parameters())
    assert s.frozen_params == frozen == 93_248
    assert s.trainable_params == 1_147_466 - frozen
    assert s.layers[0].name == "features"
    assert s.layers[0].trainable_params == 0


def test_model_state_is_restored_and_no_hooks_remain() -> None:
    model = simple_cnn()
    model.train()
    before = [p.clone() for p in model.parameters()]
    summary(model, (3, 32, 32))
    assert model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_text_table_shows_rows_and_totals() -> None:
    text = summary(resnet20(), (3, 32, 32), max_depth=1).to_text()
    assert "stages" in text
    assert "stages.0" not in text
    assert "Total params:      272,474" in text
    assert "1x64x8x8" in text
    assert "stages.0.0.body.0" in summary(resnet20(), (3, 32, 32)).to_text()


@pytest.mark.parametrize("bad", [(3, 0, 32), (), (3, 32.0, 32)])
def test_bad_input_size_is_rejected(bad: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match="input_size"):
        summary(resnet20(), bad)  # type: ignore[arg-type]
