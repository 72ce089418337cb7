"""Write docs/_generated/speed_results.rst: the results tables of docs/speed.rst, from the runs.

One table per kind of machine, each built from the JSON report of
``benchmarks/time_to_accuracy.py`` run there (``REPORTS``:
``benchmarks/results/lab_epochs-fashion-mnist-cpu*.json``), so that no number in it is
typed by hand: each side's accuracy and time after every validation, per seed, and each
recipe's time to its target in lab epochs (its seconds over the seconds of the first epoch
of the lab's pipeline, run in the same process), with mean and standard deviation over the
seeds. ``tests/docs/test_speed_table.py`` fails when the committed tables and the reports
disagree.

Run by hand from the repository root after a new benchmark run (instant)::

    .venv/bin/python docs/figures/make_speed_table.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
# The kinds of machine measured, each with its report, in the order the page shows them.
REPORTS = {
    "with AMX": RESULTS / "lab_epochs-fashion-mnist-cpu.json",
    "without AMX": RESULTS / "lab_epochs-fashion-mnist-cpu-noamx.json",
    "without AMX, for 94%": RESULTS / "lab_epochs-fashion-mnist-94-cpu-noamx.json",
    "on an NVIDIA H200": RESULTS / "lab_epochs-fashion-mnist-cuda.json",
}
REPORT = REPORTS["with AMX"]
OUT = ROOT / "docs" / "_generated" / "speed_results.rst"
LAB = "lab-simple_cnn"
LAB_LABEL = "lab's pipeline, ``simple_cnn``"
# Reports written before they recorded their recipes ran visionblocks 0.2's presets.
V2_PRESETS = {"fast": "fashion-mnist-v2", "fast:fashion-mnist-94": "fashion-mnist-94-v2"}
V2_EPOCHS = {"fast": 2, "fast:fashion-mnist-94": 5}


def target(side: str) -> str:
    """The accuracy a recipe side is measured to: 94% for the 94% preset, else 93%."""
    return "94%" if "-94" in side else "93%"


def side_preset(report: dict[str, Any], side: str) -> str:
    """The name of the preset a recipe side trained, as it is called today."""
    if report.get("recipes") is None:
        return V2_PRESETS[side]
    return side.partition(":")[2] or "fashion-mnist"


def side_label(report: dict[str, Any], side: str) -> str:
    """What a side trained: the preset's name, its epochs and optimizer."""
    if side == LAB:
        return LAB_LABEL
    preset = side_preset(report, side)
    recipes = report.get("recipes")
    if recipes is None:
        epochs, optimizer = V2_EPOCHS[side], "sgd"
        note = ", 0.2's preset" if side == "fast" else ""
    else:
        epochs, optimizer, note = recipes[side]["epochs"], recipes[side]["optimizer"], ""
    shown = {"sgd": "SGD", "muon": "Muon"}.get(optimizer, optimizer)
    return f'``{side}`` (``"{preset}"``{note}, {epochs} epochs, {shown})'


def cell(evals: list[list[float]]) -> str:
    """Every validation of one run: ``accuracy (seconds since the start)``."""
    return ", ".join(f"{100 * acc:.2f}% ({seconds:.1f} s)" for _, seconds, acc in evals)


def lab_epoch_summary(report: dict[str, Any], side: str) -> str:
    """``side``'s time to its target in lab epochs: per seed, mean and standard deviation."""
    if side == LAB:
        firsts = [run["evals"][0][1] for run in report["runs"][LAB].values()]
        sd = statistics.stdev(firsts) if len(firsts) > 1 else 0.0
        shown = " / ".join(f"{s:.1f}" for s in firsts)
        return f"one lab epoch: {shown} s; mean {statistics.mean(firsts):.1f} s, sd {sd:.1f} s"
    goal = target(side)
    entry = report["lab_epochs"][f"{side} to {goal}"]
    shown = " / ".join("-" if r is None else f"{r:.2f}" for r in entry["per_seed"])
    if entry["lab_epochs"] is None:
        reached = sum(r is not None for r in entry["per_seed"])
        return (
            f"to {goal}: {shown} lab epochs; **reached by {reached} of "
            f"{len(entry['per_seed'])} seeds** (-: not reached)"
        )
    return (
        f"to {goal}: {shown}; **mean {entry['lab_epochs']:.2f}, sd {entry['stdev']:.2f}** "
        f"lab epochs"
    )


def load_reports() -> dict[str, dict[str, Any]]:
    """The reports of ``REPORTS`` that exist, by kind of machine."""
    return {kind: json.loads(path.read_text()) for kind, path in REPORTS.items() if path.exists()}


def machine(report: dict[str, Any]) -> str:
    """What the report says about where and when it ran (older reports lack some)."""
    parts = [report.get("cpu", "CPU not recorded"), f"flags ``{report['cpu_flags']}``"]
    if "device" in report:
        parts.insert(0, report["device"])
        parts[1] = f"host CPU {parts[1]}"
    if "measured" in report:
        parts.append(f"measured {report['measured']}")
    if "load_average" in report:
        parts.append(
            f"load average {report['load_average']:.1f} at the end (the benchmark's own "
            f"processes included)"
        )
    return "; ".join(parts)


def render_one(kind: str, report: dict[str, Any]) -> list[str]:
    seeds = [str(s) for s in report["seeds"]]
    lines = [
        f".. list-table:: {kind}: test accuracy (seconds since the start) at every validation, "
        "per seed; the recipe's with flip TTA",
        "   :header-rows: 1",
        f"   :widths: 16 {' '.join(['22'] * len(seeds))} 18",
        "",
        "   * - Side",
        *(f"     - Seed {s}" for s in seeds),
        "     - Time to the target",
    ]
    for side, per_seed in report["runs"].items():
        label = side_label(report, side)
        if side == LAB:
            epochs = max(len(run["evals"]) for run in per_seed.values())
            label += f" (first {epochs} epoch{'s' if epochs > 1 else ''})"
        lines.append(f"   * - {label}")
        lines += [
            f"     - {cell(per_seed[s]['evals'])}" if s in per_seed else "     - (not run)"
            for s in seeds
        ]
        lines.append(f"     - {lab_epoch_summary(report, side)}")
    lines += ["", f"Machine {kind}: {machine(report)}.", ""]
    return lines


def render(reports: dict[str, dict[str, Any]]) -> str:
    names = ", ".join(REPORTS[kind].name for kind in reports)
    lines = [
        ".. This file is generated by docs/figures/make_speed_table.py from",
        f"   benchmarks/results/ ({names}); do not edit.",
        "",
    ]
    for kind, report in reports.items():
        lines += render_one(kind, report)
    return "\n".join(lines)


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(load_reports()))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
