"""``visionblocks inspect`` and the warnings ``visionblocks train`` prints about its splits."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import error_of
from PIL import Image

from visionblocks._cli._common import load_splits
from visionblocks._cli.inspect import split_warnings
from visionblocks.cli import main
from visionblocks.data import inspect_data, load_dataset


def write_folder(root: Path, per_class: dict[str, dict[int, int]]) -> Path:
    """``root/<split>/<class>/NNNN.png``: ``per_class[split][k]`` sample images of class k."""
    sample = load_dataset("sample", in_memory=True)
    used = dict.fromkeys(range(10), 0)
    for split, counts in per_class.items():
        for k, count in counts.items():
            folder = root / split / sample.classes[k]
            folder.mkdir(parents=True, exist_ok=True)
            images = sample.images[sample.labels == k][used[k] : used[k] + count]
            for i, image in enumerate(images):
                Image.fromarray(image[0].numpy()).save(folder / f"{i:04d}.png")
            used[k] += count
    return root


@pytest.fixture
def leaky(tmp_path: Path) -> Path:
    """train/ 30 Bags and 3 Sandals (12:1 once val is held out), a train image copied into test/."""
    root = write_folder(tmp_path / "leaky", {"train": {8: 30, 5: 3}, "test": {8: 4, 5: 4}})
    shutil.copy(root / "train/Bag/0007.png", root / "test/Bag/copy.png")
    return root


def test_inspect_prints_the_report_and_writes_json_and_plot(
    leaky: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, plot = tmp_path / "report.json", tmp_path / "report.png"
    assert main(["inspect", str(leaky), "--json", str(out), "--plot", str(plot)]) == 0
    printed = capsys.readouterr().out
    # train's split: 20% of each class of train/ held out, as `visionblocks train` does.
    expected = inspect_data(leaky, val_fraction=0.2)
    assert json.loads(out.read_text()) == json.loads(json.dumps(expected.to_dict()))
    assert [s.name for s in expected.splits] == ["train", "val", "test"]
    assert str(expected) in printed
    assert f"inspected {expected.images} images in " in printed
    assert "test/Bag/copy.png" in printed
    assert plot.stat().st_size > 1000


def test_val_fraction_zero_reports_train_as_one_split(
    leaky: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["inspect", str(leaky), "--val-fraction", "0"]) == 0
    assert "2 split(s) (train 33, test 9)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["sample", "--val-fraction", "0.2"], "built-in dataset"),
        (["{folder}", "--val-fraction", "1.5"], "must be in [0, 1)"),
        (["{folder}/absent"], "unknown dataset"),
        (["sample", "--json", "{folder}"], "--json"),
    ],
)
def test_inspect_errors_are_one_line(
    leaky: Path, capsys: pytest.CaptureFixture[str], argv: list[str], match: str
) -> None:
    err = error_of(["inspect", *(a.format(folder=leaky) for a in argv)], capsys)
    assert match in err


def test_a_folder_with_val_refuses_val_fraction(
    leaky: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(leaky / "test", leaky / "val")
    assert "own val/" in error_of(["inspect", str(leaky), "--val-fraction", "0.3"], capsys)


def test_train_warns_about_imbalance_and_leakage(
    leaky: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--dataset", str(leaky), "--model", "simple_cnn", "--epochs", "1",
            "--precision", "fp32", "--no-progress", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    warnings = [line for line in capsys.readouterr().out.splitlines() if "inspect" in line]
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("warning: train is imbalanced 12.0:1 (Bag 24 images, Sandal 2)")
    assert warnings[1].startswith("warning: 1 test image(s) are also in train or val")


def test_split_warnings_control_and_streamed_data(leaky: Path) -> None:
    # The control: the same folder without the copy and with balanced classes warns of nothing.
    (leaky / "test/Bag/copy.png").unlink()
    for path in sorted((leaky / "train/Bag").glob("*.png"))[3:]:
        path.unlink()
    assert split_warnings(load_splits(str(leaky), None, val_fraction=0.4)) == []
    # Streamed splits are not read a second time: no warning even with a copy.
    shutil.copy(leaky / "train/Bag/0000.png", leaky / "test/Bag/copy.png")
    splits = load_splits(str(leaky), None, val_fraction=0.4)
    assert len(split_warnings(splits)) == 1
    streamed = load_dataset(leaky, "test", in_memory=False)
    splits.test = streamed
    assert split_warnings(splits) == []


def test_a_built_in_dataset_from_root_with_a_test_image_from_train(
    tmp_path: Path,
    write_cifar10: Callable[..., dict[str, np.ndarray]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    written = write_cifar10(tmp_path, per_batch=20)
    test_file = tmp_path / "cifar-10-batches-py/test_batch"
    batch = pickle.loads(test_file.read_bytes())
    batch[b"data"][3] = written["data_batch_2"][5]  # train image 25 (batch 2, row 5)
    test_file.write_bytes(pickle.dumps(batch))
    out = tmp_path / "report.json"
    assert main(["inspect", "cifar10", "--root", str(tmp_path), "--json", str(out)]) == 0
    assert "1 test image(s) are also in train" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["splits"]["train"]["modes"] == {"RGB": 100}
    [group] = report["duplicates"]
    assert [(r["split"], r["index"]) for r in group["images"]] == [("train", 25), ("test", 3)]


@pytest.mark.slow  # writes 200 PNGs and loads full Fashion-MNIST: about 30 s
def test_the_benchmark_runs_on_a_small_folder(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inspect.py"
    command = [sys.executable, str(script), "--images", "200", "--repeats", "1", "--out", "-",
               "--folder", str(tmp_path / "pngs")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "A folder of 200 Fashion-MNIST PNGs" in done.stdout
    assert "found: 0 duplicate groups, 0 warnings" in done.stdout
    assert "CPU cores" in done.stdout  # the machine line, with the cores it may use
    assert "usable by this process" in done.stdout
