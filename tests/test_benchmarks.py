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
    for run in runs.values():
        assert len(run["evals"]) == 1
        assert run["images_per_second"] > 0
    # Random labels: 0% is reached by every side's first evaluation, 99% by none. (A 5% target
    # was flaky: on 64 random-label test images a side can score 3/64.)
    ratios = result["ratios"]
    assert ratios["fast vs lab-simple_cnn to 99%"] == "fast did not reach 99%: no ratio"
    reached = ratios["fast vs lab-simple_cnn to 0%"]
    assert reached.endswith("x")
    assert not reached.startswith(">=")
    efficiency = result["efficiency"]
    assert 0 < efficiency["achieved"] < efficiency["peak"]
    assert "speed-up to 0%, fast vs lab-simple_cnn" in done.stdout
