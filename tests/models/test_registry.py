"""The registry's naming contract: lookups, and one leading signature for every builder."""

from __future__ import annotations

import inspect

import pytest
import torch

import visionblocks as vb
from visionblocks.models import create_model, get_model_builder, list_models

# The generic builder of each family; every other registered name is a fixed-depth alias.
FAMILIES = (
    "densenet_cifar",
    "fast_cnn",
    "mobilenetv2_cifar",
    "resnet_cifar",
    "simple_cnn",
    "vgg_cifar",
)


def test_get_model_builder_returns_the_registered_function() -> None:
    assert get_model_builder("resnet20") is vb.resnet20
    assert get_model_builder("resnet_cifar") is vb.resnet_cifar
    assert get_model_builder("fast_cnn") is vb.fast_cnn


def test_get_model_builder_suggests_close_names() -> None:
    with pytest.raises(ValueError, match=r"unknown model 'vgg_cifr'.*'vgg_cifar'"):
        get_model_builder("vgg_cifr")


def test_every_family_registers_its_generic_builder() -> None:
    missing = sorted(set(FAMILIES) - set(list_models()))
    assert not missing, f"families without a registered generic builder: {missing}"


@pytest.mark.parametrize("name", list_models())
def test_builders_take_num_classes_and_in_channels_first_then_keywords(name: str) -> None:
    parameters = list(inspect.signature(get_model_builder(name)).parameters.values())
    leading = [(p.name, p.kind, p.default) for p in parameters[:2]]
    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert leading == [("num_classes", positional, 10), ("in_channels", positional, 3)]
    not_keyword_only = [p.name for p in parameters[2:] if p.kind is not p.KEYWORD_ONLY]
    assert not not_keyword_only, f"{name}: options not keyword-only: {not_keyword_only}"


@pytest.mark.parametrize(
    ("alias", "family", "options"),
    [
        ("resnet20", "resnet_cifar", {}),
        ("resnet56", "resnet_cifar", {"depth": 56}),
        ("vgg11_cifar", "vgg_cifar", {}),
        ("vgg13_cifar", "vgg_cifar", {"depth": 13}),
        ("simple_cnn_bn", "simple_cnn", {"batch_norm": True}),
    ],
)
def test_fixed_depth_alias_is_the_generic_builder(
    alias: str, family: str, options: dict[str, object]
) -> None:
    torch.manual_seed(0)
    expected = create_model(alias, num_classes=4, in_channels=1).state_dict()
    torch.manual_seed(0)
    actual = create_model(family, num_classes=4, in_channels=1, **options).state_dict()
    assert list(actual) == list(expected)
    for key, value in expected.items():
        torch.testing.assert_close(actual[key], value, msg=key)


def test_create_model_names_an_unknown_argument_and_lists_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match=r"takes no argument 'widht'; its arguments are .*width"):
        create_model("simple_cnn", widht=32)


def test_create_model_passes_on_a_type_error_from_inside_the_builder() -> None:
    # The arguments are known: the builder's own TypeError (a bad value) is not reworded
    # as an unknown argument, which parsing the message text used to risk.
    with pytest.raises(TypeError) as caught:
        create_model("simple_cnn", dropout="half")
    assert "takes no argument" not in str(caught.value)
