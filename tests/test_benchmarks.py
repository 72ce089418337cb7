"""Smoke tests of the benchmark scripts on small data (their numbers live in docs/speed.rst)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.slow
def test_time_to_accuracy_runs_on_cifar10_files(
    tmp_path: Path, write_cifar10: Callable[..., dict[str, np.ndarray]]
) -> None:
    # The CIFAR-10 path (what the GPU run uses), on files in CIFAR's exact format.
    write_cifar10(tmp_path / "data", per_batch=64)
    report = tmp_path / "report.json"
    command = [
        sys.executable, str(BENCHMARKS / "time_to_accuracy.py"), "--dataset", "cifar10",
        "--root", str(tmp_path / "data"), "--sides", "lab-simple_cnn", "fast",
        "--epochs", "1", "--max-epochs", "1", "--targets", "0", "0.99", "--threads", "1",
        "--json", str(report),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    runs = result["runs"]
    assert set(runs) == {"lab-simple_cnn", "fast"}
    for per_seed in runs.values():
        assert list(per_seed) == ["0"]  # --seeds' default: one run, seed 0
        assert len(per_seed["0"]["evals"]) == 1
        assert per_seed["0"]["images_per_second"] > 0
    # Random labels: 0% is reached by every side's first evaluation, 99% by none. (A 5% target
    # was flaky: on 64 random-label test images a side can score 3/64.)
    ratios = result["ratios"]
    assert ratios["fast vs lab-simple_cnn to 99%, seed 0"] == "fast did not reach 99%: no ratio"
    reached = ratios["fast vs lab-simple_cnn to 0%, seed 0"]
    assert reached.endswith("x")
    assert not reached.startswith(">=")
    # The unit: the recipe's seconds to a target over one lab epoch's seconds.
    fast, lab = runs["fast"]["0"]["evals"][0], runs["lab-simple_cnn"]["0"]["evals"][0]
    in_lab_epochs = result["lab_epochs"]["fast to 0%"]
    assert in_lab_epochs["per_seed"] == [pytest.approx(fast[1] / lab[1])]
    assert result["lab_epochs"]["fast to 99%"]["lab_epochs"] is None
    efficiency = result["efficiency"]
    assert 0 < efficiency["achieved"] < efficiency["peak"]
    assert "speed-up to 0%, fast vs lab-simple_cnn" in done.stdout
    assert "fast to 0%: seconds to 0% / seconds of one lab epoch = " in done.stdout
