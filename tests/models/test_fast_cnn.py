"""FastCNN, the network of the ``fast`` recipe: its shape, options and whitening layer."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks.models import FastCNN, fast_cnn, whitening_filters

# --- the network --------------------------------------------------------------------------


@pytest.mark.parametrize(("in_channels", "expected"), [(3, 1_972_792), (1, 1_963_304)])
def test_fast_cnn_parameter_count(in_channels: int, expected: int) -> None:
    # whiten 2x2 conv (8C filters + bias), 3 groups of 2 convs + 2 BNs, bias-free head.
    c, w = in_channels, (64, 256, 256)
    whiten = 8 * c * c * 4 + 8 * c
    convs = 9 * (8 * c * w[0] + w[0] * w[0] + w[0] * w[1] + w[1] * w[1] + w[1] * w[2] + w[2] ** 2)
    norms = 2 * 2 * sum(w)
    assert whiten + convs + norms + w[2] * 10 == expected
    assert sum(p.numel() for p in fast_cnn(in_channels=in_channels).parameters()) == expected


@pytest.mark.parametrize("size", [9, 28, 32, 40])
def test_fast_cnn_any_size_from_nine_pixels(size: int) -> None:
    model = fast_cnn(num_classes=7, in_channels=1, widths=(8, 16, 16)).eval()
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 7)


def test_fast_cnn_too_small_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least 9x9"):
        fast_cnn(in_channels=1, widths=(8, 8, 8))(torch.zeros(1, 1, 8, 8))


def test_fast_cnn_head_is_scaled_max_pool() -> None:
    model = fast_cnn(in_channels=1, widths=(8, 8, 8), logit_scale=0.5).eval()
    features = model.forward_features(torch.randn(3, 1, 28, 28))
    pooled = model.forward_head(features, pre_logits=True)
    torch.testing.assert_close(pooled, features.flatten(2).max(dim=2).values)
    torch.testing.assert_close(model.forward_head(features), 0.5 * model.head(pooled))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"widths": ()}, ValueError),
        ({"widths": (8, 0)}, ValueError),
        ({"logit_scale": 0}, ValueError),
        ({"activation": "tanh"}, ValueError),
    ],
)
def test_fast_cnn_rejects_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        fast_cnn(**kwargs)


@pytest.mark.parametrize(("name", "kind"), [("gelu", nn.GELU), ("relu", nn.ReLU)])
def test_fast_cnn_activation_by_name(name: str, kind: type[nn.Module]) -> None:
    model = fast_cnn(in_channels=1, widths=(8, 8, 8), activation=name)
    used = {type(m) for m in model.modules() if isinstance(m, nn.GELU | nn.ReLU)}
    assert used == {kind}  # the stem's and every group's
    assert sum(isinstance(m, kind) for m in model.modules()) == 1 + 2 * 3


def test_fast_cnn_identity_init_passes_channels_through() -> None:
    model = fast_cnn(in_channels=1, widths=(8, 16, 16), identity_init=True)
    convs = [m for m in model.groups.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6
    x = torch.randn(2, 16, 7, 7)
    for conv in convs:
        c = conv.in_channels
        out = conv(x[:, :c])
        # Catches an identity on the wrong filters or a missing init: the first c outputs
        # are the input, the rest (where there are more outputs) are random.
        torch.testing.assert_close(out[:, :c], x[:, :c])
        if conv.out_channels > c:
            assert not torch.allclose(out[:, c : 2 * c], x[:, :c])
    plain = fast_cnn(in_channels=1, widths=(8, 16, 16))
    first = next(m for m in plain.groups.modules() if isinstance(m, nn.Conv2d))
    assert not torch.allclose(first(x[:, :8])[:, :8], x[:, :8])


def test_fast_cnn_is_registered() -> None:
    assert "fast_cnn" in vb.list_models()
    assert isinstance(vb.create_model("fast_cnn", in_channels=1), FastCNN)


def test_fast_cnn_keeps_the_classifier_contract() -> None:
    # What tests/test_models.py checks for every registered model, in case this module's
    # import (which registers fast_cnn) comes after that file collects the registry.
    model = fast_cnn(num_classes=7, widths=(8, 16, 16))
    x = torch.linspace(-2, 2, 2 * 3 * 32 * 32).reshape(2, 3, 32, 32).sin()
    model(x).logsumexp(dim=1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x), rtol=1e-4, atol=1e-5)
    model.reset_classifier(3)
    assert model(x).shape == (2, 3)
    model.reset_classifier(0)
    assert model(x).shape == (2, 16)


# --- whitening ----------------------------------------------------------------------------


def test_whitening_filters_decorrelate_patches() -> None:
    gen = torch.Generator().manual_seed(0)
    mixing = torch.randn(4, 4, generator=gen)
    patches = torch.randn(20000, 4, generator=gen) @ mixing  # correlated
    filters = whitening_filters(patches, eps=0.0)
    assert filters.shape == (8, 4)
    torch.testing.assert_close(filters[4:], -filters[:4])
    cov = torch.cov((patches @ filters[:4].T).T)
    torch.testing.assert_close(cov, torch.eye(4), atol=1e-3, rtol=0)


def test_init_whitening_whitens_the_first_layer() -> None:
    images = vb.load_dataset("sample").images[:500].float() / 255
    model = fast_cnn(in_channels=1, widths=(8, 8, 8))
    model.init_whitening(images, eps=0.0)
    with torch.no_grad():
        out = model.whiten(images)[:, :4]  # (N, 4, 27, 27): the positive filters
    cov = torch.cov(out.permute(1, 0, 2, 3).reshape(4, -1))
    torch.testing.assert_close(cov, torch.eye(4), atol=1e-3, rtol=0)


def test_init_whitening_checks_channels() -> None:
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fast_cnn().init_whitening(torch.zeros(4, 1, 8, 8))
