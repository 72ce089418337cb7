"""The inference bundle: ``export`` writes the JSON card beside the model, and a program with
only onnxruntime, numpy and Pillow (``examples/onnx_service.py``) labels images as
``predict`` does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from PIL import Image
from torch import nn

import visionblocks as vb
from visionblocks.cli import main
from visionblocks.model_file import RESIZE_RULES, attach_card, card_of

ROOT = Path(__file__).resolve().parents[1]
SERVICE = ROOT / "examples" / "onnx_service.py"
# A Python in which `import visionblocks` and `import torch` fail (None in sys.modules makes
# an import raise ImportError); then the script named by the first argument runs.
WITHOUT_VISIONBLOCKS = (
    "import runpy, sys; sys.modules.update(dict.fromkeys(['visionblocks', 'torch', "
    "'torchvision'])); sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)
# Pillow's bilinear resize and torchvision's (predict's) differ by at most 1 of 255 in a few
# pixels, which moves the probabilities of these deliberately sensitive models by a few 1e-3.
TOLERANCE = 5e-3
CLASSES = ("ant", "bee", "cow", "doe")
THRESHOLDS = (0.2, 0.5, 0.5, 0.7)  # of a multi-label model, per label


def sharp(model: nn.Module) -> nn.Module:
    """``model`` with its logits scaled up, so that its probabilities follow every pixel.

    Random weights give logits near 0 and probabilities near 1/K whatever the input, and
    then any preprocessing would agree; these spread over about 0.03-0.75.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                last = module
        last.weight.mul_(20.0)
    return model.eval()


def model_file(
    folder: Path, channels: int, resize: str, *, described: bool = True, multilabel: bool = False
) -> Path:
    """A 16x16 simple CNN saved with a card: classes, statistics and resize rule (or none)."""
    torch.manual_seed(channels)
    model = sharp(vb.simple_cnn(num_classes=4, in_channels=channels, image_size=16,
                                widths=(8, 8, 8), hidden=16))  # fmt: skip
    card = card_of(model)
    assert card is not None
    if described:
        card = card.replace(
            classes=CLASSES, image_shape=(channels, 16, 16), resize=resize,
            mean=(0.4, 0.5, 0.3)[:channels], std=(0.2, 0.25, 0.3)[:channels],
        )  # fmt: skip
    else:
        card = card.replace(image_shape=(channels, 16, 16), resize=resize)
    if multilabel:
        card = card.replace(task="multilabel", thresholds=THRESHOLDS)
    attach_card(model, card)
    return vb.save_checkpoint(folder / "model.pt", model)


def image_files(folder: Path) -> list[Path]:
    """Files of every kind predict reads: gray, colour, palette, alpha, EXIF-rotated, sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def picture(height: int, width: int, channels: int) -> np.ndarray:
        # Smooth shapes plus noise, so that resizing and cropping change the pixels.
        y, x = np.mgrid[0:height, 0:width]
        base = 127 + 100 * np.sin(x / (1 + width / 5) + rng.uniform(0, 6)) * np.cos(y / 3)
        planes = [base + rng.normal(0, 25, (height, width)) for _ in range(channels)]
        return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8).squeeze()

    files = {
        "gray.png": Image.fromarray(picture(20, 20, 1), "L"),
        "photo.jpg": Image.fromarray(picture(24, 37, 3), "RGB"),
        "tall.png": Image.fromarray(picture(41, 23, 3), "RGB"),
        "small.png": Image.fromarray(picture(7, 5, 1), "L"),
        "exact.png": Image.fromarray(picture(16, 16, 3), "RGB"),
        "palette.png": Image.fromarray(picture(30, 18, 3), "RGB").quantize(16),
        "alpha.png": Image.fromarray(picture(19, 26, 4), "RGBA"),
    }
    paths = []
    for name, image in files.items():
        image.save(folder / name)
        paths.append(folder / name)
    # A camera's portrait photo: stored sideways, with EXIF orientation 6 (rotate 90 cw).
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(picture(22, 34, 3), "RGB").save(folder / "rotated.jpg", exif=exif)
    return [*paths, folder / "rotated.jpg"]


def serve_without_visionblocks(onnx_path: Path, files: list[Path]) -> list[dict[str, object]]:
    """``examples/onnx_service.py --json`` in a Python where visionblocks and torch fail."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_VISIONBLOCKS, str(SERVICE), str(onnx_path),
         *map(str, files), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    results: list[dict[str, object]] = json.loads(done.stdout)
    return results


def largest_difference(served: list[dict[str, object]], predicted: list[vb.Prediction]) -> float:
    assert [r["file"] for r in served] == [p.source for p in predicted]
    return max(
        float(np.abs(np.array(r["probabilities"]) - np.array(p.probabilities)).max())
        for r, p in zip(served, predicted, strict=True)
    )


def test_the_blocked_python_cannot_import_visionblocks_or_torch() -> None:
    # Without this, the service test below could pass by importing them.
    for name in ("visionblocks", "torch"):
        code = f"{WITHOUT_VISIONBLOCKS.split('; sys.argv')[0]}; import {name}"
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode != 0, done.stderr
        assert f"import of {name} halted" in done.stderr, done.stderr  # a ModuleNotFoundError


@dataclass(frozen=True)
class Bundle:
    """A model file, its ONNX export with the card, image files and predict's answers."""

    channels: int
    resize: str
    model: Path
    onnx: Path
    files: list[Path]
    predicted: list[vb.Prediction]


@pytest.fixture(
    scope="module", params=[(1, "squash"), (3, "shorter-side+center-crop")], ids=["gray", "rgb"]
)
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    channels, resize = request.param
    folder = tmp_path_factory.mktemp(f"bundle{channels}")
    path = model_file(folder, channels, resize)
    files = image_files(folder / "images")
    exported = vb.export(path, folder / "model.onnx")
    return Bundle(channels, resize, path, exported.path, files, vb.predict(path, files))


def test_the_onnx_service_labels_files_as_predict_does(bundle: Bundle) -> None:
    served = serve_without_visionblocks(bundle.onnx, bundle.files)
    assert [r["label"] for r in served] == [p.label for p in bundle.predicted]
    assert largest_difference(served, bundle.predicted) < TOLERANCE
    # Not vacuous: the probabilities are far from 1/4 whatever the file.
    assert max(p.probability for p in bundle.predicted) > 1.5 / len(CLASSES)


def test_a_service_that_missed_the_cards_resize_rule_would_be_caught(
    bundle: Bundle, tmp_path: Path
) -> None:
    # The control: the same service reading the other rule disagrees by several times
    # TOLERANCE, so the agreement above is the preprocessing's, not the model's indifference.
    card = json.loads(Path(f"{bundle.onnx}.json").read_text())
    card["preprocessing"]["resize"] = next(r for r in RESIZE_RULES if r != bundle.resize)
    shutil.copy(bundle.onnx, tmp_path / "model.onnx")
    (tmp_path / "model.onnx.json").write_text(json.dumps(card))
    served = serve_without_visionblocks(tmp_path / "model.onnx", bundle.files)
    assert largest_difference(served, bundle.predicted) > 4 * TOLERANCE


def test_the_card_beside_the_onnx_file_names_the_graphs_input_and_output(bundle: Bundle) -> None:
    text = Path(f"{bundle.onnx}.json").read_text()
    card = json.loads(text)
    session = onnxruntime.InferenceSession(str(bundle.onnx), providers=["CPUExecutionProvider"])
    assert card["input"]["name"] == session.get_inputs()[0].name
    assert card["output"]["name"] == session.get_outputs()[0].name
    assert card["input"]["shape"] == ["batch", bundle.channels, 16, 16]
    assert card["output"]["shape"] == ["batch", 4]
    assert card["labels"] == list(CLASSES) == card["classes"]
    assert card["preprocessing"]["mode"] == {1: "L", 3: "RGB"}[bundle.channels]
    assert card["preprocessing"]["resize"] == bundle.resize
    assert card["preprocessing"]["size"] == [16, 16]
    assert card["preprocessing"]["mean"] == pytest.approx([0.4, 0.5, 0.3][: bundle.channels])
    assert card["preprocessing"]["std"] == pytest.approx([0.2, 0.25, 0.3][: bundle.channels])
    assert (card["format"], card["file"]) == ("onnx", "model.onnx")
    # One JSON in both places: the file beside the model and the ONNX metadata.
    metadata = {p.key: p.value for p in onnx.load(str(bundle.onnx)).metadata_props}
    assert metadata["visionblocks"] + "\n" == text


def test_a_model_without_classes_or_statistics_is_served_as_predict_uses_it(
    tmp_path: Path,
) -> None:
    path = model_file(tmp_path, 1, "squash", described=False)
    exported = vb.export(path, tmp_path / "model.onnx")
    assert exported.card_path is not None
    card = json.loads(exported.card_path.read_text())
    assert card["labels"] == ["0", "1", "2", "3"]
    assert (card["preprocessing"]["mean"], card["preprocessing"]["std"]) == ([0.0], [1.0])
    files = image_files(tmp_path / "images")[:3]
    served = serve_without_visionblocks(exported.path, files)
    with pytest.warns(UserWarning, match="stores no class names"):
        predicted = vb.predict(path, files)
    assert [r["label"] for r in served] == [p.label for p in predicted]
    assert largest_difference(served, predicted) < TOLERANCE


def test_a_multilabel_model_is_served_with_sigmoids_and_its_thresholds(tmp_path: Path) -> None:
    path = model_file(tmp_path, 3, "squash", multilabel=True)
    exported = vb.export(path, tmp_path / "model.onnx")
    assert exported.card_path is not None
    output = json.loads(exported.card_path.read_text())["output"]
    assert (output["activation"], output["thresholds"]) == ("sigmoid", list(THRESHOLDS))
    files = image_files(tmp_path / "images")
    served = serve_without_visionblocks(exported.path, files)
    predicted = vb.predict(path, files)
    assert [r["labels"] for r in served] == [list(p.labels) for p in predicted]
    assert largest_difference(served, predicted) < TOLERANCE
    # Not vacuous: sigmoids, not a softmax (which sums to 1), and more than one label somewhere.
    assert any(abs(sum(p.probabilities) - 1) > 0.1 for p in predicted)
    assert any(len(p.labels) > 1 for p in predicted)


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_file(tmp_path_factory.mktemp("rgb"), 3, "shorter-side+center-crop")


@pytest.mark.parametrize("suffix", [".pt2", ".safetensors"])
def test_every_format_gets_its_card(rgb_model: Path, tmp_path: Path, suffix: str) -> None:
    result = vb.export(rgb_model, tmp_path / f"model{suffix}")
    assert result.card_path == tmp_path / f"model{suffix}.json"
    card = json.loads(result.card_path.read_text())
    assert card["format"] == suffix[1:]
    assert card["input"]["name"] is None  # taken positionally, not by name
    assert card["labels"] == list(CLASSES)
    assert card["preprocessing"]["resize"] == "shorter-side+center-crop"
    if suffix == ".pt2":
        extra = {"visionblocks.json": ""}
        torch.export.load(result.path, extra_files=extra)
        assert extra["visionblocks.json"] + "\n" == result.card_path.read_text()


def test_the_export_command_says_where_the_card_is(
    rgb_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.pt2"
    assert main(["export", str(rgb_model), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}.json (classes and preprocessing" in printed
    assert (tmp_path / "m.pt2.json").is_file()
