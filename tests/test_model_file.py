"""The model card and model files: one card, written by fit/save_checkpoint, read everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import visionblocks as vb
from visionblocks.cli import main
from visionblocks.model_file import (
    STATS_ATTR,
    CheckpointError,
    ModelCard,
    card_of,
    model_stats,
    read_model_file,
)

SAMPLE_LIMIT = 400
TINY = {"num_classes": 10, "in_channels": 1, "image_size": 28, "widths": (4, 8, 8), "hidden": 16}
# What describes the network and its inputs; mean/std are the training data's own.
_SHARED = ("builder", "builder_kwargs", "classes", "image_shape", "resize", "task")


def _card(path: Path) -> ModelCard:
    card = card_of(vb.load_model(path))
    assert card is not None
    return card


@pytest.fixture(scope="module")
def three_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same network saved by the CLI, by BestCheckpoint and by save_checkpoint."""
    folder = tmp_path_factory.mktemp("files")
    args = [f"--model-arg={k}={v}" for k, v in TINY.items() if k not in ("num_classes",
            "in_channels", "image_size")]  # fmt: skip
    code = main(["train", "--model", "simple_cnn", *args, "--epochs", "1", "--limit",
                 str(SAMPLE_LIMIT), "--out", str(folder / "cli"), "--seed", "0"])  # fmt: skip
    assert code == 0
    train = vb.load_dataset("sample")
    model = vb.simple_cnn(**TINY)
    best = vb.BestCheckpoint(folder / "best.pt", monitor="val_acc")
    vb.fit(model, train, vb.load_dataset("sample", "test"), epochs=1, batch_size=500,
           callbacks=[best], progress=False, seed=0, checkpoint_dir=folder)  # fmt: skip
    api = vb.save_checkpoint(folder / "api.pt", model)
    return {"cli": folder / "cli" / "model.pt", "best": best.path, "api": api,
            "last": folder / vb.train.LAST_CHECKPOINT}  # fmt: skip


def test_every_model_file_rebuilds_with_the_same_card(three_files: dict[str, Path]) -> None:
    cards = {name: _card(path) for name, path in three_files.items()}
    reference = cards["cli"]
    assert reference.builder == "simple_cnn"
    assert reference.classes is not None
    assert len(reference.classes) == 10
    assert reference.image_shape == (1, 28, 28)
    for name, card in cards.items():
        for field in _SHARED:
            assert getattr(card, field) == getattr(reference, field), (name, field)
        assert card.stats is not None, name
    train = vb.load_dataset("sample")
    for name in ("best", "api", "last"):
        assert cards[name].mean == pytest.approx(train.mean), name
        assert cards[name].std == pytest.approx(train.std), name
    # How it was trained travels too: fit's facts, and the CLI's evaluation.
    assert cards["api"].training["epochs"] == 1
    assert cards["best"].training["epoch"] == 1
    assert "test_accuracy" in cards["cli"].training


def test_a_rebuilt_model_predicts_what_the_saved_one_did(three_files: dict[str, Path]) -> None:
    saved = read_model_file(three_files["api"])
    model = vb.load_model(three_files["api"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved.state_dict[key]), key


def test_fit_keeps_statistics_in_the_card_only() -> None:
    model = vb.simple_cnn(**TINY)
    train = vb.load_dataset("sample")
    vb.fit(model, train, epochs=1, batch_size=500, progress=False, seed=0)
    assert not hasattr(model, STATS_ATTR)
    stats = model_stats(model)
    assert stats is not None
    assert stats[0] == pytest.approx(train.mean)
    assert stats[1] == pytest.approx(train.std)


def test_the_old_stats_attribute_is_read_with_a_deprecation_warning() -> None:
    model = torch.nn.Linear(2, 2)
    setattr(model, STATS_ATTR, ((0.5,), (0.25,)))
    with pytest.warns(DeprecationWarning, match="card"):
        assert model_stats(model) == ((0.5,), (0.25,))


def test_a_new_head_is_saved_with_its_number_of_classes(tmp_path: Path) -> None:
    model = vb.resnet20(num_classes=10)
    model.reset_classifier(3)
    model = vb.load_model(vb.save_checkpoint(tmp_path / "m.pt", model))
    assert model.num_classes == 3
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("builder_kwargs", {"num_classes": 1e12}, "builder_kwargs.num_classes"),
        ("image_shape", [3, 0, 0], "image_shape"),
        ("std", [0.0], "std"),
        ("mean", [float("nan")], "mean"),
        ("classes", ["a", 3], "classes"),
        ("task", "detection", "task"),
    ],
)
def test_a_hand_edited_card_is_one_line_naming_the_field(
    tmp_path: Path, field: str, value: object, named: str
) -> None:
    facts = {"stats": [[0.3], [0.4]], "image_shape": [1, 28, 28]}
    path = vb.save_checkpoint(tmp_path / "m.pt", vb.simple_cnn(**TINY), extra=facts)
    raw = torch.load(path, weights_only=True)
    raw["card"][field] = value
    torch.save(raw, path)
    with pytest.raises(CheckpointError) as caught:
        vb.load_model(path)
    message = str(caught.value)
    assert f"card field {named} " in message
    assert "m.pt" in message
    assert "\n" not in message


def test_a_file_of_visionblocks_0_2_still_loads(tmp_path: Path) -> None:
    source = vb.resnet20(num_classes=2, in_channels=1)
    old = {
        "format": "visionblocks-checkpoint", "version": 1, "model": source.state_dict(),
        "model_name": "resnet20", "model_kwargs": {"num_classes": 2, "in_channels": 1},
        "classes": ["cat", "dog"], "stats": [[0.5], [0.25]], "image_shape": [1, 28, 28],
        "dataset": "pets", "seed": 3,
    }  # fmt: skip
    torch.save(old, tmp_path / "old.pt")
    card = _card(tmp_path / "old.pt")
    assert (card.builder, card.classes, card.stats, card.image_shape) == (
        "resnet20", ("cat", "dog"), ((0.5,), (0.25,)), (1, 28, 28)
    )  # fmt: skip
    assert card.training == {"dataset": "pets"}


def test_fit_on_a_dataloader_leaves_unknown_fields_unknown() -> None:
    images = torch.rand(64, 1, 28, 28)
    labels = torch.arange(64) % 10
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), 32)
    model = vb.simple_cnn(**TINY)
    vb.fit(model, loader, epochs=1, augment=None, progress=False, seed=0)
    card = card_of(model)
    assert card is not None
    assert (card.builder, card.classes, card.image_shape, card.stats) == (
        "simple_cnn", None, None, None
    )  # fmt: skip
    assert card.training["epochs"] == 1


def test_the_card_knows_every_resize_rule_the_data_implements(tmp_path: Path) -> None:
    from PIL import Image

    from visionblocks.data import RESIZE_RULES as IMPLEMENTED
    from visionblocks.model_file import RESIZE_RULES

    assert RESIZE_RULES == IMPLEMENTED

    class Seen(torch.nn.Module):
        """Records the batch predict gives it."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.x = x
            return torch.zeros(len(x), 2)

    # predict applies the card's rule: a crop-rule model sees the centre of a wide image.
    wide = torch.zeros(4, 12, dtype=torch.uint8)
    wide[:, 4:8] = 255  # a bright centre between dark sides
    Image.fromarray(wide.numpy()).save(tmp_path / "wide.png")
    for rule, darkest in (("shorter-side+center-crop", 1.0), ("squash", 0.0)):
        model = Seen()
        card = ModelCard(classes=("a", "b"), image_shape=(1, 4, 4), mean=(0.0,), std=(1.0,))
        vb.model_file.attach_card(model, card.replace(resize=rule))
        vb.predict(model, tmp_path / "wide.png", device="cpu")
        assert float(model.x.min()) == pytest.approx(darkest, abs=0.02), rule
