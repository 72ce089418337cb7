"""The command line on a multi-label labels file: train, eval and predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

import visionblocks as vb
from visionblocks._cli.predict import prediction_table
from visionblocks.cli import main
from visionblocks.inference import Prediction

FOOTWEAR, TOPS = (5, 7, 9), (0, 2, 4, 6)


def write_tags(folder: Path, count: int) -> Path:
    """Sample images as PNGs, tagged ``footwear``/``top``/``bag`` (or nothing) in labels.csv."""
    data = vb.load_dataset("sample")
    rows = ["image,tags"]
    for i in range(count):
        label = int(data.labels[i])
        Image.fromarray(data.images[i, 0].numpy(), mode="L").save(folder / f"{i}.png")
        tags = (
            ["footwear"] * (label in FOOTWEAR) + ["top"] * (label in TOPS) + ["bag"] * (label == 8)
        )
        rows.append(f"{i}.png,{' '.join(tags)}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder / "labels.csv"


def test_train_eval_and_predict_a_multi_label_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = write_tags(tmp_path, 120)
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(labels), "--model", "simple_cnn", "--epochs", "1",
            "--batch-size", "32", "--precision", "fp32", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    # Catches the run treated as multi-class (a confusion matrix of 3 x 2 x 2 counts, no mAP).
    assert metrics["task"] == "multilabel"
    assert 0 <= metrics["val_map"] <= 1
    assert f"val mAP {metrics['val_map']:.4f}" in printed
    assert not (out / "confusion.png").exists()
    card = vb.model_file.read_model_file(out / "model.pt").card
    assert card.task == "multilabel"
    assert card.classes == ("bag", "footwear", "top")
    assert card.thresholds == (0.5, 0.5, 0.5)

    assert main(["eval", str(out / "model.pt"), "--precision", "fp32"]) == 0
    assert f"mAP {metrics['val_map']:.4f}" in capsys.readouterr().out

    images = [str(tmp_path / f"{i}.png") for i in range(4)]
    assert main(["predict", str(out / "model.pt"), *images, "--csv", str(tmp_path / "p.csv")]) == 0
    with (tmp_path / "p.csv").open() as f:
        rows = list(csv.DictReader(f))
    found = vb.predict(out / "model.pt", images)
    assert [row["labels"] for row in rows] == [" ".join(p.labels) for p in found]
    assert [float(row["top"]) for row in rows] == pytest.approx(
        [p.probabilities[2] for p in found], abs=1e-6
    )


def test_the_prediction_table_lists_each_image_s_labels() -> None:
    tagged = Prediction("a.png", 0, "cat", 0.9, (0,), ("cat",), (0.9,), (0.9, 0.1, 0.6),
                        "multilabel", (0, 2), ("cat", "sofa"), (0.9, 0.6))  # fmt: skip
    empty = Prediction("b.png", 1, "dog", 0.3, (1,), ("dog",), (0.3,), (0.1, 0.3, 0.2),
                       "multilabel")  # fmt: skip
    assert prediction_table([tagged, empty]).splitlines() == [
        "image  labels (at or above their thresholds)",
        "a.png  cat 90.0%, sofa 60.0%",
        "b.png  -",
    ]
