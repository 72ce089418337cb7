"""INT8 on torch's FX graph mode (``method="fx"``): deprecated by torch, still reachable.

Every call goes through :func:`fx_int8`, which also checks that torch's deprecation
warning reaches the caller (visionblocks silenced it before 0.3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.ao.nn import quantized as nnq
from torch.ao.nn.intrinsic import quantized as nniq

from quantize_helpers import relative_error, with_trained_bn_statistics
from visionblocks.models import (
    densenet_cifar,
    fast_cnn,
    mobilenetv2_cifar,
    resnet_cifar,
    simple_cnn,
    vgg_cifar,
)
from visionblocks.quantize import Int8Classifier, UnsupportedLayerError, quantize_int8

TORCH_DEPRECATION = r"torch\.ao\.quantization is deprecated"


def fx_int8(model: nn.Module, data: Any, **options: Any) -> Int8Classifier:
    """``quantize_int8(method="fx")``, which must pass torch's DeprecationWarning on."""
    with pytest.warns(DeprecationWarning, match=TORCH_DEPRECATION):
        return quantize_int8(model, data, method="fx", **options)


@pytest.mark.parametrize(
    ("builder", "tolerance"),
    [
        # Measured relative errors (seed 0): 0.042, 0.017, 0.067, 0.051, 0.37, 0.13.
        (lambda: resnet_cifar(depth=20), 0.08),
        (lambda: simple_cnn(), 0.05),
        pytest.param(lambda: vgg_cifar(depth=11), 0.1, marks=pytest.mark.slow),
        # Concatenated features share one INT8 scale, so DenseNet loses more.
        pytest.param(lambda: densenet_cifar(depth=40), 0.1, marks=pytest.mark.slow),
        # MobileNetV2 is the known hard case for per-tensor activation ranges (Nagel et al. 2019,
        # https://arxiv.org/abs/1906.04721); a broken conversion gives ~1.0.
        pytest.param(lambda: mobilenetv2_cifar(width_mult=0.5), 0.5, marks=pytest.mark.slow),
        # Its GELUs run in float between a dequantize and a quantize.
        (lambda: fast_cnn(widths=(16, 32, 32)), 0.2),
        (lambda: fast_cnn(widths=(16, 32, 32), activation="relu", identity_init=True), 0.2),
    ],
    ids=["resnet20", "simple_cnn", "vgg11", "densenet40", "mobilenetv2", "fast_cnn", "fast_relu"],
)
def test_fx_logits_follow_the_float_model(builder: Any, tolerance: float) -> None:
    x = torch.randn(96, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    model = with_trained_bn_statistics(builder(), x)
    int8 = fx_int8(model, x[:64], batch_size=32)
    with torch.no_grad():
        reference, quantized = model(x[64:]), int8(x[64:])
    assert quantized.dtype == torch.float32
    assert relative_error(quantized, reference) < tolerance


def test_fx_fuses_and_quantizes_every_conv() -> None:
    model = resnet_cifar(depth=20).eval()
    int8 = fx_int8(model, torch.randn(32, 3, 32, 32))
    modules = list(int8.runner.modules())
    # 19 convs with BN (+ReLU) fused, 2 projection shortcuts, 1 linear head.
    assert sum(isinstance(m, nniq.ConvReLU2d | nnq.Conv2d) for m in modules) == 21
    assert sum(isinstance(m, nnq.Linear) for m in modules) == 1
    assert not any(isinstance(m, nn.BatchNorm2d) for m in modules)
    assert (int8.method, int8.in_channels, int8.num_classes) == ("fx", 3, 10)


@pytest.mark.parametrize("activation", [nn.GELU, nn.SiLU])
def test_fx_runs_activations_without_int8_kernel_in_float(activation: type[nn.Module]) -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), activation(), nn.Conv2d(8, 4, 3))
    x = torch.randn(64, 3, 12, 12)
    model = with_trained_bn_statistics(model, x)
    int8 = fx_int8(model, x[:48], batch_size=16)
    modules = dict(int8.runner.named_modules())
    assert type(modules["2"]) is activation  # the float module, between dequantize/quantize
    assert isinstance(modules["0"], nnq.Conv2d)
    assert isinstance(modules["3"], nnq.Conv2d)
    with torch.no_grad():
        assert relative_error(int8(x[48:]), model(x[48:])) < 0.05


def test_fx_refuses_a_layer_without_kernel_and_names_the_path_that_can() -> None:
    # tests/test_quantize.py quantizes this kind of model with method="onnxruntime".
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Sequential(nn.BatchNorm2d(8), nn.Mish()))
    with pytest.raises(UnsupportedLayerError, match=r"layer '1\.1' \(Mish\)") as info:
        quantize_int8(model, torch.randn(4, 3, 8, 8), method="fx")
    assert info.value.layer == "1.1"
    assert "method='onnxruntime'" in str(info.value)
    assert "\n" not in str(info.value)


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # control flow on values: not traceable
            return x
        return -x


def test_fx_names_an_untraceable_layer() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.ReLU(), _DataDependent()))
    with pytest.raises(
        UnsupportedLayerError, match=r"cannot trace layer '1\.1' \(_DataDependent\)"
    ):
        quantize_int8(model, torch.randn(4, 3, 8, 8), method="fx")


def test_fx_backend_is_checked_and_the_engine_restored() -> None:
    with pytest.raises(ValueError, match=r"backend 'tpu' is not available"):
        quantize_int8(simple_cnn().eval(), torch.randn(4, 3, 32, 32), method="fx", backend="tpu")  # type: ignore[arg-type]
    before = torch.backends.quantized.engine
    fx_int8(simple_cnn().eval(), torch.randn(8, 3, 32, 32), backend="fbgemm")
    assert torch.backends.quantized.engine == before


def test_fx_models_cannot_be_saved(tmp_path: Path) -> None:
    int8 = fx_int8(simple_cnn(widths=(4, 8, 8), hidden=16).eval(), torch.randn(8, 3, 32, 32))
    with pytest.raises(ValueError, match=r"method='fx' cannot be saved.*method='onnxruntime'"):
        int8.save(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
