"""``load_model`` and ``predict`` on a ``model.pt`` from the CLI; ``visionblocks predict``."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

import visionblocks as vb
from visionblocks._cli._common import load_trained
from visionblocks.cli import main
from visionblocks.model_file import attach_card, write_model_file

N_FILES = 200  # test images written as PNG files


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """simple_cnn_bn trained by `visionblocks train` for 2 epochs on 1,024 sample images."""
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("run")
    code = main(
        ["train", "--model", "simple_cnn_bn", "--epochs", "2", "--limit", "1024", "--out",
         str(out), "--optimizer", "adamw", "--lr", "0.003", "--precision", "fp32",
         "--no-progress", "--seed", "1"]
    )  # fmt: skip
    assert code == 0
    return out / "model.pt"


@pytest.fixture(scope="module")
def test_images() -> vb.ImageDataset:
    return vb.load_dataset("sample", "test")


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory: pytest.TempPathFactory, test_images: vb.ImageDataset) -> Path:
    """The first N_FILES test images as grayscale PNGs, one subfolder per true class."""
    folder = tmp_path_factory.mktemp("pngs")
    for i in range(N_FILES):
        label = test_images.classes[int(test_images.labels[i])].replace("/", "-")
        (folder / label).mkdir(exist_ok=True)
        Image.fromarray(test_images.images[i, 0].numpy()).save(folder / label / f"{i:04d}.png")
    (folder / "README.txt").write_text("not an image, and not named like one\n")
    return folder


def _files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.png"), key=lambda f: f.name)  # sorted by image number


def _reference_probabilities(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What training fed the network: uint8 images normalized with the stored stats."""
    card = vb.model_card(model)
    assert card is not None
    assert card.stats is not None
    with torch.no_grad():
        return model(vb.data.normalize(images, *card.stats)).softmax(dim=1)


def _save_plain(path: Path, **extra: object) -> Path:
    """A resnet20 for 3-channel 32x32 images with the given extra entries."""
    torch.manual_seed(0)
    model = vb.resnet20(num_classes=4)
    return vb.save_checkpoint(
        path, model, model_name="resnet20", model_kwargs={"num_classes": 4}, extra=dict(extra)
    )


# load_model


def test_load_model_rebuilds_the_trained_model_with_its_card(
    model_file: Path, test_images: vb.ImageDataset
) -> None:
    model = vb.load_model(model_file)
    card = vb.model_card(model)
    assert card is not None
    assert isinstance(model, vb.SimpleCNN)
    assert model.training is False
    assert card.model_name == "simple_cnn_bn"
    assert card.classes == tuple(test_images.classes)
    assert card.image_shape == (1, 28, 28)
    assert card.info["dataset"] == "sample"
    train = vb.load_dataset("sample")
    assert card.stats is not None
    assert card.stats[0] == pytest.approx(train.mean)
    assert card.stats[1] == pytest.approx(train.std)
    # One home: the card carries the statistics, no second attribute on the model.
    assert not hasattr(model, "visionblocks_stats")
    saved = vb.load_checkpoint(model_file)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_cli_load_trained_is_load_model(model_file: Path) -> None:
    trained = load_trained(str(model_file))
    card = vb.model_card(trained.model)
    assert card is not None
    assert (trained.name, trained.image_shape, trained.stats) == (
        card.model_name, card.image_shape, card.stats
    )  # fmt: skip
    assert trained.classes == list(card.classes or ())
    assert trained.state["dataset"] == "sample"


def test_load_model_without_a_model_name_says_how_to_save_one(tmp_path: Path) -> None:
    # No registered builder made this model, so its file cannot say how to rebuild it.
    bare = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    path = vb.save_checkpoint(tmp_path / "bare.pt", bare)
    with pytest.raises(ValueError, match="no model_name"):
        vb.load_model(path)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        vb.load_model(tmp_path / "missing.pt")


def test_load_model_with_weights_of_another_shape_is_one_clear_error(tmp_path: Path) -> None:
    # save_checkpoint keeps the card true to the model; a file written with another
    # card (by hand, or by other code) must still fail with the keys named.
    card = vb.ModelCard("resnet20", {"num_classes": 7})
    path = write_model_file(tmp_path / "m.pt", vb.resnet20(num_classes=4), card)
    with pytest.raises(ValueError, match=r"do not fit resnet20.*head\.weight"):
        vb.load_model(path)


# predict


def test_predict_on_png_files_is_exactly_the_training_normalization(
    model_file: Path, png_folder: Path, test_images: vb.ImageDataset
) -> None:
    model = vb.load_model(model_file)
    files = _files(png_folder)
    found = vb.predict(model, files, top_k=3)
    assert [p.source for p in found] == [str(f) for f in files]
    expected = _reference_probabilities(model, test_images.images[:N_FILES])
    got = torch.tensor([p.top_probabilities[0] for p in found])
    assert torch.allclose(got, expected.max(dim=1).values, atol=1e-6)
    assert [p.index for p in found] == expected.argmax(dim=1).tolist()
    # The trained model (68% test accuracy) still classifies files: a wrong decode,
    # channel order or normalization would drop this to about chance (10%).
    truth = test_images.labels[:N_FILES].tolist()
    accuracy = np.mean([p.index == t for p, t in zip(found, truth, strict=True)])
    assert accuracy > 0.5
    assert all(p.label == test_images.classes[p.index] for p in found)


def test_predict_on_a_folder_reads_its_images_recursively_in_sorted_order(
    model_file: Path, png_folder: Path
) -> None:
    found = vb.predict(model_file, png_folder, device="cpu")
    assert [p.source for p in found] == [str(f) for f in sorted(png_folder.rglob("*.png"))]
    assert len(found) == N_FILES  # README.txt skipped


def test_pil_images_and_tensors_match_the_files(
    model_file: Path, png_folder: Path, test_images: vb.ImageDataset
) -> None:
    model = vb.load_model(model_file)
    files = _files(png_folder)[:5]
    images = test_images.images[:5]  # (5, 1, 28, 28) uint8
    by_file = vb.predict(model, files, top_k=2)
    pil_gray = [Image.open(f) for f in files]
    pil_rgb = [Image.open(f).convert("RGB") for f in files]
    as_inputs = {
        "pil gray": vb.predict(model, pil_gray, top_k=2),
        "pil rgb": vb.predict(model, pil_rgb, top_k=2),
        "uint8 batch": vb.predict(model, images, top_k=2),
        "float batch": vb.predict(model, images.float() / 255, top_k=2),
        "uint8 images": vb.predict(model, list(images), top_k=2),
        "rgb tensor": vb.predict(model, images.expand(-1, 3, -1, -1), top_k=2),
    }
    for kind, found in as_inputs.items():
        for a, b in zip(found, by_file, strict=True):
            assert a.top_indices == b.top_indices, kind
            assert a.top_probabilities == pytest.approx(b.top_probabilities, abs=1e-5), kind
    assert [p.source for p in as_inputs["uint8 batch"]] == [f"tensor[{i}]" for i in range(5)]
    assert as_inputs["pil gray"][0].source == str(files[0])


def test_images_are_resized_and_converted_to_the_trained_shape(tmp_path: Path) -> None:
    path = _save_plain(
        tmp_path / "rgb.pt", classes=["a", "b", "c", "d"], stats=[[0.5] * 3, [0.25] * 3],
        image_shape=[3, 32, 32],
    )  # fmt: skip
    model = vb.load_model(path)
    gray = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 45, 61), np.uint8))
    Image.fromarray(gray[0].numpy()).save(tmp_path / "gray.png")
    (found,) = vb.predict(model, tmp_path / "gray.png", top_k=4)
    # (1, 45, 61) gray -> (3, 45, 61) -> (3, 32, 32): the trained input of this model.
    x = TF.resize(gray.expand(3, -1, -1), [32, 32], InterpolationMode.BILINEAR, antialias=True)
    with torch.no_grad():
        expected = model(vb.data.normalize(x[None], (0.5,) * 3, (0.25,) * 3)).softmax(1)[0]
    assert found.top_probabilities == pytest.approx(expected.sort(descending=True).values.tolist())


def test_top_k_lists_the_most_probable_classes_in_order(
    model_file: Path, test_images: vb.ImageDataset
) -> None:
    model = vb.load_model(model_file)
    found = vb.predict(model, test_images.images[:8], top_k=10)
    expected = _reference_probabilities(model, test_images.images[:8])
    for p, row in zip(found, expected, strict=True):
        values, indices = row.sort(descending=True)
        assert list(p.top_indices) == indices.tolist()
        assert list(p.top_probabilities) == pytest.approx(values.tolist(), abs=1e-6)
        assert p.top_labels == tuple(test_images.classes[i] for i in p.top_indices)
        assert (p.index, p.label, p.probability) == (
            p.top_indices[0], p.top_labels[0], p.top_probabilities[0]
        )  # fmt: skip
        assert sorted(p.top_probabilities, reverse=True) == list(p.top_probabilities)


def test_a_model_without_class_names_is_labelled_by_index_and_says_so(tmp_path: Path) -> None:
    path = _save_plain(tmp_path / "nameless.pt", image_shape=[3, 32, 32])
    with pytest.warns(UserWarning, match="no class names"):
        found = vb.predict(path, torch.zeros(2, 3, 32, 32, dtype=torch.uint8), top_k=2)
    assert [p.label for p in found] == [str(p.index) for p in found]
    assert found[0].top_labels == tuple(str(i) for i in found[0].top_indices)


def test_a_plain_model_predicts_with_its_fit_stats(test_images: vb.ImageDataset) -> None:
    torch.manual_seed(0)
    model = vb.simple_cnn(in_channels=1, image_size=28).eval()
    card = vb.model_card(model)
    assert card is not None
    attach_card(model, card.replace(mean=(0.3,), std=(0.4,)))  # what fit() sets
    with pytest.warns(UserWarning, match="no class names"):
        (found,) = vb.predict(model, test_images.images[:1], top_k=10)
    with torch.no_grad():
        expected = model(vb.data.normalize(test_images.images[:1], (0.3,), (0.4,))).softmax(1)
    assert found.top_probabilities == pytest.approx(expected[0].sort(descending=True).values)


def test_a_file_that_is_not_an_image_is_named_in_the_error(
    model_file: Path, png_folder: Path, tmp_path: Path
) -> None:
    fake = tmp_path / "holiday.png"
    fake.write_text("these are words, not pixels")
    with pytest.raises(ValueError, match=r"holiday\.png.*not an image"):
        vb.predict(model_file, [_files(png_folder)[0], fake])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match=r"notes\.txt.*not an image"):
        vb.predict(model_file, text)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"top_k": 0}, ValueError, "top_k must be a positive int"),
        ({"top_k": 11}, ValueError, "top_k=11 is more than the model's 10 classes"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ({"device": "tpu"}, ValueError, "unknown device"),
    ],
)
def test_bad_arguments_are_one_clear_error(
    model_file: Path,
    test_images: vb.ImageDataset,
    kwargs: dict[str, object],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        vb.predict(model_file, test_images.images[:1], **kwargs)  # type: ignore[arg-type]


def test_bad_inputs_are_one_clear_error(model_file: Path, tmp_path: Path) -> None:
    model = vb.load_model(model_file)
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        vb.predict(model, tmp_path / "missing.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        vb.predict(model, tmp_path / "empty")
    with pytest.raises(ValueError, match="float values in"):
        vb.predict(model, torch.full((1, 28, 28), 255.0))
    with pytest.raises(ValueError, match="pass an image"):
        vb.predict(model, torch.zeros(28, 28))
    with pytest.raises(ValueError, match="permute"):
        vb.predict(model, torch.zeros(28, 28, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="int64"):
        vb.predict(model, torch.zeros(1, 28, 28, dtype=torch.int64))
    with pytest.raises(TypeError, match="ndarray"):
        vb.predict(model, [np.zeros((1, 28, 28))])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at least one input"):
        vb.predict(model, [])


# visionblocks predict


def test_cli_predict_prints_a_table_and_writes_csv(
    model_file: Path, png_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "predictions.csv"
    code = main(["predict", str(model_file), str(png_folder), "--top-k", "2", "--csv", str(out)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["image", "class", "probability", "top", "2"]
    expected = vb.predict(model_file, png_folder, top_k=2)
    assert len(lines) == 1 + N_FILES + 1  # header, rows, "wrote ..."
    assert lines[1].startswith(expected[0].source)
    assert f"{expected[0].probability:.1%}" in lines[1]
    with out.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["image"] for r in rows] == [p.source for p in expected]
    assert [int(r["index_2"]) for r in rows] == [p.top_indices[1] for p in expected]
    assert float(rows[0]["probability"]) == pytest.approx(expected[0].probability, abs=1e-6)


def test_cli_predict_notes_missing_class_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _save_plain(tmp_path / "nameless.pt", image_shape=[3, 32, 32])
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "red.png")
    assert main(["predict", str(path), str(tmp_path / "red.png")]) == 0
    out = capsys.readouterr().out
    assert "stores no class names" in out
    assert str(tmp_path / "red.png") in out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["missing.png"], "missing.png"),
        (["IMAGES", "--top-k", "0"], "top_k must be a positive int"),
        (["IMAGES", "--top-k", "20"], "more than the model's 10 classes"),
    ],
)
def test_cli_predict_errors_are_one_line(
    model_file: Path,
    png_folder: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    match: str,
) -> None:
    argv = [str(png_folder) if a == "IMAGES" else a for a in argv]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["predict", str(model_file), *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("visionblocks predict: error:")
    assert match in err
    assert "\n" not in err


def test_cli_predict_without_a_model_file_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["predict", str(tmp_path / "model.pt"), "x.png"]) == 1
    assert "visionblocks train --out DIR" in capsys.readouterr().err


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(tmp_path: Path) -> None:
    path = _save_plain(tmp_path / "m.pt", classes=list("abcd"), image_shape=[3, 32, 32])
    pixels = np.random.default_rng(1).integers(0, 256, (32, 32), np.uint8)
    Image.fromarray(pixels.astype(np.uint16) * 257).save(tmp_path / "deep.png")
    (from_file,) = vb.predict(path, tmp_path / "deep.png", top_k=4)
    (from_tensor,) = vb.predict(path, torch.from_numpy(pixels)[None], top_k=4)
    assert from_file.top_probabilities == pytest.approx(from_tensor.top_probabilities, abs=1e-6)
