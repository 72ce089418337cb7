"""One LoaderOptions for every loader: given as an object, as keywords, or both."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from visionblocks.data import DeviceLoader, LoaderOptions, load_dataset


def _first_batch(loader: DeviceLoader) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = next(iter(loader))
    return x, y


def test_an_options_object_and_the_same_keywords_give_the_same_batches() -> None:
    data = load_dataset("sample")
    settings = {"batch_size": 64, "augment": "standard", "seed": 5, "drop_last": True}
    from_object = DeviceLoader(data, LoaderOptions(**settings))  # type: ignore[arg-type]
    from_keywords = DeviceLoader(data, **settings)
    assert from_object.options == from_keywords.options
    x, y = _first_batch(from_object)
    x_ref, y_ref = _first_batch(from_keywords)
    assert torch.equal(y, y_ref)
    assert torch.equal(x, x_ref)


def test_keywords_replace_the_fields_of_a_given_object() -> None:
    data = load_dataset("sample")
    base = LoaderOptions(batch_size=64, shuffle=False, seed=1)
    loader = DeviceLoader(data, base, seed=7, batch_size=100)
    assert (loader.batch_size, loader.seed, loader.shuffle) == (100, 7, False)
    assert base.seed == 1  # the caller's object is left alone (it is frozen)
    # a different seed changes the order, so the keyword really reached the loader
    shuffled = DeviceLoader(data, base, shuffle=True)
    reseeded = DeviceLoader(data, base, shuffle=True, seed=2)
    assert not torch.equal(shuffled.epoch_indices(), reseeded.epoch_indices())


def test_a_misspelt_option_names_itself_and_the_real_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown loader option 'shufle'.*shuffle"):
        DeviceLoader(load_dataset("sample"), batch_size=8, shufle=False)


def test_a_loader_without_a_batch_size_says_how_to_give_one() -> None:
    with pytest.raises(TypeError, match="batch_size"):
        DeviceLoader(load_dataset("sample"))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be an int >= 1; got 0"),
        ("seed", -1, "seed must be an int >= 0; got -1"),
        ("padding", 1.5, "padding must be an int >= 0; got 1.5"),
        ("cutout_size", 0, "cutout_size must be an int >= 1 or None; got 0"),
        ("rank", 2, "rank=2, world_size=1"),
    ],
)
def test_bad_numbers_are_refused_when_the_options_are_made(
    field: str, value: object, message: str
) -> None:
    settings: dict[str, object] = {"batch_size": 8, field: value}
    with pytest.raises(ValueError, match=message):
        LoaderOptions(**settings)  # type: ignore[arg-type]


def test_stats_are_stored_as_tuples_and_checked_against_the_channels() -> None:
    options = LoaderOptions(batch_size=8, mean=[0.5], std=[0.25])
    assert (options.mean, options.std) == ((0.5,), (0.25,))
    assert hash(options) == hash(dataclasses.replace(options))  # immutable and comparable
    with pytest.raises(ValueError, match="3 values, one per channel"):
        LoaderOptions(batch_size=8, mean=[0.5] * 3, std=[0.25])
    with pytest.raises(ValueError, match="need 1 value, one per channel"):  # the images' channels
        DeviceLoader(load_dataset("sample"), options, mean=[0.5] * 3, std=[0.25] * 3)
