"""activations() / capture_activations(): right tensors, and no hook outlives the call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from visionblocks import resnet20, simple_cnn
from visionblocks.analysis import activations, capture_activations


def _hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_maps_equal_running_the_layers_by_hand() -> None:
    torch.manual_seed(0)
    model = simple_cnn().eval()
    x = torch.randn(2, 3, 32, 32)
    maps = activations(model, x, ["features.0", model.features[2]])
    assert list(maps) == ["features.0", "features.2"]
    with torch.no_grad():
        first = model.features[0](x)
        third = model.features[2](model.features[1](first))
    torch.testing.assert_close(maps["features.0"], first)
    torch.testing.assert_close(maps["features.2"], third)
    assert not maps["features.0"].requires_grad
    assert _hooks_left(model) == 0


def test_modes_are_restored_and_a_single_name_works() -> None:
    model = resnet20().train()
    maps = activations(model, torch.zeros(1, 3, 32, 32), "stages.2")
    assert tuple(maps["stages.2"].shape) == (1, 64, 8, 8)
    assert model.training


def test_hooks_are_removed_when_the_forward_pass_fails() -> None:
    model = simple_cnn()
    with pytest.raises(ValueError, match="32x32"):
        activations(model, torch.zeros(1, 3, 28, 28), ["features.0"])
    assert _hooks_left(model) == 0
    with pytest.raises(RuntimeError, match="boom"), capture_activations(model, "head"):
        raise RuntimeError("boom")
    assert _hooks_left(model) == 0


def test_capture_keeps_the_graph_when_asked() -> None:
    model = resnet20()
    with capture_activations(model, "stem", detach=False) as maps:
        model(torch.randn(1, 3, 32, 32)).sum().backward()
    assert maps["stem"].requires_grad


def test_bad_layer_names_say_what_exists() -> None:
    model = resnet20()
    with pytest.raises(ValueError, match=r"did you mean 'stages\.1'"):
        activations(model, torch.zeros(1, 3, 32, 32), ["stages.1 "])
    with pytest.raises(ValueError, match="not part of"):
        activations(model, torch.zeros(1, 3, 32, 32), [nn.Conv2d(1, 1, 1)])
    with pytest.raises(TypeError, match=r"str name or an nn\.Module"):
        activations(model, torch.zeros(1, 3, 32, 32), [3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty"):
        activations(model, torch.zeros(1, 3, 32, 32), [])
