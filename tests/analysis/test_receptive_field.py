"""receptive_field(): the lab's numbers, and agreement with the gradient's footprint."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionblocks import SimpleCNN, create_model, list_models, resnet20, simple_cnn
from visionblocks.analysis import capture_activations, receptive_field


def _sizes(model: nn.Module, input_size: tuple[int, int, int]) -> list[int]:
    return [row.size[0] for row in receptive_field(model, input_size).layers]


def test_stacked_3x3_convs_give_3_5_7() -> None:
    net = nn.Sequential(*(nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)))
    assert _sizes(net, (1, 32, 32)) == [1, 3, 5, 7]


def test_a_stride_2_layer_doubles_the_growth() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=1),
        nn.Conv2d(1, 1, 3, stride=2, padding=1),
        nn.Conv2d(1, 1, 3, padding=1),
        nn.Conv2d(1, 1, 3, padding=1),
    )
    report = receptive_field(net, (1, 32, 32))
    assert [row.size[0] for row in report.layers] == [1, 3, 5, 9, 13]  # +2, +2, then +4, +4
    assert [row.jump[0] for row in report.layers] == [1, 1, 2, 2, 2]
    assert report.layers[-1].output_size == (16, 16)


def test_simple_cnn_and_resnet20_numbers() -> None:
    # simple_cnn: conv3 (3), pool2 (4, jump 2), conv3 (8), pool2 (10, jump 4), conv3 (18),
    # pool2 (22, jump 8).
    report = receptive_field(simple_cnn(), (3, 32, 32))
    assert [report[f"features.{i}"].size for i in range(3)] == [(4, 4), (10, 10), (22, 22)]
    assert [report[f"features.{i}"].jump for i in range(3)] == [(2, 2), (4, 4), (8, 8)]
    assert "features.2" in str(report)
    assert "22x22" in str(report)
    # ResNet-20: stem 3; 6 convs at jump 1 -> 15; 17 then 5 x 4 -> 37; 41 then 5 x 8 -> 81.
    report = receptive_field(resnet20(), (3, 32, 32))
    assert [report[f"stages.{i}"].size[0] for i in range(3)] == [15, 37, 81]
    assert report["stages"].jump == (4, 4)
    # A projection shortcut sees less than the block body it skips.
    assert report["stages.1.0.shortcut"].size[0] < report["stages.1.0.body"].size[0]


def _gradient_box(model: nn.Module, x: torch.Tensor, layer: str) -> tuple[int, int, int, int]:
    """Rows/cols of input pixels with a non-zero gradient for the centre unit of ``layer``."""
    x = x.clone().requires_grad_(True)
    with capture_activations(model, layer, detach=False) as maps:
        model(x)
    out = maps[layer]
    h, w = out.shape[-2] // 2, out.shape[-1] // 2
    (grad,) = torch.autograd.grad(out[0, :, h, w].sum(), x)
    rows = grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def _predicted_box(model: nn.Module, size: tuple[int, int, int], layer: str) -> list[float]:
    row = receptive_field(model, size)[layer]
    ch, cw = row.output_size[0] // 2, row.output_size[1] // 2
    centre = (row.start[0] + ch * row.jump[0], row.start[1] + cw * row.jump[1])
    half = ((row.size[0] - 1) / 2, (row.size[1] - 1) / 2)
    return [centre[0] - half[0], centre[0] + half[0], centre[1] - half[1], centre[1] + half[1]]


def test_matches_the_gradient_footprint_of_a_linear_net() -> None:
    # Positive weights and no ReLU: every pixel in the field gets a non-zero gradient,
    # so the footprint equals the computed field exactly (size, jump and start).
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1),
        nn.AvgPool2d(2),
        nn.Conv2d(2, 2, 3, padding=2, dilation=2),
        nn.ZeroPad2d((1, 0, 1, 0)),  # F.pad shifts the grid by one pixel
        nn.Conv2d(2, 2, (5, 3), stride=2),
        nn.MaxPool2d(3, stride=1, padding=1),
    )
    for p in net.parameters():
        nn.init.constant_(p, 0.1)
    size = (1, 96, 96)
    for layer in ("1", "2", "4"):
        assert list(_gradient_box(net, torch.ones(1, *size), layer)) == _predicted_box(
            net, size, layer
        )
    row = receptive_field(net, size)["4"]
    # 3x3 -> 3; pool 2 -> +1 (jump 2); dilated 3x3 (5 wide) -> +4 * 2;
    # 5x3 stride 2 -> +4 * 2 rows, +2 * 2 cols
    assert row.size == (3 + 1 + 8 + 8, 3 + 1 + 8 + 4)
    assert row.jump == (4, 4)


@pytest.mark.parametrize("name", list_models())
def test_bounds_the_gradient_footprint_of_every_registered_model(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name).double().eval()
    side = model.default_input_size[-1] if isinstance(model, SimpleCNN) else 48
    size = (3, side, side)
    report = receptive_field(model, size)
    layer = report.layers[-1].name  # the last spatial map the model computes
    top, bottom, left, right = _gradient_box(model, torch.randn(1, *size).double(), layer)
    low_r, high_r, low_c, high_c = _predicted_box(model, size, layer)
    assert low_r <= top <= bottom <= high_r
    assert low_c <= left <= right <= high_c


def test_rejects_a_size_without_channels() -> None:
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        receptive_field(resnet20(), (32, 32))
    with pytest.raises(KeyError, match="no spatial output"):
        receptive_field(resnet20(), (3, 32, 32))["head"]
