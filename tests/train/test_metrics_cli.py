"""``visionblocks train --metrics NAME,... --early-stop N --monitor KEY``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from visionblocks.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

sys.path.insert(0, str(Path(__file__).parents[1] / "cli"))
from cli_helpers import error_of  # the CLI tests' helper, beside them

QUICK = [
    "--limit",
    "200",
    "--precision",
    "fp32",
    "--no-progress",
    "--model",
    "simple_cnn",
    "--model-arg",
    "widths=(4, 8, 8)",
    "--model-arg",
    "hidden=16",
    "--batch-size",
    "50",
]


def test_train_records_the_metrics_and_early_stops_on_one(tmp_path: Path) -> None:
    argv = ["train", *QUICK, "--epochs", "3", "--metrics", "macro_f1,per_class_recall",
            "--early-stop", "1", "--monitor", "val_macro_f1", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    rows = list(csv.DictReader((tmp_path / "history.csv").read_text().splitlines()))
    assert rows
    header = rows[0].keys()
    # Catches --metrics parsed but not passed to fit (no columns), or a lost class.
    assert {"val_macro_f1", *(f"val_recall_{c}" for c in range(10))} <= header
    config = tomllib.loads((tmp_path / "config.toml").read_text())
    assert config["metrics"] == "macro_f1,per_class_recall"  # --config repeats the run
    assert config["monitor"] == "val_macro_f1"
    assert config["fit"]["metrics"] == ["macro_f1", "per_class_recall"]
    scores = [float(r["val_macro_f1"]) for r in rows]
    # EarlyStopping(patience=1) on val_macro_f1 (higher is better): the run stops at the
    # first epoch that does not beat the best so far, or runs all 3.
    worse = next((i for i in range(1, len(scores)) if scores[i] <= max(scores[:i])), None)
    assert len(rows) == (3 if worse is None else worse + 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics", "macro_f2"], "--metrics has an unknown name 'macro_f2' (did you mean"),
        (["--monitor", "val_acc"], "--monitor names what --early-stop watches"),
    ],
)
def test_bad_metric_options_fail_before_any_data_is_read(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-folder"  # reading the data would fail with another error
    err = error_of(["train", "--dataset", str(missing), *argv], capsys)
    assert message in err


def test_an_unknown_monitor_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", *QUICK, "--epochs", "1", "--early-stop", "1", "--monitor", "val_macro_f1",
            "--out", str(tmp_path)]  # fmt: skip
    err = error_of(argv, capsys)
    assert "EarlyStopping monitors 'val_macro_f1', which this run does not record" in err
    assert not (tmp_path / "last.pt").exists()  # no epoch ran
