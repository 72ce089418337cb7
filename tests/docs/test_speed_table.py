"""docs/speed.rst's results come from the committed benchmark report, not from typing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _script() -> ModuleType:
    path = ROOT / "docs" / "figures" / "make_speed_table.py"
    spec = importlib.util.spec_from_file_location("make_speed_table", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_table_is_the_report() -> None:
    script = _script()
    report = json.loads(script.REPORT.read_text())
    # Catches a table edited by hand, or a new benchmark run without regenerating it.
    assert script.OUT.read_text() == script.render(report), (
        "run .venv/bin/python docs/figures/make_speed_table.py"
    )


def test_the_ratios_quoted_in_prose_are_the_report() -> None:
    report = json.loads(_script().REPORT.read_text())
    to93 = report["lab_epochs"]["fast to 93%"]
    to94 = report["lab_epochs"]["fast:fashion-mnist-94 to 94%"]
    speed = (ROOT / "docs" / "speed.rst").read_text()
    readme = (ROOT / "README.md").read_text()
    assert f"93% in {to93['lab_epochs']:.2f} lab epochs" in speed
    assert f"94% in {to94['lab_epochs']:.1f} lab epochs" in speed
    assert f"in 2 epochs, {to93['lab_epochs']:.2f} of the" in readme
    assert f"in {to94['lab_epochs']:.1f} lab epochs" in readme
    # The targets, as the report measured them (mean over its seeds).
    assert to93["lab_epochs"] <= 1.0
    assert to94["lab_epochs"] <= 3.0
