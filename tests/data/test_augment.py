"""Augmentation presets, the batched augmentation ops, and MixUp/CutMix."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.nn import functional as F
from torchvision.transforms.v2 import functional as TF

from visionblocks.data import (
    AUGMENT_PRESETS,
    BatchAugment,
    CutMix,
    Cutout,
    DeviceLoader,
    MixUp,
    RandomPadCrop,
    augmentation,
    batch_augment,
    batch_color_jitter,
    batch_cutout,
    batch_flip,
    batch_pad_crop,
    batch_rotate,
    load_dataset,
)


def _images(channels: int, n: int = 1, size: int = 32) -> torch.Tensor:
    # Smooth, non-constant images: every augmentation visibly changes them.
    grid = torch.linspace(0, 1, size)
    base = (grid[:, None] * 0.7 + grid[None, :] * 0.3) * 200 + 20  # (S, S)
    shift = torch.arange(n * channels, dtype=torch.float32).reshape(n, channels, 1, 1) * 7
    return (base + shift).clamp(0, 255).to(torch.uint8)


# --- per-sample presets ------------------------------------------------------------------


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
@pytest.mark.parametrize("channels", [1, 3])
def test_train_preset_changes_images_and_keeps_shape(preset: str, channels: int) -> None:
    image = _images(channels)[0]
    train = augmentation(preset, mean=(0.5,) * channels, std=(0.25,) * channels)
    outputs = [train(image) for _ in range(8)]
    assert all(o.shape == image.shape and o.dtype == torch.float32 for o in outputs)
    plain = augmentation(preset, train=False, mean=(0.5,) * channels, std=(0.25,) * channels)
    changed = sum(not torch.equal(o, plain(image)) for o in outputs)
    if preset == "none":
        assert changed == 0
    else:
        assert changed >= 2  # flips alone change half of the draws


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_eval_never_augments(preset: str) -> None:
    images = _images(3, n=4)
    train = augmentation(preset, train=True)
    evaluate = augmentation(preset, train=False)
    assert evaluate is not train
    for image in images:
        reference = evaluate(image)
        torch.testing.assert_close(reference, image.float() / 255)
        for _ in range(3):
            assert torch.equal(evaluate(image), reference)


def test_eval_normalizes_with_given_stats() -> None:
    image = _images(3)[0]
    out = augmentation("standard", train=False, mean=(0.1, 0.2, 0.3), std=(0.5, 0.4, 0.2))(image)
    mean = torch.tensor([0.1, 0.2, 0.3])[:, None, None]
    std = torch.tensor([0.5, 0.4, 0.2])[:, None, None]
    torch.testing.assert_close(out, (image.float() / 255 - mean) / std)


def test_pil_input_matches_tensor_input() -> None:
    image = _images(3)[0]
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    evaluate = augmentation("lab", train=False)
    assert torch.equal(evaluate(pil), evaluate(image))


def test_unsupported_presets_and_channels_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="randaugment"):
        augmentation("randaugmnt")
    with pytest.raises(ValueError, match="4 channels"):
        augmentation("autoaugment", in_channels=4)
    with pytest.raises(ValueError, match="mean and std"):
        augmentation("standard", mean=(0.5,))
    assert augmentation("cutout", in_channels=4) is not None  # geometric presets are fine


def test_random_pad_crop_is_a_window_of_the_padded_image() -> None:
    image = torch.arange(1, 65, dtype=torch.uint8).reshape(1, 8, 8)
    padded = F.pad(image, (2, 2, 2, 2))
    seen = set()
    for _ in range(200):
        out = RandomPadCrop(2)(image)
        matches = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if torch.equal(out, padded[:, dy : dy + 8, dx : dx + 8])
        ]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 25  # every offset in [0, 2p] x [0, 2p] occurs


def test_cutout_zeroes_one_clipped_square() -> None:
    image = torch.ones(3, 10, 10)
    for _ in range(50):
        zeroed = Cutout(4)(image)[0] == 0
        rows, cols = zeroed.any(1).nonzero(), zeroed.any(0).nonzero()
        assert 1 <= int(zeroed.sum()) <= 16
        assert int(zeroed.sum()) == len(rows) * len(cols)  # a rectangle
    assert bool((image == 1).all())  # the input is untouched


def test_cutout_defaults_to_half_the_image_side() -> None:
    areas = {int((Cutout()(torch.ones(1, 28, 28)) == 0).sum()) for _ in range(300)}
    assert max(areas) == 14 * 14
    assert min(areas) >= 7 * 7  # a centre in a corner keeps a quarter of the square


# --- batched ops ---------------------------------------------------------------------------


def test_batch_pad_crop_stays_within_padding() -> None:
    # Pixel values encode position, so each output reveals its offset (zeros = padding).
    images = (torch.arange(1, 65, dtype=torch.uint8).reshape(1, 1, 8, 8)).repeat(300, 2, 1, 1)
    out = batch_pad_crop(images, 3, torch.Generator().manual_seed(0))
    padded = F.pad(images, (3, 3, 3, 3))
    offsets = set()
    for i in range(len(out)):
        found = [
            (dy, dx)
            for dy in range(7)
            for dx in range(7)
            if torch.equal(out[i], padded[i, :, dy : dy + 8, dx : dx + 8])
        ]
        assert len(found) == 1
        offsets.add(found[0])
    assert len(offsets) == 49


def test_batch_flip_flips_about_half() -> None:
    images = torch.rand(1000, 1, 2, 3)
    out = batch_flip(images, torch.Generator().manual_seed(0))
    same = (out == images).flatten(1).all(1)
    flipped = (out == images.flip(-1)).flatten(1).all(1)
    assert bool((same ^ flipped).all())
    assert 420 < int(flipped.sum()) < 580


def test_batch_cutout_area_and_float_support() -> None:
    images = torch.ones(200, 3, 12, 12)
    out = batch_cutout(images, 6, torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert bool(((zeros >= 9) & (zeros <= 36)).all())  # clipped at worst to a 3x3 corner
    assert bool((out[:, 0] == out[:, 2]).all())  # same square in every channel
    assert int((zeros == 36).sum()) > 50


def _factors(seed: int, n: int, which: int, strength: float) -> list[float]:
    # batch_color_jitter draws its (3, B) factors first from the generator.
    u = torch.rand(3, n, generator=torch.Generator().manual_seed(seed))
    return (1 + (u[which] * 2 - 1) * strength).tolist()


@pytest.mark.parametrize(
    ("which", "name", "reference"),
    [
        (0, "brightness", TF.adjust_brightness),
        (1, "contrast", TF.adjust_contrast),
        (2, "saturation", TF.adjust_saturation),
    ],
)
def test_batch_color_jitter_matches_torchvision(which: int, name: str, reference: object) -> None:
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    out = batch_color_jitter(images, torch.Generator().manual_seed(1), **{name: 0.3})
    factors = _factors(1, 6, which, 0.3)
    assert len({round(f, 6) for f in factors}) == 6  # one factor per image
    assert out.dtype == torch.uint8  # uint8 in, uint8 out: the loaders normalize by dtype
    for i, f in enumerate(factors):
        expected = reference(images[i].float() / 255, f) * 255  # type: ignore[operator]
        torch.testing.assert_close(out[i].float(), expected, atol=0.5 + 1e-3, rtol=0)  # rounded
    floats = batch_color_jitter(images / 255, torch.Generator().manual_seed(1), **{name: 0.3})
    assert floats.dtype == torch.float32
    for i, f in enumerate(factors):
        expected = reference(images[i] / 255, f)  # type: ignore[operator]
        torch.testing.assert_close(floats[i], expected, atol=1e-5, rtol=0)


def test_batch_rotate_matches_torchvision_pixel_for_pixel() -> None:
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = batch_rotate(images, 15.0, torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8  # not float 0-255: the loaders normalize by dtype
    u = torch.rand(6, generator=torch.Generator().manual_seed(0))
    for i, angle in enumerate(((u * 2 - 1) * 15).tolist()):
        assert torch.equal(out[i], TF.rotate(images[i], angle))  # uint8 in, uint8 out


def test_batch_augment_is_reproducible_and_dtype_preserving() -> None:
    images = _images(3, n=16)
    aug = BatchAugment(padding=4, cutout_size=8)
    a = aug(images, torch.Generator().manual_seed(5))
    b = aug(images, torch.Generator().manual_seed(5))
    c = aug(images, torch.Generator().manual_seed(6))
    assert a.dtype == torch.uint8
    assert a.shape == images.shape
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_batch_presets_on_real_grayscale_images(preset: str) -> None:
    images = load_dataset("sample", "test").images[:16]
    aug = batch_augment(preset, image_size=28, in_channels=1)
    if aug is None:
        assert preset == "none"
        return
    out = aug(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    # Every preset keeps uint8 as uint8: a float 0-255 batch would be normalized as if it
    # were in [0, 1] (the "lab" preset did that, and trained at chance on the test set).
    assert out.dtype == torch.uint8
    assert not torch.equal(out, images)
    again = aug(images, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # per-sample fallbacks are seeded from the generator too


def test_per_sample_fallback_leaves_global_rng_alone() -> None:
    aug = batch_augment("trivialaugment")
    assert aug is not None
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    aug(_images(3, n=4), torch.Generator().manual_seed(0))
    assert torch.equal(torch.rand(3), expected)


# --- augmented training batches look like test batches -----------------------------------


def _pictures(channels: int, dtype: torch.dtype, n: int = 64) -> torch.Tensor:
    # Real Fashion-MNIST pixels (mostly black background, bright objects), tiled to 3 channels
    # with a per-channel gain so that the channels differ; uint8 0-255 or float in [0, 1].
    gray = load_dataset("sample", "test").images[:n]  # (n, 1, 28, 28) uint8
    gains = torch.tensor([1.0, 0.8, 0.6][:channels])[:, None, None]
    images = (gray.float() * gains).round()
    return images.to(torch.uint8) if dtype == torch.uint8 else images / 255


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float"])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_augmented_batches_match_test_time_statistics(
    preset: str, channels: int, dtype: torch.dtype
) -> None:
    # The "lab" preset once turned uint8 batches into float 0-255 ones, which the loader then
    # normalized as if they were in [0, 1]: training inputs 255x brighter than test inputs
    # (mean ~195 instead of ~0), so fit(augment="lab") stayed at chance on the test set.
    images = _pictures(channels, dtype)
    pair = (images, torch.zeros(len(images), dtype=torch.int64))
    loaders = [
        DeviceLoader(pair, batch_size=len(images), shuffle=False, augment=a) for a in (None, preset)
    ]
    plain, augmented = (next(iter(loader))[0] for loader in loaders)
    assert augmented.shape == plain.shape
    assert augmented.dtype == torch.float32
    dims = (0, 2, 3)  # per channel
    mean_shift = (augmented.mean(dims) - plain.mean(dims)).abs()
    std_ratio = augmented.std(dims) / plain.std(dims)
    # Loose bounds (AutoAugment's equalize/solarize legitimately move dark channels a lot);
    # a wrong value range is off by a factor of 255 either way.
    assert bool((mean_shift < 0.5).all()), f"mean moved by {mean_shift.tolist()} std units"
    assert bool(((std_ratio > 0.5) & (std_ratio < 2)).all()), f"std ratio {std_ratio.tolist()}"
    # Augmentations keep pixels inside [0, 1]: inside (0 - mean) / std .. (1 - mean) / std.
    mean, std = torch.tensor(loaders[1].mean), torch.tensor(loaders[1].std)
    low, high = -mean / std, (1 - mean) / std
    assert bool((augmented.amin(dims) >= low - 1e-4).all())
    assert bool((augmented.amax(dims) <= high + 1e-4).all())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", AUGMENT_PRESETS)
def test_batched_presets_return_the_dtype_they_get(preset: str, channels: int) -> None:
    aug = batch_augment(preset, image_size=28, in_channels=channels)
    if aug is None:
        assert preset == "none"
        return
    for dtype in (torch.uint8, torch.float32):
        images = _pictures(channels, dtype, n=8)
        out = aug(images, torch.Generator().manual_seed(0))
        assert out.dtype == dtype, f"{preset}: {dtype} in, {out.dtype} out"
        assert 0 <= float(out.min()) <= float(out.max()) <= (255 if dtype == torch.uint8 else 1)


@pytest.mark.slow
def test_fit_with_the_lab_preset_beats_chance_on_the_test_split() -> None:
    # Before the fix: 10% (chance) on the test split after 2 epochs while training reached 88%.
    from visionblocks import evaluate, fit, resnet20

    train, test = load_dataset("sample"), load_dataset("sample", split="test")
    torch.manual_seed(0)
    model = resnet20(in_channels=1)
    fit(model, train, test, epochs=2, augment="lab", progress=False, seed=0)
    assert evaluate(model, test).accuracy > 0.3  # 0.1 is chance; about 0.5 measured


# --- MixUp and CutMix ----------------------------------------------------------------------


@pytest.mark.parametrize("mixer", [MixUp(alpha=0.4), CutMix(alpha=1.0)])
def test_mixed_labels_are_distributions(mixer: MixUp | CutMix) -> None:
    x, y = torch.rand(32, 3, 16, 16), torch.randint(0, 7, (32,))
    xm, ym = mixer(x, y, 7, generator=torch.Generator().manual_seed(0))
    assert xm.shape == x.shape
    assert ym.shape == (32, 7)
    torch.testing.assert_close(ym.sum(1), torch.ones(32))
    assert bool((ym >= 0).all())
    # Reproducible from the generator, and the inputs are not modified in place.
    xm2, ym2 = mixer(x, y, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(xm, xm2)
    assert torch.equal(ym, ym2)
    assert mixer(x, y, 7)[0].shape == x.shape  # global RNG when no generator


def _partner(x: torch.Tensor, y: torch.Tensor, ym: torch.Tensor, i: int) -> tuple[int, float]:
    # With one distinct class per image, the soft label reveals the partner and the weight.
    weights = ym[i].clone()
    lam = float(weights[y[i]])
    weights[y[i]] = 0
    j = int(weights.argmax()) if float(weights.max()) > 0 else i
    return j, lam


def test_mixup_blends_images_like_its_labels() -> None:
    x, y = torch.rand(10, 2, 4, 4), torch.arange(10)
    xm, ym = MixUp(alpha=1.0)(x, y, 10, generator=torch.Generator().manual_seed(3))
    for i in range(10):
        j, lam = _partner(x, y, ym, i)
        torch.testing.assert_close(xm[i], lam * x[i] + (1 - lam) * x[j])


def test_cutmix_label_weight_is_the_kept_area() -> None:
    x, y = torch.rand(10, 2, 16, 16) + 1, torch.arange(10)
    for seed in range(5):
        xm, ym = CutMix(alpha=1.0)(x, y, 10, generator=torch.Generator().manual_seed(seed))
        for i in range(10):
            j, lam = _partner(x, y, ym, i)
            if j == i:
                continue
            kept = float((xm[i] == x[i]).float().mean())
            assert kept == pytest.approx(lam, abs=1e-6)


def test_mix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="alpha"):
        MixUp(alpha=0)
    with pytest.raises(ValueError, match="float"):
        MixUp()(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), 3)
    with pytest.raises(ValueError, match="int64"):
        CutMix()(torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.int64), 3)
