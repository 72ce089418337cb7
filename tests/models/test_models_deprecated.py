"""0.1 call forms kept for one release: each warns (DeprecationWarning), builds the same model."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import visionblocks as vb


def _state(build: Callable[[], nn.Module]) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build().state_dict()


def _assert_same(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> None:
    assert list(old) == list(new)
    for key, value in new.items():
        torch.testing.assert_close(old[key], value, msg=key)


@pytest.mark.parametrize(
    ("old", "new", "hint"),
    [
        (
            lambda: vb.resnet_cifar(20),
            lambda: vb.resnet_cifar(depth=20),
            r"resnet_cifar\(depth=20, \.\.\.\)",
        ),
        (
            lambda: vb.resnet_cifar(32, num_classes=5),
            lambda: vb.resnet_cifar(num_classes=5, depth=32),
            r"resnet_cifar\(depth=32, \.\.\.\)",
        ),
        (
            lambda: vb.resnet_cifar(20, 5, 1, shortcut="padding"),
            lambda: vb.resnet_cifar(num_classes=5, in_channels=1, depth=20, shortcut="padding"),
            r"depth=20, num_classes=5, in_channels=1",
        ),
        (
            lambda: vb.vgg_cifar(13, 100),
            lambda: vb.vgg_cifar(num_classes=100, depth=13),
            r"vgg_cifar\(depth=13, num_classes=100, \.\.\.\)",
        ),
        (
            lambda: vb.DenseNet(block_sizes=(2, 3), growth_rate=4, stem_width=8),
            lambda: vb.DenseNet(depths=(2, 3), growth_rate=4, stem_width=8),
            r"DenseNet\(block_sizes=\.\.\.\) is deprecated.*use depths=",
        ),
    ],
)
def test_deprecated_form_warns_and_builds_the_same_model(
    old: Callable[[], nn.Module], new: Callable[[], nn.Module], hint: str
) -> None:
    with pytest.warns(DeprecationWarning, match=hint):
        old_state = _state(old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the 0.2 form must not warn
        new_state = _state(new)
    _assert_same(old_state, new_state)


def test_positional_depth_keeps_the_0_1_meaning() -> None:
    # In 0.1 resnet_cifar(20) was ResNet-20 for 10 classes, not a 20-class ResNet.
    with pytest.warns(DeprecationWarning, match=r"read as \(depth, num_classes, in_channels\)"):
        model = vb.resnet_cifar(20)
    assert model.num_classes == 10
    assert sum(p.numel() for p in model.parameters()) == 272_474


def test_keyword_depth_makes_positional_arguments_the_0_2_order() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = vb.resnet_cifar(20, 1, depth=32)
    assert (model.num_classes, model.in_channels) == (20, 1)
    assert sum(len(stage) for stage in model.stages) == 15  # (32 - 2) / 2 blocks


def test_legacy_and_new_values_for_one_argument_clash() -> None:
    with pytest.raises(TypeError, match=r"multiple values for \['num_classes'\]"):
        vb.resnet_cifar(20, 5, num_classes=5)  # type: ignore[misc]
    with pytest.raises(TypeError, match="pass depths= only"):
        vb.DenseNet(depths=(2,), block_sizes=(2,))  # type: ignore[call-arg]


def test_too_many_positional_arguments_are_rejected() -> None:
    with pytest.raises(TypeError, match="at most 3 positional arguments; got 4"):
        vb.vgg_cifar(11, 10, 3, True)  # type: ignore[misc]
