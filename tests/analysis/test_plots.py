"""The plots: each returns a Figure, writes a real PNG, and shows what it says it shows."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from visionblocks import resnet20, simple_cnn
from visionblocks.analysis import (
    grad_cam,
    plot_confusion_matrix,
    plot_feature_maps,
    plot_filters,
    plot_grad_cam,
    plot_history,
    plot_misclassified,
)

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.figure import Figure  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # (w, h)


class FakeHistory:
    def __init__(self, with_val: bool) -> None:
        self.data = {
            "epoch": [1.0, 2.0, 3.0],
            "train_loss": [1.2, 0.8, 0.6],
            "train_acc": [0.55, 0.7, 0.78],
        }
        if with_val:
            self.data |= {"val_loss": [1.0, 0.9, 0.7], "val_acc": [0.6, 0.68, 0.74]}
            self.data["lr"] = [0.1, 0.05, 0.01]

    def to_dict(self) -> dict[str, list[float]]:
        return self.data


@pytest.mark.parametrize("with_val", [False, True])
def test_history_curves(tmp_path: Path, with_val: bool) -> None:
    fig = plot_history(FakeHistory(with_val), save=tmp_path / "history.png")
    assert isinstance(fig, Figure)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == (["Loss", "Accuracy", "Learning rate"] if with_val else ["Loss", "Accuracy"])
    loss_lines = fig.axes[0].get_lines()
    assert [line.get_label() for line in loss_lines] == (
        ["train", "val"] if with_val else ["train"]
    )
    assert list(loss_lines[0].get_ydata()) == [1.2, 0.8, 0.6]
    assert _png(tmp_path / "history.png")[0] > 300


def test_history_needs_its_keys() -> None:
    class Broken:
        def to_dict(self) -> dict[str, list[float]]:
            return {"epoch": [1.0], "train_loss": [1.0]}

    with pytest.raises(ValueError, match="train_acc"):
        plot_history(Broken())


def test_confusion_matrix(tmp_path: Path) -> None:
    matrix = torch.tensor([[8, 2, 0], [1, 9, 0], [0, 3, 7]])
    fig = plot_confusion_matrix(matrix, ["cat", "dog", "bird"], save=tmp_path / "cm.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cat", "dog", "bird"]
    assert ax.get_xlabel() == "predicted"
    assert ax.get_ylabel() == "true"
    # Rows are true classes: the cell (row 2, col 1) shows 3 of 10 birds called dogs.
    texts = {
        (round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts
    }
    assert texts[(2, 1)] == "3\n30%"
    assert "accuracy 80.0%" in ax.get_title()
    _png(tmp_path / "cm.png")
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        plot_confusion_matrix(matrix, ["a", "b"])


def test_misclassified_gallery(tmp_path: Path) -> None:
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])
    logits = torch.eye(3)[torch.tensor([0, 2, 2, 1, 1, 0])]
    fig = plot_misclassified(images, targets, logits, ["a", "b", "c"], save=tmp_path / "m.png")
    shown = [ax.get_title() for ax in fig.axes if ax.has_data()]
    assert shown == ["b -> c", "a -> b", "c -> a"]
    assert fig.get_suptitle().startswith("3 of 6 misclassified")
    _png(tmp_path / "m.png")


def test_filters_grid(tmp_path: Path) -> None:
    model = simple_cnn()
    fig = plot_filters(model, ncols=8, save=tmp_path / "filters.png")
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 32
    # Colour filters are drawn as RGB, each one the min-max scaled weights of that filter.
    weight = model.features[0][0].weight.detach()[5].permute(1, 2, 0)
    expected = (weight - weight.min()) / (weight.max() - weight.min())
    assert torch.allclose(torch.as_tensor(images[5].get_array()), expected, atol=1e-6)
    _png(tmp_path / "filters.png")
    # Grayscale filters: diverging map centred on zero.
    fig = plot_filters(simple_cnn(in_channels=1, image_size=28))
    assert fig.axes[0].images[0].get_clim() == pytest.approx(
        (-fig.axes[0].images[0].get_clim()[1], fig.axes[0].images[0].get_clim()[1])
    )


def test_feature_maps_and_grad_cam_overlay(tmp_path: Path) -> None:
    model = resnet20()
    image = torch.rand(3, 32, 32)
    fig = plot_feature_maps(model, image, "stem", max_maps=16, save=tmp_path / "maps.png")
    assert sum(bool(ax.images) for ax in fig.axes) == 17  # the input + 16 maps
    _png(tmp_path / "maps.png")

    x = torch.rand(2, 3, 32, 32)
    cams = grad_cam(model, x)
    fig = plot_grad_cam(x, cams, titles=["one", "two"], save=tmp_path / "cam.png")
    assert [ax.get_title() for ax in fig.axes] == ["one", "Grad-CAM", "two", "Grad-CAM"]
    overlay = fig.axes[1].images[1]
    assert torch.allclose(torch.as_tensor(overlay.get_array()), cams[0])
    _png(tmp_path / "cam.png")
    with pytest.raises(ValueError, match="2 images but 1 heatmaps"):
        plot_grad_cam(x, cams[:1])


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install visionblocks\[viz\]"):
        plot_filters(simple_cnn())
