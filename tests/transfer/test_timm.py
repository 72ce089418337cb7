"""timm backbones through ``pretrained("timm:<name>")``: weights, heads, freezing, files, CLI.

Weights are written by the tests themselves (``timm.create_model(pretrained=False)``
saved as safetensors or torch files); nothing is downloaded.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import visionblocks as vb
import visionblocks.data as vb_data
from visionblocks.cli import main
from visionblocks.model_file import CheckpointError
from visionblocks.transfer import (
    IMAGENET,
    fine_tune,
    first_conv,
    freeze,
    frozen_batchnorms,
    get_head,
    param_groups,
    pretrained,
)

timm = pytest.importorskip("timm")
safetensors_torch = pytest.importorskip("safetensors.torch")

# Small timm classifiers with the two head names timm uses: `fc` and `classifier`.
MODELS = {"resnet10t": "fc", "mobilenetv3_small_050": "classifier"}


def _source(name: str = "resnet10t") -> nn.Module:
    torch.manual_seed(1)
    model: nn.Module = timm.create_model(name, pretrained=False)
    return model.eval()


def _write(model: nn.Module, path: Path) -> Path:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if path.suffix == ".safetensors":
        safetensors_torch.save_file(state, path)
    else:
        torch.save(state, path)
    return path


def _image(channels: int = 3, size: int = 48) -> torch.Tensor:
    return torch.linspace(-2, 2, 2 * channels * size * size).reshape(2, channels, size, size).sin()


def _backbone(model: nn.Module) -> dict[str, torch.Tensor]:
    head = get_head(model)[0] + "."
    return {k: v for k, v in model.state_dict().items() if not k.startswith(head)}


# --- weights from local files ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".safetensors", ".pth", ".bin"])
def test_local_weights_load_exactly(tmp_path: Path, suffix: str) -> None:
    source = _source()
    path = _write(source, tmp_path / f"resnet10t{suffix}")
    # The pretrained head kept: the same logits as the source (catches weights not loaded).
    kept = pretrained("timm:resnet10t", 1000, weights=path, keep_head=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(kept(_image()), source(_image()))
    # A new head: the backbone is the file's, the head has the task's 5 outputs.
    model = pretrained("timm:resnet10t", 5, weights=path)
    assert get_head(model)[1].out_features == 5  # type: ignore[union-attr]
    expected = _backbone(source)
    assert all(torch.equal(v, expected[k]) for k, v in _backbone(model).items())
    card = vb.model_card(model)
    assert card is not None
    assert (card.builder, card.source, card.training["weights"]) == (
        "timm:resnet10t", "timm:resnet10t", path.name,
    )  # fmt: skip
    assert card.builder_kwargs == {"num_classes": 5, "in_channels": 3}


class _Payload:
    """A Python object in a weights file: loading it would run code."""


def test_a_pth_file_holding_python_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"fc.weight": torch.zeros(2, 2), "payload": _Payload()}, path)
    # torch.load(weights_only=False) would load it; the one reader refuses it.
    with pytest.raises(CheckpointError, match="could run code"):
        pretrained("timm:resnet10t", 3, weights=path)


def test_safetensors_sha256_is_checked(tmp_path: Path) -> None:
    path = _write(_source(), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="does not start with the expected 00000000"):
        pretrained("timm:resnet10t", 3, weights=path, sha256="00000000")


# --- the local Hugging Face cache -----------------------------------------------------------


def _cache(root: Path, source: nn.Module) -> Path:
    """``source``'s weights where the Hugging Face cache keeps timm's resnet10t.c3_in1k."""
    repo = root / "models--timm--resnet10t.c3_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0123abcd")
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    return _write(source, snapshot / "model.safetensors")


def test_default_weights_come_from_the_local_hugging_face_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    # Nothing may download: any attempt fails the test.
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", _no_download)
    monkeypatch.setattr(timm.models._hub, "hf_hub_download", _no_download)
    with pytest.raises(FileNotFoundError) as missing:
        pretrained("timm:resnet10t", 3)
    message = str(missing.value)
    assert "\n" not in message
    assert "hf download timm/resnet10t.c3_in1k model.safetensors" in message
    assert "weights='path/to/model.safetensors'" in message
    source = _source()
    _cache(tmp_path / "hub", source)
    model = pretrained("timm:resnet10t", 3)  # weights="DEFAULT"
    expected = _backbone(source)
    assert all(torch.equal(v, expected[k]) for k, v in _backbone(model).items())
    card = vb.model_card(model)
    assert card is not None
    assert card.training["weights"] == "timm/resnet10t.c3_in1k/model.safetensors"


def _no_download(*args: object, **kwargs: object) -> None:
    raise AssertionError(f"a download was attempted: {args} {kwargs}")


# --- heads, stems, freezing, learning rates -------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_heads_stem_freeze_and_param_groups(tmp_path: Path, name: str) -> None:
    source = _source(name)
    path = _write(source, tmp_path / f"{name}.safetensors")
    model = pretrained(f"timm:{name}", 4, weights=path, in_channels=1, freeze=True)
    head_name, head = get_head(model)
    assert head_name == MODELS[name]
    assert isinstance(head, nn.Linear)
    assert head.out_features == 4
    # The grayscale stem is the sum of the pretrained RGB filters (not a fresh conv).
    stem_name, stem = first_conv(model)
    source_stem = dict(source.named_modules())[stem_name]
    torch.testing.assert_close(stem.weight, source_stem.weight.sum(1, keepdim=True))
    assert model(_image(channels=1)).shape == (2, 4)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"{head_name}.weight", f"{head_name}.bias"]
    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(frozen_batchnorms(model)) == len(batchnorms) > 0
    freeze(model, except_head=False)
    vb.transfer.unfreeze(model)
    groups = param_groups(model, lr=0.1, backbone_lr_mult=0.1)
    head_ids = {id(p) for p in head.parameters()}
    for group in groups:
        in_head = {id(p) in head_ids for p in group["params"]}
        assert len(in_head) == 1  # a group is all head or all backbone
        assert group["lr"] == pytest.approx(0.1 if in_head == {True} else 0.01)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_fine_tune_a_timm_backbone(tmp_path: Path) -> None:
    path = _write(_source(), tmp_path / "resnet10t.safetensors")
    model = pretrained("timm:resnet10t", 10, weights=path, in_channels=1)
    data = vb_data.subset(vb_data.load_dataset("sample"), 0.05)
    stem = first_conv(model)[1].weight.detach().clone()
    history = fine_tune(model, data, frozen_epochs=1, epochs=1, batch_size=50, progress=False,
                        seed=0, precision="fp32")  # fmt: skip
    assert history["frozen"] == [1.0, 0.0]
    assert not torch.equal(stem, first_conv(model)[1].weight)  # stage 2 trained the backbone
    card = vb.model_card(model)
    assert card is not None
    # The weights' ImageNet statistics (averaged for one channel), not the sample's.
    assert card.mean == IMAGENET.for_channels(1).mean != data.mean
    assert card.image_shape == (1, 28, 28)


# --- model files ----------------------------------------------------------------------------


def test_load_model_rebuilds_a_timm_model_from_its_card(tmp_path: Path) -> None:
    path = _write(_source("mobilenetv3_small_050"), tmp_path / "m.safetensors")
    model = pretrained("timm:mobilenetv3_small_050", 3, weights=path, in_channels=1).eval()
    saved = vb.save_checkpoint(tmp_path / "model.pt", model)
    loaded = vb.load_model(saved)
    with torch.no_grad():
        torch.testing.assert_close(loaded(_image(channels=1)), model(_image(channels=1)))
    card = vb.model_card(loaded)
    assert card is not None
    assert (card.builder, card.source, card.num_classes) == (
        "timm:mobilenetv3_small_050", "timm:mobilenetv3_small_050", 3,
    )  # fmt: skip


def test_without_timm_the_error_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = pretrained("timm:resnet10t", 3, weights=None)
    saved = vb.save_checkpoint(tmp_path / "model.pt", model)
    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` now fails
    for attempt in (lambda: pretrained("timm:resnet10t", 3, weights=None),
                    lambda: vb.load_model(saved)):  # fmt: skip
        with pytest.raises(ImportError) as error:
            attempt()
        assert "pip install 'visionblocks[timm]'" in str(error.value)
        assert "\n" not in str(error.value)


def test_an_unknown_timm_name_suggests_close_ones() -> None:
    with pytest.raises(ValueError, match="Did you mean 'timm:resnet10t'"):
        pretrained("timm:resnet10tt", 3, weights=None)


# --- the CLI --------------------------------------------------------------------------------


def test_cli_fine_tunes_a_timm_backbone_from_a_safetensors_file(tmp_path: Path) -> None:
    source = _source()
    path = _write(source, tmp_path / "resnet10t.safetensors")
    out = tmp_path / "run"
    argv = ["train", "--pretrained", "timm:resnet10t", "--weights", str(path), "--limit", "100",
            "--epochs", "1", "--precision", "fp32", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    model = vb.load_model(out / "model.pt")
    card = vb.model_card(model)
    assert card is not None
    assert (card.builder, card.source, card.training["weights"]) == (
        "timm:resnet10t", "timm:resnet10t", "resnet10t.safetensors",
    )  # fmt: skip
    assert card.mean == IMAGENET.for_channels(1).mean
    # The backbone started from the file: its deepest conv moved little in two short epochs.
    name = "layer4.0.conv2.weight"
    start, end = source.state_dict()[name], model.state_dict()[name]
    fresh = timm.create_model("resnet10t", pretrained=False).state_dict()[name]
    assert (end - start).norm() < 0.2 * (end - fresh).norm()
    assert len(vb.predict(model, torch.zeros(1, 1, 28, 28))) == 1
