"""``export`` to ONNX and ``torch.export`` for every registered model; ``visionblocks export``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks.cli import main

FAST_MODELS = ["fast_cnn", "resnet20", "simple_cnn_bn"]
TOLERANCE = 1e-4


def _trained_like(name: str) -> nn.Module:
    """``name`` with BatchNorm statistics that match its activations, as after training.

    A freshly built deep ResNet in eval mode normalizes with mean 0 and variance 1 and its
    logits reach 1e8 (ResNet-110), where float32 rounding alone exceeds any fixed tolerance.
    """
    torch.manual_seed(0)
    model = vb.create_model(name)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average over the calibration batch
    c, h, w = model.default_input_size
    model.train()
    with torch.no_grad():
        model(torch.randn(32, c, h, w))
    return model.eval()


def _check_both_formats(name: str, folder: Path) -> None:
    model = _trained_like(name)
    c, h, w = model.default_input_size
    for suffix in (".onnx", ".pt2"):
        result = vb.export(model, folder / f"{name}{suffix}")
        assert result.format == suffix[1:]
        assert result.max_abs_diff < TOLERANCE, (name, suffix, result.max_abs_diff)
    session = onnxruntime.InferenceSession(
        str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"]
    )
    program = torch.export.load(folder / f"{name}.pt2").module()
    for batch in (1, 7):
        x = torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(batch))
        with torch.no_grad():
            expected = model(x)
            from_pt2 = program(x)
        (from_onnx,) = session.run(None, {"images": x.numpy()})
        assert from_onnx.shape == (batch, model.num_classes)
        assert np.abs(from_onnx - expected.numpy()).max() < TOLERANCE, (name, batch)
        assert (from_pt2 - expected).abs().max() < TOLERANCE, (name, batch)
        # The check is not vacuous: the logits differ between images and are not tiny.
        assert expected.abs().max() > 10 * TOLERANCE


@pytest.mark.parametrize("name", FAST_MODELS)
def test_small_models_export_to_onnx_and_pt2_and_agree_with_pytorch(
    name: str, tmp_path: Path
) -> None:
    _check_both_formats(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", vb.list_models())
def test_every_registered_model_exports_and_agrees_with_pytorch(name: str, tmp_path: Path) -> None:
    _check_both_formats(name, tmp_path)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = vb.simple_cnn_bn(num_classes=3, in_channels=1, image_size=28)
    return vb.save_checkpoint(
        tmp_path_factory.mktemp("model") / "model.pt", model, model_name="simple_cnn_bn",
        model_kwargs={"num_classes": 3, "in_channels": 1, "image_size": 28},
        extra={"classes": ["ant", "bee", "cow"], "stats": [[0.25], [0.5]],
               "image_shape": [1, 28, 28]},
    )  # fmt: skip


def test_a_model_file_exports_with_its_card_in_the_metadata(
    model_file: Path, tmp_path: Path
) -> None:
    onnx_result = vb.export(model_file, tmp_path / "m.onnx")
    assert onnx_result.input_shape == (1, 28, 28)
    metadata = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    card = json.loads(metadata["visionblocks"])
    assert card["classes"] == ["ant", "bee", "cow"]
    assert (card["mean"], card["std"]) == ([0.25], [0.5])
    assert card["input_shape"] == [1, 28, 28]
    vb.export(model_file, tmp_path / "m.pt2")
    extra = {"visionblocks.json": ""}
    torch.export.load(tmp_path / "m.pt2", extra_files=extra)
    assert json.loads(extra["visionblocks.json"])["classes"] == ["ant", "bee", "cow"]


def test_export_leaves_the_model_in_its_training_mode(tmp_path: Path) -> None:
    model = vb.simple_cnn()
    model.train()
    vb.export(model, tmp_path / "m.pt2")
    assert model.training is True


class _DataDependent(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # Python control flow on a tensor value: not traceable
            return x * 2
        return x


class _Untraceable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.gate = _DataDependent()
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.gate(self.conv(x)).mean((2, 3)))


def test_a_model_that_cannot_be_traced_names_the_layer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"layer 'gate' \(_DataDependent\) cannot be exported"):
        vb.export(_Untraceable(), tmp_path / "m.pt2", input_shape=(3, 16, 16))
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.parametrize(
    ("path", "kwargs", "error", "match"),
    [
        ("m.tflite", {}, ValueError, "cannot tell the export format"),
        ("m.onnx", {"format": "tflite"}, ValueError, "unknown export format 'tflite'"),
        ("m.pt2", {"format": "onnx"}, ValueError, "ends in .pt2"),
        ("m.onnx", {"batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ("m.onnx", {"input_shape": (3, 32)}, ValueError, r"input_shape must be \(C, H, W\)"),
    ],
)
def test_bad_arguments_are_one_clear_error(
    tmp_path: Path, path: str, kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        vb.export(vb.simple_cnn(), tmp_path / path, **kwargs)  # type: ignore[arg-type]


def test_unknown_input_shape_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    plain = nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten())
    with pytest.raises(ValueError, match="pass input_shape"):
        vb.export(plain, tmp_path / "m.pt2")
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        vb.export(tmp_path / "nothing.pt", tmp_path / "m.onnx")


def test_cli_export_prints_the_difference_from_pytorch(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exported" / "model.onnx"
    assert main(["export", str(model_file), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[0]  # the next: the JSON card's path
    assert printed.startswith(f"wrote {out} (onnx); largest difference from PyTorch")
    assert float(printed.rsplit(" ", 1)[1]) < TOLERANCE
    assert out.is_file()
    assert main(["export", str(model_file), "--format", "pt2"]) == 0
    assert model_file.with_suffix(".pt2").is_file()


def test_cli_export_errors_are_one_line(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path / "missing.pt")]) == 1
    assert "no model file" in capsys.readouterr().err
    out = str(tmp_path / "m.pt2")
    assert main(["export", str(model_file), "--format", "onnx", "--out", out]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("visionblocks export: error: format='onnx' but")
    assert "\n" not in err
    with pytest.raises(SystemExit):
        main(["export", str(model_file), "--format", "tflite"])
