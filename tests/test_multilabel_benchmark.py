"""Smoke test of benchmarks/multilabel.py on small data (its numbers: docs/imbalanced.rst)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "multilabel.py"


@pytest.mark.slow
def test_the_multilabel_benchmark_writes_its_table(tmp_path: Path) -> None:
    out = tmp_path / "multilabel.rst"
    command = [sys.executable, str(SCRIPT), "--dataset", "sample", "--train", "300", "--test",
               "100", "--epochs", "1", "--seeds", "0", "1", "--out", str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    # One row per metric, a column per seed, and the command that made it.
    assert text.count("   * - ") == 4
    assert "Seed 1 (%)" in text
    assert "``python benchmarks/multilabel.py --dataset sample" in text
    for line in done.stdout.splitlines()[:2]:
        assert line.startswith(("seed 0: mAP ", "seed 1: mAP "))
