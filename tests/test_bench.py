"""``bench`` and ``visionblocks bench``: the report's structure, never its timings.

The timings themselves depend on the machine and on whatever else runs on it; what is
tested is that every runtime gives a row (timed, or ``n/a`` with its reason), that the
percentiles are percentiles of the timed calls, in milliseconds, that the timing loop
keeps its bounds, and that the docs table lists every registered model.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks._bench import PERCENTILES, RUNTIMES, cpu_flags
from visionblocks.cli import main

sys.path.insert(0, str(Path(__file__).parent / "cli"))
from cli_helpers import error_of

ROOT = Path(__file__).resolve().parents[1]
# One thread: on a busy machine, two threads' OpenMP regions wait for each other.
QUICK = {"min_runs": 5, "min_seconds": 0.0, "max_seconds": 0.5, "warmup_seconds": 0.0, "threads": 1}


def tiny() -> nn.Module:
    """A registered model small enough to time, quantize and export in about a second."""
    return vb.simple_cnn(num_classes=3, in_channels=1, image_size=8, widths=(4, 4, 4), hidden=8)


class Sleeper(nn.Module):
    """Sleeps ``slow_s`` on every ``every``-th call and not at all otherwise."""

    def __init__(self, slow_s: float, every: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.slow_s, self.every, self.calls = slow_s, every, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls % self.every == 0:
            time.sleep(self.slow_s)
        return self.conv(x).mean((2, 3))


def test_every_runtime_asked_for_is_a_row_in_order_with_ordered_percentiles() -> None:
    report = vb.bench(tiny(), runtimes=["int8", "eager", "onnxruntime"], batch_size=4, **QUICK)
    assert report.runtimes == ["int8", "eager", "onnxruntime"]
    assert report.input_shape == (1, 8, 8)
    for row in report.results:
        assert row.available, row.reason
        assert row.label == RUNTIMES[row.runtime]
        assert sorted(row.latency_ms or {}) == list(PERCENTILES)
        p50, p90, p99 = (
            (row.latency_ms or {})[50],
            (row.latency_ms or {})[90],
            (row.latency_ms or {})[99],
        )
        assert 0 < p50 <= p90 <= p99, row
        assert row.runs >= QUICK["min_runs"]
        assert row.throughput is not None
        assert row.throughput > 0
    # Setup is what a runtime costs before its first answer: quantizing, exporting.
    assert report.row("eager").setup_s is None
    assert (report.row("int8").setup_s or 0) > 0
    assert (report.row("onnxruntime").setup_s or 0) > 0


def test_the_percentiles_are_of_the_timed_calls_in_milliseconds() -> None:
    # One call in 5 sleeps 100 ms: the p99 is one of them, the median one of the others.
    # Percentiles in seconds, or of the wrong calls, fail here.
    report = vb.bench(
        Sleeper(0.1, every=5), runtimes=["eager"], input_shape=(1, 6, 6), batch_size=2,
        min_runs=40, min_seconds=0.0, max_seconds=30.0, warmup_seconds=0.0, threads=1,
    )  # fmt: skip
    latency = report.row("eager").latency_ms or {}
    assert latency[99] >= 100.0
    assert latency[50] < 100.0


def test_the_timing_loop_stops_at_max_seconds_with_at_least_three_runs() -> None:
    # Every call sleeps 50 ms: 200 runs would take 10 s; max_seconds=0.3 stops it early.
    started = time.perf_counter()
    report = vb.bench(
        Sleeper(0.05, every=1), runtimes=["eager"], input_shape=(1, 6, 6), batch_size=2,
        min_runs=200, min_seconds=0.0, max_seconds=0.3, warmup_seconds=0.0, threads=1,
    )  # fmt: skip
    assert 3 <= report.row("eager").runs < 200
    assert time.perf_counter() - started < 5.0


def test_unavailable_runtimes_are_rows_with_their_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("visionblocks._bench.cpu_supports_bf16", lambda: False)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime fails

    def broken_compile(model: nn.Module, **kwargs: object) -> nn.Module:
        raise RuntimeError("no C++ compiler found\nsecond line")

    monkeypatch.setattr(torch, "compile", broken_compile)
    report = vb.bench(tiny(), runtimes=["eager", "bf16", "onnxruntime", "compile"], **QUICK)
    assert report.row("eager").available
    reasons = {r.runtime: r.reason or "" for r in report.results if not r.available}
    assert set(reasons) == {"bf16", "onnxruntime", "compile"}
    assert "AVX512-BF16" in reasons["bf16"]
    assert "pip install" in reasons["onnxruntime"]
    assert reasons["compile"] == "RuntimeError: no C++ compiler found"
    assert all(r.within(50.0) is None for r in report.results if not r.available)
    lines = str(report).splitlines()
    for runtime, reason in reasons.items():
        line = next(line for line in lines if line.startswith(RUNTIMES[runtime]))
        assert line.endswith(f"  n/a ({reason})"), line


def test_an_int8_model_from_quantize_int8_is_timed_as_it_is() -> None:
    model = tiny().eval()
    int8 = vb.quantize_int8(model, torch.randn(16, 1, 8, 8))
    report = vb.bench(int8, input_shape=(1, 8, 8), runtimes=["eager", "int8", "bf16"], **QUICK)
    assert report.row("eager").available
    assert "INT8" in report.row("eager").label
    assert "INT8 already" in (report.row("int8").reason or "")
    assert "INT8 already" in (report.row("bf16").reason or "")


def test_bf16_runs_where_the_cpu_has_bf16_instructions(monkeypatch: pytest.MonkeyPatch) -> None:
    # Forced on, so that the bf16 path runs on any CPU (slowly where emulated).
    monkeypatch.setattr("visionblocks._bench.cpu_supports_bf16", lambda: True)
    report = vb.bench(tiny(), runtimes=["bf16"], **QUICK)
    assert report.row("bf16").available, report.row("bf16").reason


def test_the_budget_column_checks_the_chosen_percentile() -> None:
    report = vb.bench(tiny(), runtimes=["eager"], **QUICK)
    row = report.row("eager")
    latency = row.latency_ms or {}
    assert row.within(latency[50], 50) is True
    assert row.within(latency[50] * 0.999, 50) is False
    assert row.within(latency[99], 99) is True
    tight = dataclasses.replace(report, budget_ms=latency[99] * 0.999)
    assert str(tight).splitlines()[-1].endswith("FAIL")
    loose = dataclasses.replace(report, budget_ms=latency[99])
    assert str(loose).splitlines()[-1].endswith("pass")


def test_the_report_states_the_machine_and_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # not 1, so that a bench that leaves 1 behind fails
    try:
        report = vb.bench(tiny(), runtimes=["eager"], **QUICK)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert report.threads == 1
    assert report.flags == cpu_flags()
    header = str(report).splitlines()
    assert header[0].startswith("simple_cnn, input 1x8x8: batch-1 latency")
    assert "1 thread;" in header[1]
    assert "CPU flags:" in header[1]
    assert "torch " in header[1]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["threads"] == 1
    assert set(data["results"][0]["latency_ms"]) == {"p50", "p90", "p99"}
    assert data["results"][0]["within_budget"] in (True, False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"runtimes": ["tensorrt"]}, "unknown runtimes"),
        ({"runtimes": "eager"}, "unknown runtimes"),
        ({"min_runs": 0}, "min_runs must be a positive int"),
        ({"batch_size": 1.5}, "batch_size must be a positive int"),
        ({"percentile": 95}, r"percentile must be one of \(50, 90, 99\)"),
        ({"budget_ms": 0}, "budget_ms must be a positive number"),
        ({"min_seconds": 2.0, "max_seconds": 1.0}, "max_seconds=1.0 is below min_seconds"),
        ({"input_shape": (3, 8, 8)}, "has 3 channels, but this SimpleCNN takes 1"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vb.bench(tiny(), **kwargs)  # type: ignore[arg-type]


def test_the_command_times_a_run_folder_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    vb.save_checkpoint(run / "model.pt", tiny())
    out = tmp_path / "bench.json"
    argv = ["bench", str(run), "--runtime", "eager", "--runtime", "int8", "--min-runs", "3",
            "--max-seconds", "0.2", "--batch-size", "2", "--threads", "1",
            "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "eager fp32" in printed
    assert "INT8 (quantize_int8)" in printed
    assert "p99 <= 50 ms" in printed
    saved = json.loads(out.read_text())
    assert [r["runtime"] for r in saved["results"]] == ["eager", "int8"]
    assert saved["model"] == "simple_cnn"
    assert saved["input_shape"] == [1, 8, 8]


def test_the_command_times_a_registered_model_at_its_own_size(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["bench", "resnet20", "--runtime", "eager", "--min-runs", "3", "--max-seconds",
            "0.2", "--batch-size", "2", "--threads", "1", "--budget", "1000",
            "--percentile", "50"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("resnet20, input 3x32x32")
    assert "p50 <= 1000 ms" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bench", "resnet2"], "resnet20"),  # the registry suggests the close name
        (["bench", "{folder}"], "a folder without model.pt"),
        (["bench", "resnet20", "--min-runs", "0"], "--min-runs must be a positive number"),
    ],
)
def test_command_errors_are_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{folder}", str(tmp_path)) for a in argv]
    assert message in error_of(argv, capsys)


def _table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_latency_table", ROOT / "scripts" /
                                                  "make_latency_table.py")  # fmt: skip
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_table_script_renders_one_row_per_model_and_numbers_the_reasons() -> None:
    script = _table_script()
    report = vb.bench(tiny(), runtimes=["eager", "onnxruntime"], name="resnet20", **QUICK)
    missing = {**report.to_dict(), "parameters": 10, "note": "random weights"}
    missing["results"][1] = {**missing["results"][1], "reason": "ImportError: no onnxruntime"}
    run = {
        "command": "python scripts/make_latency_table.py", "date": "2025-01-01", "cores": 2,
        "platform": "Linux", "load_average_before": 1.0, "load_average_after": 2.0,
        "minutes": 1.0,
        "reports": [{**report.to_dict(), "parameters": 10, "note": "random weights"}, missing],
    }  # fmt: skip
    text = script.render(run)
    assert text.count("   * - ``resnet20``") == 4  # two models, in two tables
    assert "n/a [1]" in text
    assert "1. ImportError: no onnxruntime" in text
    assert "load average 1.0" in text
    # A load within the 2 cores is not called shared; more runnable jobs than cores is.
    assert "**Shared machine**" not in text
    assert "every timing is inflated" not in text
    busy = script.render({**run, "load_average_after": 3.0})
    assert "**Shared machine**" in busy
    assert "every timing is inflated" in busy


def test_the_docs_table_lists_every_registered_model_and_two_imagenet_backbones() -> None:
    # Regenerate with scripts/make_latency_table.py when a model is registered.
    table = (ROOT / "docs" / "_generated" / "latency.rst").read_text()
    rows = re.findall(r"^   \* - (.+)\n     - (\d+x\d+x\d+)$", table, re.MULTILINE)
    names = {name for name, _ in rows}
    assert {f"``{m}``" for m in vb.list_models()} <= names
    assert len({name for name, size in rows if size == "3x224x224"}) >= 2
    for label in RUNTIMES.values():
        assert f"     - {label}\n" in table
    assert "CPU flags present" in table
    assert "thread(s)" in table


def test_the_deployment_page_includes_the_table() -> None:
    page = (ROOT / "docs" / "deployment.rst").read_text()
    assert ".. include:: /_generated/latency.rst" in page
    assert "deployment" in (ROOT / "docs" / "index.rst").read_text()


@pytest.mark.slow
def test_torch_compile_is_timed_with_its_compilation_as_setup() -> None:
    report = vb.bench(tiny(), runtimes=["compile"], **QUICK)
    row = report.row("compile")
    assert row.available, row.reason
    assert (row.setup_s or 0) > 0
