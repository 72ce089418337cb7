"""docs/speed.rst's results come from the committed benchmark report, not from typing."""

from __future__ import annotations

import importlib.util
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
    reports = script.load_reports()
    # Both kinds of machine were measured; a report lost or renamed drops its table.
    assert list(reports) == ["with AMX", "without AMX", "on an NVIDIA H200"]
    # Catches a table edited by hand, or a new benchmark run without regenerating it.
    assert script.OUT.read_text() == script.render(reports), (
        "run .venv/bin/python docs/figures/make_speed_table.py"
    )


def test_the_ratios_quoted_in_prose_are_the_reports() -> None:
    reports = _script().load_reports()
    # Whitespace folded: a claim may wrap across lines.
    speed = " ".join((ROOT / "docs" / "speed.rst").read_text().split())
    readme = " ".join((ROOT / "README.md").read_text().split())
    amx = reports["with AMX"]["lab_epochs"]
    to93 = amx["fast to 93%"]
    to94 = amx["fast:fashion-mnist-94 to 94%"]
    assert f"93% in {to93['lab_epochs']:.2f} lab epochs" in speed
    assert f"94% in {to94['lab_epochs']:.1f} lab epochs" in speed
    assert f"in 2 epochs, {to93['lab_epochs']:.2f} of the" in readme
    assert f"in {to94['lab_epochs']:.1f} lab epochs" in readme
    # The targets, as the AMX report measured them (mean over its seeds).
    assert to93["lab_epochs"] <= 1.0
    assert to94["lab_epochs"] <= 3.0
    # Without AMX: the claims must say what was measured, targets missed included.
    plain = reports["without AMX"]["lab_epochs"]["fast to 93%"]
    reached = [r for r in plain["per_seed"] if r is not None]
    seeds = len(plain["per_seed"])
    ratios = f"{min(reached):.2f}-{max(reached):.2f} lab epochs"
    assert ratios in speed
    assert f"{len(reached)} of {seeds} seeds reach 93%" in speed
    assert f"2 epochs take {ratios}" in readme
    assert f"reach 93% for only {len(reached)} of {seeds} seeds" in readme
