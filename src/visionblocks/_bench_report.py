"""The report of :func:`~visionblocks.bench`: one row per runtime, and the machine it ran on.

A latency means little without the machine, so the report carries it: the CPU, the
threads given to the runtimes, the CPU flags that decide which kernels run (AVX2 and
AVX-512 for float32, VNNI for INT8, AVX512-BF16 and AMX for bf16) and the versions of
torch and ONNX Runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from visionblocks._device import CPU_FLAGS, cpu_flags, cpu_name

__all__ = ["PERCENTILES", "BenchReport", "RuntimeLatency", "cpu_flags", "cpu_name", "versions"]

PERCENTILES = (50, 90, 99)
"""The batch-1 latency percentiles reported; the budget is checked against one of them."""


@dataclass(frozen=True)
class RuntimeLatency:
    """The timings of one runtime in a :class:`BenchReport`, or why it has none.

    Attributes:
        runtime: Its name: ``"eager"``, ``"bf16"``, ``"int8"``, ``"onnxruntime"`` or
            ``"compile"``.
        label: How the report names it, e.g. ``"ONNX Runtime fp32"``.
        latency_ms: Batch-1 latency percentiles, ``{50: p50, 90: p90, 99: p99}``, in
            milliseconds; empty when the runtime did not run.
        runs: Timed batch-1 calls the percentiles are computed from.
        throughput: Images per second at the report's batch size (the median call).
        setup_s: Seconds to make the runtime ready (quantize, export, compile), if any.
        reason: Why the runtime did not run (``None`` when it did).

    Example:
        >>> row = RuntimeLatency("eager", "eager fp32", {50: 1.0, 90: 1.5, 99: 4.0}, 200, 900.0)
        >>> row.available, row.within(50.0, 99), row.within(3.0, 99)
        (True, True, False)
        >>> RuntimeLatency("bf16", "eager bf16", reason="no bf16 instructions").within(50.0)
    """

    runtime: str
    label: str
    latency_ms: dict[int, float] | None = None
    runs: int = 0
    throughput: float | None = None
    setup_s: float | None = None
    reason: str | None = None

    @property
    def available(self) -> bool:
        """Whether the runtime ran (its latencies are measured)."""
        return self.reason is None and bool(self.latency_ms)

    def within(self, budget_ms: float, percentile: int = 99) -> bool | None:
        """Whether the ``percentile`` batch-1 latency is at most ``budget_ms``; ``None``: n/a."""
        if not self.available or self.latency_ms is None:
            return None
        return self.latency_ms[percentile] <= budget_ms


@dataclass(frozen=True)
class BenchReport:
    """What :func:`~visionblocks.bench` measured: a :class:`RuntimeLatency` per runtime, and where.

    ``str(report)`` is the table the ``visionblocks bench`` command prints.

    Attributes:
        model: The model's name (its builder, else its class).
        input_shape: ``(C, H, W)`` of one input.
        batch_size: Images per call in the throughput measurement.
        budget_ms: The latency budget of the pass/fail column.
        percentile: Which batch-1 percentile the budget is checked against.
        threads: CPU threads torch and ONNX Runtime were given.
        cpu: The CPU's model name.
        flags: The CPU flags present of those that decide which kernels run.
        versions: ``{"torch": ..., "onnxruntime": ...}`` (the runtimes installed).
        results: One row per runtime, in the order they ran.

    Example:
        >>> rows = (RuntimeLatency("eager", "eager fp32", {50: 2.0, 90: 2.5, 99: 60.0}, 200, 480.0),
        ...         RuntimeLatency("bf16", "eager bf16", reason="no bf16 instructions"))
        >>> report = BenchReport("resnet20", (3, 32, 32), 32, 50.0, 99, 1, "AMD EPYC", ("avx2",),
        ...                      {"torch": "2.14.1"}, rows)
        >>> print(report)  # doctest: +NORMALIZE_WHITESPACE
        resnet20, input 3x32x32: batch-1 latency, throughput at batch 32
        AMD EPYC, 1 thread; CPU flags: avx2 (not: avx512f avx512_vnni avx512_bf16 amx_tile
        amx_bf16 amx_int8); torch 2.14.1
        runtime     p50 ms  p90 ms  p99 ms  runs  img/s @32  vs eager  setup s  p99 <= 50 ms
        eager fp32    2.00    2.50   60.00   200        480     1.00x                   FAIL
        eager bf16  n/a (no bf16 instructions)
    """

    model: str
    input_shape: tuple[int, int, int]
    batch_size: int
    budget_ms: float
    percentile: int
    threads: int
    cpu: str
    flags: tuple[str, ...]
    versions: dict[str, str]
    results: tuple[RuntimeLatency, ...]

    def row(self, runtime: str) -> RuntimeLatency:
        """The row of ``runtime`` (``"eager"``, ``"int8"``, ...)."""
        for result in self.results:
            if result.runtime == runtime:
                return result
        raise KeyError(f"no {runtime!r} row in this report; it has {self.runtimes}.")

    @property
    def runtimes(self) -> list[str]:
        """The runtimes in the report, in order."""
        return [r.runtime for r in self.results]

    def machine(self) -> str:
        """One line: CPU, threads, flags and versions."""
        absent = [f for f in CPU_FLAGS if f not in self.flags]
        flags = " ".join(self.flags) or "none"
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (
            f"{self.cpu}, {self.threads} thread{'s' * (self.threads != 1)}; CPU flags: {flags}"
            + (f" (not: {' '.join(absent)})" if absent else "")
            + f"; {versions}"
        )

    def table_rows(self) -> list[list[str]]:
        """The table as text cells: a header row, then one row per runtime."""
        header = [
            "runtime", "p50 ms", "p90 ms", "p99 ms", "runs", f"img/s @{self.batch_size}",
            "vs eager", "setup s", f"p{self.percentile} <= {self.budget_ms:g} ms",
        ]  # fmt: skip
        rows = [header]
        base = self.row("eager").latency_ms if "eager" in self.runtimes else None
        for r in self.results:
            if not r.available or r.latency_ms is None:
                rows.append([r.label, f"n/a ({r.reason})"])
                continue
            speedup = f"{base[50] / r.latency_ms[50]:.2f}x" if base else ""
            rows.append(
                [r.label, *(f"{r.latency_ms[q]:.2f}" for q in PERCENTILES), str(r.runs),
                 "" if r.throughput is None else f"{r.throughput:,.0f}", speedup,
                 "" if r.setup_s is None else f"{r.setup_s:.1f}",
                 "pass" if r.within(self.budget_ms, self.percentile) else "FAIL"]
            )  # fmt: skip
        return rows

    def __str__(self) -> str:
        c, h, w = self.input_shape
        lines = [f"{self.model}, input {c}x{h}x{w}: batch-1 latency, throughput at batch "
                 f"{self.batch_size}", self.machine()]  # fmt: skip
        rows = self.table_rows()
        widths = [max(len(row[i]) for row in rows if len(row) > 2) for i in range(len(rows[0]))]
        widths[0] = max(len(row[0]) for row in rows)  # n/a rows too: their labels align
        for row in rows:
            if len(row) == 2:  # a runtime that did not run: its reason fills the line
                lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
            else:
                cells = [c.rjust(n) for c, n in zip(row[1:], widths[1:], strict=True)]
                lines.append("  ".join([row[0].ljust(widths[0]), *cells]))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain data (for JSON)."""
        return {
            "model": self.model, "input_shape": list(self.input_shape),
            "batch_size": self.batch_size, "budget_ms": self.budget_ms,
            "percentile": self.percentile, "threads": self.threads, "cpu": self.cpu,
            "flags": list(self.flags), "versions": dict(self.versions),
            "results": [
                {"runtime": r.runtime, "label": r.label, "runs": r.runs,
                 "latency_ms": {f"p{q}": v for q, v in (r.latency_ms or {}).items()},
                 "throughput": r.throughput, "setup_s": r.setup_s, "reason": r.reason,
                 "within_budget": r.within(self.budget_ms, self.percentile)}
                for r in self.results
            ],
        }  # fmt: skip


def versions() -> dict[str, str]:
    """The versions of torch and, if installed, ONNX Runtime."""
    versions = {"torch": torch.__version__.split("+")[0]}
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError:
        return versions
    versions["onnxruntime"] = str(onnxruntime.__version__)
    return versions
