"""``predict``'s full probability vector and flip TTA; ``visionblocks predict --csv --tta``."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from PIL import Image

import visionblocks as vb
from visionblocks.cli import main
from visionblocks.model_file import attach_card

CLASSES = ("ant", "bee", "moth", "wasp")
STATS = ((0.5,), (0.25,))
N_IMAGES = 32


def _quadrant_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 1, 8, 8) uint8 noise with one bright 4x4 quadrant, and its index as the label.

    The mirror of an image of class 0 (top left) is one of class 1 (top right), so a model
    that learned them sees each image and its mirror as different classes.
    """
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.randint(0, 64, (n, 1, 8, 8), generator=generator)
    for i, k in enumerate(labels.tolist()):
        row, col = divmod(k, 2)
        bright = torch.randint(96, 192, (), generator=generator)
        images[i, 0, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4] += bright
    return images.to(torch.uint8), labels


def _model(classes: tuple[str, ...] = CLASSES) -> torch.nn.Module:
    """A small simple_cnn trained to tell the quadrants apart, its card naming ``classes``."""
    torch.manual_seed(0)
    model = vb.simple_cnn(num_classes=4, in_channels=1, image_size=8, widths=(4, 8, 8),
                          hidden=16, dropout=0.0)  # fmt: skip
    images, labels = _quadrant_images(512, seed=0)
    inputs = vb.data.normalize(images, *STATS)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):  # about 0.3 s on one core
        batch = torch.randint(0, len(labels), (64,))
        loss = torch.nn.functional.cross_entropy(model(inputs[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    card = vb.model_card(model)
    assert card is not None
    return attach_card(
        model.eval(),
        card.replace(classes=classes, image_shape=(1, 8, 8), mean=STATS[0], std=STATS[1]),
    )


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return _model()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    """Images the model was not trained on."""
    return _quadrant_images(N_IMAGES, seed=1)[0]


def _logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What the network computes on ``images`` as training fed them (by hand)."""
    with torch.no_grad():
        return model(vb.data.normalize(images, *STATS))


def _matrix(found: list[vb.Prediction]) -> torch.Tensor:
    return torch.tensor([p.probabilities for p in found])  # (N, K)


def test_the_model_sees_a_mirror_differently(model: torch.nn.Module, images: torch.Tensor) -> None:
    # The precondition of every TTA test below: a flip-invariant model would make them vacuous.
    plain, mirrored = _logits(model, images), _logits(model, images.flip(-1))
    assert not torch.allclose(plain, mirrored, atol=0.5)
    assert (plain.argmax(1) != mirrored.argmax(1)).any()


def test_probabilities_are_the_softmax_and_agree_with_the_top_k(
    model: torch.nn.Module, images: torch.Tensor
) -> None:
    found = vb.predict(model, images, top_k=3)
    matrix = _matrix(found)
    assert matrix.shape == (N_IMAGES, len(CLASSES))
    assert matrix.sum(1).tolist() == pytest.approx([1.0] * N_IMAGES, abs=1e-6)
    # The softmax of the logits, in class-index order (not sorted, not the top-k only).
    assert torch.allclose(matrix, _logits(model, images).softmax(1), atol=1e-6)
    for p in found:
        order = sorted(range(len(CLASSES)), key=lambda k: -p.probabilities[k])
        assert list(p.top_indices) == order[:3]
        assert p.top_probabilities == tuple(p.probabilities[k] for k in p.top_indices)
        assert p.probabilities[p.index] == p.probability
        assert p.label == CLASSES[p.index]
    # Not one class everywhere, so the agreement above says something.
    assert len({p.index for p in found}) > 1


def test_probabilities_stay_out_of_repr_and_str(model: torch.nn.Module) -> None:
    (p,) = vb.predict(model, torch.zeros(1, 8, 8, dtype=torch.uint8))
    assert repr(p).startswith("Prediction(source='tensor', index=")
    assert repr(p).endswith(f"top_probabilities=({p.probability!r},))")  # the last field
    assert str(p) == f"tensor: {p.label} ({p.probability:.1%})"
    # Built by hand with the seven fields of before: still a Prediction, with no vector.
    assert vb.Prediction("a.png", 0, "ant", 1.0, (0,), ("ant",), (1.0,)).probabilities == ()


def test_tta_is_the_softmax_of_the_logits_averaged_with_the_mirror(
    model: torch.nn.Module, images: torch.Tensor
) -> None:
    found = _matrix(vb.predict(model, images, tta=True))
    plain, mirrored = _logits(model, images), _logits(model, images.flip(-1))
    assert torch.allclose(found, ((plain + mirrored) / 2).softmax(1), atol=1e-6)
    # Neither the image alone nor the average of the two softmaxes (what evaluate does not do).
    assert not torch.allclose(found, plain.softmax(1), atol=1e-3)
    assert not torch.allclose(found, (plain.softmax(1) + mirrored.softmax(1)) / 2, atol=1e-3)


def test_tta_predicts_the_classes_evaluate_tta_counts(
    model: torch.nn.Module, images: torch.Tensor
) -> None:
    labels = torch.zeros(N_IMAGES, dtype=torch.int64)
    for tta in (False, True):
        result = vb.evaluate(model, (images, labels), tta=tta, device="cpu", precision="fp32")
        found = vb.predict(model, images, tta=tta, device="cpu")
        assert [p.index for p in found] == result.predictions.tolist(), f"tta={tta}"
    # TTA changes some predictions here, so the agreement above is about TTA.
    plain = [p.index for p in vb.predict(model, images)]
    assert plain != [p.index for p in vb.predict(model, images, tta=True)]


def test_tta_must_be_a_bool(model: torch.nn.Module) -> None:
    with pytest.raises(TypeError, match="tta must be True or False; got 'yes'"):
        vb.predict(model, torch.zeros(1, 8, 8), tta="yes")  # type: ignore[arg-type]


# visionblocks predict --csv --tta


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory, model: torch.nn.Module) -> Path:
    return vb.save_checkpoint(tmp_path_factory.mktemp("model") / "model.pt", model)


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory: pytest.TempPathFactory, images: torch.Tensor) -> Path:
    folder = tmp_path_factory.mktemp("pngs")
    for i, image in enumerate(images[:8]):
        Image.fromarray(image[0].numpy()).save(folder / f"{i}.png")
    return folder


def _csv(
    path: Path, inputs: Path, out: Path, *flags: str
) -> tuple[list[str], list[dict[str, str]]]:
    assert main(["predict", str(path), str(inputs), "--csv", str(out), *flags]) == 0
    with out.open() as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def test_csv_has_one_probability_column_per_class_after_the_others(
    model_path: Path, png_folder: Path, tmp_path: Path
) -> None:
    header, rows = _csv(model_path, png_folder, tmp_path / "p.csv", "--top-k", "2")
    assert header == ["image", "index", "class", "probability", "index_2", "class_2",
                      "probability_2", *CLASSES]  # fmt: skip
    expected = vb.predict(model_path, png_folder, top_k=2)
    assert len(rows) == len(expected) == 8
    for row, p in zip(rows, expected, strict=True):
        values = [float(row[c]) for c in CLASSES]
        assert sum(values) == pytest.approx(1.0, abs=1e-5)
        assert values == pytest.approx(p.probabilities, abs=1e-6)
        assert float(row[row["class"]]) == pytest.approx(float(row["probability"]), abs=1e-6)


def test_csv_tta_writes_the_tta_probabilities(
    model_path: Path, png_folder: Path, tmp_path: Path
) -> None:
    _, plain = _csv(model_path, png_folder, tmp_path / "plain.csv")
    _, tta = _csv(model_path, png_folder, tmp_path / "tta.csv", "--tta")
    table = torch.tensor([[float(r[c]) for c in CLASSES] for r in tta])  # (N, K)
    assert not torch.allclose(table, torch.tensor([[float(r[c]) for c in CLASSES] for r in plain]),
                              atol=1e-3)  # fmt: skip
    expected = vb.predict(model_path, png_folder, tta=True)
    assert [r["class"] for r in tta] == [p.label for p in expected]
    assert torch.allclose(table, _matrix(expected), atol=1e-6)


def test_csv_columns_of_a_class_named_like_a_column_stay_apart(
    tmp_path: Path, png_folder: Path
) -> None:
    path = vb.save_checkpoint(tmp_path / "model.pt", _model(("image", "class", "moth", "wasp")))
    header, rows = _csv(path, png_folder, tmp_path / "p.csv")
    assert header == ["image", "index", "class", "probability", "probability of image",
                      "probability of class", "moth", "wasp"]  # fmt: skip
    assert rows[0]["image"].endswith(".png")
    assert sum(float(rows[0][c]) for c in header[4:]) == pytest.approx(1.0, abs=1e-5)
