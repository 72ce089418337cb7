"""VGG, DenseNet and MobileNetV2: exact parameter counts and torchvision as the reference."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models import densenet as tv_densenet

from visionblocks.models import (
    DenseLayer,
    DenseNet,
    InvertedResidual,
    MobileNetV2,
    Transition,
    create_model,
    densenet_cifar,
    list_models,
    mobilenetv2_cifar,
    vgg_cifar,
)
from visionblocks.models.mobilenet import CIFAR_SETTINGS


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (lambda: vgg_cifar(depth=11), 9_228_362),
        (lambda: vgg_cifar(depth=11, batch_norm=False), 9_225_610),
        (lambda: vgg_cifar(depth=13), 9_413_066),
        (lambda: vgg_cifar(depth=13, batch_norm=False), 9_410_122),
        (lambda: vgg_cifar(depth=16), 14_724_042),
        (lambda: vgg_cifar(depth=16, batch_norm=False), 14_719_818),
        (lambda: densenet_cifar(), 769_162),
        (lambda: densenet_cifar(depth=40, bottleneck=False, compression=1.0), 1_019_722),
        (lambda: mobilenetv2_cifar(), 2_236_682),
        (lambda: mobilenetv2_cifar(width_mult=0.5), 700_490),
    ],
)
def test_exact_parameter_counts_vgg_densenet_mobilenet(
    builder: Callable[[], nn.Module], expected: int
) -> None:
    assert _count(builder()) == expected


def test_new_models_are_registered() -> None:
    names = set(list_models())
    assert {"vgg11_cifar", "vgg13_cifar", "vgg16_cifar", "densenet_cifar"} <= names
    assert "mobilenetv2_cifar" in names
    assert _count(create_model("vgg11_cifar", batch_norm=False)) == 9_225_610


# ---- VGG -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "tv_builder"), [(11, "vgg11"), (13, "vgg13"), (16, "vgg16")])
def test_vgg_parameter_count_matches_torchvision_features(depth: int, tv_builder: str) -> None:
    # torchvision's conv stack plus one 512 -> 10 linear layer is the CIFAR VGG without BN.
    tv = getattr(torchvision.models, tv_builder)()
    expected = _count(tv.features) + 512 * 10 + 10
    assert _count(vgg_cifar(depth=depth, batch_norm=False)) == expected
    # The published CIFAR VGG-11-BN count (9,231,114) minus our omitted conv biases.
    tv_bn = getattr(torchvision.models, tv_builder + "_bn")()
    biases = sum(m.bias.numel() for m in tv_bn.features if isinstance(m, nn.Conv2d))
    assert _count(vgg_cifar(depth=depth)) == _count(tv_bn.features) - biases + 5130


def test_vgg11_bn_features_equal_torchvision_up_to_the_last_pool() -> None:
    tv = torchvision.models.vgg11_bn().eval()
    for m in tv.features:
        if isinstance(m, nn.Conv2d):
            nn.init.zeros_(m.bias)  # our convs before BN have no bias
    ours = vgg_cifar(depth=11).eval()
    _randomize_bn_statistics(tv)
    conv_bias = {f"{i}.bias" for i, m in enumerate(tv.features) if isinstance(m, nn.Conv2d)}
    tv_state = {k: v for k, v in tv.features.state_dict().items() if k not in conv_bias}
    ours.features.load_state_dict(tv_state)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours.forward_features(x), tv.features[:-1](x))


def test_vgg_accepts_fashion_mnist_size_and_rejects_too_small() -> None:
    model = vgg_cifar(depth=11, in_channels=1).eval()
    assert model.min_input_size == 16
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(ValueError, match="at least 16x16"):
        model(torch.zeros(1, 1, 15, 15))


@pytest.mark.parametrize("depth", [10, 19, "11"])
def test_vgg_bad_depth_lists_the_valid_ones(depth: object) -> None:
    with pytest.raises(ValueError, match=r"\[11, 13, 16\]"):
        vgg_cifar(depth=depth)  # type: ignore[arg-type]


# ---- DenseNet ----------------------------------------------------------------------------------


def _randomize_bn_statistics(model: nn.Module) -> None:
    # Non-trivial BN statistics, so a mis-wired norm layer makes the comparison fail.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)


def test_dense_block_equals_torchvision_dense_block() -> None:
    tv = tv_densenet._DenseBlock(
        num_layers=3, num_input_features=24, bn_size=4, growth_rate=12, drop_rate=0
    ).eval()
    _randomize_bn_statistics(tv)
    ours = nn.Sequential(*[DenseLayer(24 + 12 * i, 12) for i in range(3)]).eval()
    # torchvision: "denselayer1.norm1.weight"; ours: "0.body.norm1.weight".
    state = {}
    for key, value in tv.state_dict().items():
        layer, rest = key.split(".", 1)
        state[f"{int(layer.removeprefix('denselayer')) - 1}.body.{rest}"] = value
    ours.load_state_dict(state)
    x = torch.randn(2, 24, 8, 8)
    torch.testing.assert_close(ours(x), tv(x))


def test_transition_equals_torchvision_transition() -> None:
    tv = tv_densenet._Transition(num_input_features=48, num_output_features=24).eval()
    _randomize_bn_statistics(tv)
    ours = Transition(48, 24).eval()
    ours.load_state_dict(tv.state_dict())
    x = torch.randn(2, 48, 8, 8)
    torch.testing.assert_close(ours(x), tv(x))


@pytest.mark.parametrize(
    ("kwargs", "paper_millions"),
    [
        ({"depth": 40, "bottleneck": False, "compression": 1.0}, 1.0),
        ({"depth": 100, "bottleneck": False, "compression": 1.0, "growth_rate": 24}, 27.2),
        ({"depth": 190, "growth_rate": 40}, 25.6),
        ({"depth": 100, "growth_rate": 12}, 0.8),
        ({"depth": 250, "growth_rate": 24}, 15.3),
    ],
)
def test_densenet_counts_match_the_paper_table_2(
    kwargs: dict[str, object], paper_millions: float
) -> None:
    model = densenet_cifar(**kwargs)  # type: ignore[arg-type]
    assert round(_count(model) / 1e6, 1) == paper_millions


def test_densenet_widths_and_resolution() -> None:
    model = densenet_cifar(depth=40, growth_rate=12).eval()  # BC, 6 layers per block
    # stem 24 -> +72 = 96 -> 48 -> +72 = 120 -> 60 -> +72 = 132
    assert model.num_features == 132
    assert model.forward_features(torch.zeros(1, 3, 32, 32)).shape == (1, 132, 8, 8)


@pytest.mark.parametrize(("depth", "bottleneck"), [(99, True), (42, True), (41, False), (7, True)])
def test_densenet_bad_depth(depth: int, bottleneck: bool) -> None:
    form = r"6n \+ 4" if bottleneck else r"3n \+ 4"
    with pytest.raises(ValueError, match=form):
        densenet_cifar(depth=depth, bottleneck=bottleneck)


def test_densenet_rejects_bad_compression() -> None:
    with pytest.raises(ValueError, match=r"compression must be in \(0, 1\]; got 1.5"):
        DenseNet((2, 2), compression=1.5)


# ---- MobileNetV2 -------------------------------------------------------------------------------


def _torchvision_mobilenet_state(width_mult: float) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    tv = torchvision.models.mobilenet_v2(num_classes=10, width_mult=width_mult).eval()
    _randomize_bn_statistics(tv)
    state = {k.replace("classifier.1.", "head."): v for k, v in tv.state_dict().items()}
    return tv, state


@pytest.mark.parametrize("width_mult", [1.0, 0.5])
def test_mobilenetv2_imagenet_plan_equals_torchvision(width_mult: float) -> None:
    tv, state = _torchvision_mobilenet_state(width_mult)
    imagenet = tuple((t, c, n, 2 if c in (24,) else s) for t, c, n, s in CIFAR_SETTINGS)
    ours = MobileNetV2(imagenet, width_mult=width_mult, stem_stride=2).eval()
    ours.load_state_dict(state)  # identical names and shapes
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-5)


def test_mobilenetv2_cifar_is_torchvision_with_two_strides_removed() -> None:
    tv, state = _torchvision_mobilenet_state(1.0)
    tv.features[0][0].stride = (1, 1)  # stem
    tv.features[2].conv[1][0].stride = (1, 1)  # depthwise conv of the first 24-wide block
    ours = mobilenetv2_cifar().eval()
    ours.load_state_dict(state)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-5)
    assert ours.forward_features(x).shape == (2, 1280, 4, 4)


def test_inverted_residual_shortcut_only_when_shapes_match() -> None:
    blocks = [m for m in mobilenetv2_cifar().modules() if isinstance(m, InvertedResidual)]
    # 17 blocks; residual ones: the repeats inside stages (n - 1 per stage) = 0+1+2+3+2+2+0.
    assert len(blocks) == 17
    assert sum(b.use_residual for b in blocks) == 10
    with pytest.raises(ValueError, match="stride must be 1 or 2; got 3"):
        InvertedResidual(8, 8, stride=3, expand_ratio=6)


def test_mobilenetv2_min_input_size() -> None:
    model = mobilenetv2_cifar(in_channels=1).eval()
    assert model.min_input_size == 8
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(ValueError, match="at least 8x8"):
        model(torch.zeros(1, 1, 7, 7))
