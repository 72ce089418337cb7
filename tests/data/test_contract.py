"""The data contract (visionblocks.data.contract) and the one augmentation preset table."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.transforms import v2

import visionblocks.data as data_pkg
import visionblocks.data._augment as augment_module
from visionblocks.data import (
    AUGMENT_PRESETS,
    BATCHED_PRESETS,
    BatchAugment,
    Cutout,
    DataInfo,
    DeviceLoader,
    ImageDataset,
    PerSampleAugment,
    augmentation,
    batch_augment,
    channel_stats,
    describe_data,
    epoch_seed,
    is_in_memory,
    labels_of,
    normalization_stats,
    normalize,
    stats_of,
    tensors_of,
)
from visionblocks.data._augment import PRESET_SPECS, PresetSpec, augment_ops


def _pair(n: int = 6, shape: tuple[int, int, int] = (3, 5, 7)) -> tuple[torch.Tensor, torch.Tensor]:
    # C, H and W all differ, so a shape read in the wrong order shows.
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8)
    return images, torch.arange(n) % 4  # labels 0..3


def _dataset() -> ImageDataset:
    images, labels = _pair()
    # Five class names but labels only up to 3: num_classes must come from the names.
    return ImageDataset(images, labels, ["a", "b", "c", "d", "e"], mean=(0.1, 0.2, 0.3),
                        std=(0.4, 0.5, 0.6))  # fmt: skip


# --- in memory or streaming -----------------------------------------------------------


def test_in_memory_test_on_each_kind_of_data() -> None:
    images, labels = _pair()
    streaming = TensorDataset(images, labels)
    assert is_in_memory(_dataset())
    assert is_in_memory((images, labels))
    assert not is_in_memory([images, labels])  # fit() has never taken a list
    assert not is_in_memory((images, labels.tolist()))
    assert not is_in_memory((images, labels, labels))
    assert not is_in_memory(images)
    assert not is_in_memory(streaming)
    assert not is_in_memory(DataLoader(streaming, batch_size=2))


def test_tensors_and_labels_of() -> None:
    images, labels = _pair()
    assert tensors_of((images, labels))[0] is images
    assert labels_of((images, labels)) is labels
    dataset = _dataset()
    assert labels_of(dataset) is dataset.labels
    assert labels_of(TensorDataset(images, labels)) is None
    assert labels_of(DataLoader(TensorDataset(images, labels))) is None


def test_tensors_of_rejects_what_is_not_an_image_pair() -> None:
    images, labels = _pair()
    with pytest.raises(TypeError, match="TensorDataset"):
        tensors_of(TensorDataset(images, labels))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        tensors_of((images[0], labels))  # one image, not a batch
    with pytest.raises(ValueError, match="uint8 or float"):
        tensors_of((images.int(), labels))
    with pytest.raises(ValueError, match="N=6"):
        tensors_of((images, labels[:5]))


# --- shape, classes and statistics ----------------------------------------------------


def test_describe_a_dataset() -> None:
    info = describe_data(_dataset())
    assert info == DataInfo(
        num_classes=5,
        image_shape=(3, 5, 7),
        classes=("a", "b", "c", "d", "e"),
        stats=((0.1, 0.2, 0.3), (0.4, 0.5, 0.6)),
    )
    assert info.in_channels == 3


def test_describe_a_tensor_pair() -> None:
    info = describe_data(_pair(shape=(2, 9, 4)))
    assert (info.num_classes, info.image_shape, info.in_channels) == (4, (2, 9, 4), 2)
    assert info.classes == ()
    assert info.stats is None


def test_describe_streaming_data_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="TensorDataset"):
        describe_data(TensorDataset(*_pair()))


def test_stats_carried_versus_computed() -> None:
    dataset, pair = _dataset(), _pair()
    assert stats_of(dataset) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    assert stats_of(pair) is None
    assert stats_of(TensorDataset(*pair)) is None
    assert normalization_stats(dataset) == stats_of(dataset)  # carried stats win
    assert normalization_stats(pair) == channel_stats(pair[0])
    with pytest.raises(TypeError, match="TensorDataset"):
        normalization_stats(TensorDataset(*pair))


# --- normalize ------------------------------------------------------------------------


def test_normalize_uint8_equals_the_hand_computation() -> None:
    images = _pair()[0]
    mean, std = (0.2, 0.5, 0.7), (0.1, 0.25, 0.3)
    by_hand = (images.double() / 255 - torch.tensor(mean).view(1, 3, 1, 1).double()) / torch.tensor(
        std
    ).view(1, 3, 1, 1).double()
    out = normalize(images, mean, std)
    assert out.dtype == torch.float32
    assert out.shape == images.shape
    torch.testing.assert_close(out.double(), by_hand, rtol=0, atol=2e-6)


def test_normalize_float_images_are_in_unit_range() -> None:
    images = torch.rand(2, 1, 3, 3)
    out = normalize(images, torch.tensor([0.5]), torch.tensor([0.25]))
    torch.testing.assert_close(out, (images - 0.5) / 0.25, rtol=0, atol=1e-6)
    assert out.data_ptr() != images.data_ptr()  # a new tensor; the input is left alone


def test_normalize_memory_format_and_errors() -> None:
    images = _pair()[0]
    out = normalize(images, (0.0,) * 3, (1.0,) * 3, memory_format=torch.channels_last)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert not out.is_contiguous()
    with pytest.raises(ValueError, match="3 values"):
        normalize(images, (0.5,), (0.5,))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        normalize(images[0], (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError, match="uint8 or float"):
        normalize(images.int(), (0.5,) * 3, (0.5,) * 3)


def test_device_loader_normalizes_through_the_contract() -> None:
    pair = _pair()
    loader = DeviceLoader(pair, batch_size=6, shuffle=False)
    x, y = next(iter(loader))
    assert torch.equal(x, normalize(pair[0], *normalization_stats(pair)))  # bit for bit
    assert torch.equal(y, pair[1])


def test_epoch_seed_is_public() -> None:
    assert epoch_seed(3, 1, 2) == epoch_seed(3, 1, 2)
    assert epoch_seed(3, 1, 2) != epoch_seed(3, 1, 1)


# --- one preset table for both augmentation paths -------------------------------------


def _per_image_numbers(ops: list[torch.nn.Module]) -> tuple[float, float, bool]:
    """(colour jitter strength, max rotation, has cutout) read off per-image transforms."""
    jitter = next((op for op in ops if isinstance(op, v2.ColorJitter)), None)
    rotation = next((op for op in ops if isinstance(op, v2.RandomRotation)), None)
    strength = 0.0 if jitter is None else jitter.brightness[1] - 1.0
    if jitter is not None:
        assert jitter.contrast == jitter.saturation == jitter.brightness
    degrees = 0.0 if rotation is None else float(rotation.degrees[1])
    return strength, degrees, any(isinstance(op, Cutout) for op in ops)


def _batched_numbers(augment: object) -> tuple[float, float, bool]:
    assert isinstance(augment, BatchAugment)
    return augment.color_jitter, augment.rotation, augment.cutout_size is not None


def test_lab_preset_reads_the_same_numbers_in_both_paths() -> None:
    per_image = _per_image_numbers(augment_ops("lab"))
    batched = _batched_numbers(batch_augment("lab"))
    assert per_image == pytest.approx((0.2, 15.0, False))
    assert batched == pytest.approx(per_image)


@pytest.mark.parametrize("preset", ["standard", "lab", "cutout"])
def test_batched_presets_follow_the_table(preset: str) -> None:
    spec = PRESET_SPECS[preset]
    expected = (spec.color_jitter, spec.rotation, spec.cutout)
    assert _per_image_numbers(augment_ops(preset)) == pytest.approx(expected)
    assert _batched_numbers(batch_augment(preset)) == pytest.approx(expected)


def test_changing_the_table_changes_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    table = dict(PRESET_SPECS)
    table["lab"] = PresetSpec(color_jitter=0.4, rotation=30.0, cutout=True)
    monkeypatch.setattr(augment_module, "PRESET_SPECS", table)
    assert _per_image_numbers(augment_ops("lab")) == pytest.approx((0.4, 30.0, True))
    assert _batched_numbers(batch_augment("lab", image_size=20)) == pytest.approx((0.4, 30.0, True))
    train_tf = augmentation("lab")  # the public per-image transform reads it too
    assert any(isinstance(op, Cutout) for op in train_tf.transforms)


def test_preset_names_and_which_run_batched() -> None:
    assert AUGMENT_PRESETS == (
        "none", "standard", "lab", "cutout", "autoaugment", "randaugment", "trivialaugment",
        "photo",
    )  # fmt: skip
    assert BATCHED_PRESETS == ("none", "standard", "lab", "cutout", "photo")
    assert batch_augment("none") is None
    assert augment_ops("none") == []
    for preset in ("autoaugment", "randaugment", "trivialaugment"):
        assert isinstance(batch_augment(preset), PerSampleAugment)


def test_colour_presets_check_channels_in_both_paths() -> None:
    for preset in ("lab", "autoaugment"):
        with pytest.raises(ValueError, match="4 channels"):
            augment_ops(preset, in_channels=4)
        with pytest.raises(ValueError, match="4 channels"):
            batch_augment(preset, in_channels=4)
    assert isinstance(batch_augment("cutout", in_channels=4), BatchAugment)
    assert len(augment_ops("cutout", in_channels=4)) == 3


def test_old_presets_name_is_a_deprecated_alias() -> None:
    with pytest.warns(DeprecationWarning, match="AUGMENT_PRESETS"):
        old = data_pkg.PRESETS
    assert old == AUGMENT_PRESETS
    assert "PRESETS" not in data_pkg.__all__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="NO_SUCH_NAME"):
            _ = data_pkg.NO_SUCH_NAME
