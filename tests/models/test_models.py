"""Registry-wide model tests: every registered model is checked the moment it is registered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks.models import Classifier

GOLDEN = Path(__file__).parent / "golden" / "model_outputs.json"
MODELS = vb.list_models()


def _input(model: Classifier, batch: int = 2) -> torch.Tensor:
    c, h, w = model.default_input_size
    # A fixed, smooth, non-constant input: identical on every machine, unlike randn.
    return torch.linspace(-2, 2, batch * c * h * w).reshape(batch, c, h, w).sin()


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_shape_and_finite(name: str, in_channels: int) -> None:
    model = vb.create_model(name, num_classes=7, in_channels=in_channels)
    assert isinstance(model, Classifier)
    x = _input(model)
    assert x.shape[1] == in_channels
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", MODELS)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    model = vb.create_model(name)
    model.train()
    model(_input(model)).logsumexp(dim=1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, f"{name}: parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name", MODELS)
def test_export_round_trip(name: str) -> None:
    model = vb.create_model(name).eval()
    x = _input(model)
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_forward_features_head_and_reset(name: str) -> None:
    model = vb.create_model(name).eval()
    x = _input(model)
    features = model.forward_features(x)
    assert features.dim() == 4
    pooled = model.forward_head(features, pre_logits=True)
    assert pooled.shape == (2, model.num_features)
    torch.testing.assert_close(model.forward_head(features), model(x))
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    assert model.num_classes == 3
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)


def test_golden_outputs(update_golden: bool) -> None:
    outputs: dict[str, list[float]] = {}
    for name in MODELS:
        torch.manual_seed(0)
        model = vb.create_model(name).eval()
        with torch.no_grad():
            outputs[name] = [round(v, 5) for v in model(_input(model))[0].tolist()]
    if update_golden:
        GOLDEN.write_text(json.dumps(outputs, indent=1) + "\n")
    expected = json.loads(GOLDEN.read_text())
    missing = sorted(set(MODELS) - set(expected))
    assert not missing, f"no golden output for {missing}: run pytest --update-golden"
    for name in MODELS:
        torch.testing.assert_close(
            torch.tensor(outputs[name]),
            torch.tensor(expected[name]),
            rtol=1e-3,
            atol=1e-4,
            msg=lambda m, name=name: f"{name}: {m}",
        )


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (lambda: vb.simple_cnn(), 1_147_466),
        (lambda: vb.simple_cnn(batch_norm=True), 1_147_690),
        (lambda: vb.resnet_cifar(depth=20), 272_474),
        (lambda: vb.resnet_cifar(depth=20, shortcut="padding"), 269_722),
        (lambda: vb.resnet_cifar(depth=56, shortcut="padding"), 853_018),
        (lambda: vb.resnet_cifar(depth=110, shortcut="padding"), 1_727_962),
        (lambda: vb.resnet18_cifar(), 11_173_962),
        (lambda: vb.resnet34_cifar(), 21_282_122),
        (lambda: vb.resnet50_cifar(), 23_520_842),
    ],
)
def test_exact_parameter_counts_simple_cnn_resnet(builder: object, expected: int) -> None:
    model = builder()  # type: ignore[operator]
    assert sum(p.numel() for p in model.parameters()) == expected


def test_simple_cnn_matches_the_lab_layer_by_layer() -> None:
    lab = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2048, 512), nn.ReLU(), nn.Dropout(0.5), nn.Linear(512, 10),
    )  # fmt: skip
    ours = vb.simple_cnn().eval()
    lab.load_state_dict(dict(zip(lab.state_dict(), ours.state_dict().values(), strict=True)))
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(ours(x), lab.eval()(x))


def test_simple_cnn_grayscale_28() -> None:
    model = vb.simple_cnn(in_channels=1, image_size=28)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_simple_cnn_wrong_size_names_the_built_size() -> None:
    with pytest.raises(ValueError, match=r"built for 32x32.*image_size=28"):
        vb.simple_cnn()(torch.zeros(1, 3, 28, 28))


def test_wrong_channels_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"in_channels=3 but got 1-channel"):
        vb.resnet20()(torch.zeros(1, 1, 32, 32))


def test_unbatched_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        vb.resnet20()(torch.zeros(3, 32, 32))


def test_any_input_size_works_with_global_pooling() -> None:
    model = vb.resnet20().eval()
    for size in (8, 28, 40, 64):
        assert model(torch.zeros(1, 3, size, size)).shape == (1, 10)
    with pytest.raises(ValueError, match="at least 4x4"):
        model(torch.zeros(1, 3, 3, 3))


@pytest.mark.parametrize("depth", [0, 19, 21, 33, "20"])
def test_invalid_resnet_depth_lists_valid_ones(depth: object) -> None:
    with pytest.raises(ValueError, match=r"6n \+ 2.*20, 26, 32"):
        vb.resnet_cifar(depth=depth)  # type: ignore[arg-type]


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'resnet21'.*'resnet20'"):
        vb.create_model("resnet21")


def test_bad_num_classes_is_rejected() -> None:
    with pytest.raises(ValueError, match="num_classes must be >= 0; got -1"):
        vb.resnet20(num_classes=-1)
    with pytest.raises(TypeError, match=r"num_classes must be an int; got 2\.5"):
        vb.resnet20(num_classes=2.5)  # type: ignore[arg-type]


def _shortcut_kinds(model: nn.Module) -> list[str]:
    return [
        type(m.shortcut).__name__
        for m in model.modules()
        if isinstance(m, vb.BasicBlock | vb.Bottleneck)
    ]


def test_projection_shortcut_exactly_when_shape_changes() -> None:
    kinds = _shortcut_kinds(vb.resnet_cifar(depth=20))
    # 3 stages x 3 blocks; the first block of stages 2 and 3 changes width and stride.
    assert (
        kinds
        == ["Identity"] * 3 + ["Sequential"] + ["Identity"] * 2 + ["Sequential"] + ["Identity"] * 2
    )
    padding = _shortcut_kinds(vb.resnet_cifar(depth=20, shortcut="padding"))
    assert padding.count("PadShortcut") == 2
    # ResNet-50: every stage's first block changes width (64 -> 256 in stage 1 too).
    assert _shortcut_kinds(vb.resnet50_cifar()).count("Sequential") == 4


@pytest.mark.parametrize("block", [vb.BasicBlock, vb.Bottleneck])
@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(64, 64, 1), (64, 128, 1), (64, 128, 2)])
def test_blocks(block: type[vb.BasicBlock], c_in: int, c_out: int, stride: int) -> None:
    b = block(c_in, c_out, stride)
    y = b(torch.randn(2, c_in, 8, 8))
    assert y.shape == (2, c_out, 8 // stride, 8 // stride)
    assert (y >= 0).all(), "ReLU comes after the addition"
    projected = stride != 1 or c_in != c_out
    assert isinstance(b.shortcut, nn.Sequential) == projected


def test_zero_init_last_makes_block_an_identity_on_nonnegative_input() -> None:
    block = vb.BasicBlock(16, 16).eval()
    block.zero_init_last()
    x = torch.rand(2, 16, 8, 8)
    torch.testing.assert_close(block(x), x)


def test_padding_shortcut_matches_the_paper() -> None:
    x = torch.randn(1, 16, 8, 8)
    y = vb.PadShortcut(16, 32, stride=2)(x)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert (y[:, 16:] == 0).all()
