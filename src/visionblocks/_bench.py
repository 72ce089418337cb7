"""What a deployed model costs per request: :func:`bench` times it on the CPU, per runtime.

Batch-1 latency is what a service answering one image at a time pays; it is reported as
the 50th, 90th and 99th percentiles of many timed calls after a warm-up (the first calls
pay one-off costs: oneDNN builds its kernels for each shape, allocators grow, ONNX
Runtime plans its memory). Throughput is measured separately at a larger batch, where
the same kernels run on more images per call. Each runtime is one row:

* ``eager``: the PyTorch model in float32, as :func:`~visionblocks.predict` runs it;
* ``bf16``: bfloat16 autocast with channels-last tensors (oneDNN's fast layout for it),
  on CPUs with native bf16 instructions only (AVX512-BF16 or AMX), as ``fit`` decides;
* ``int8``: the model quantized by :func:`~visionblocks.quantize.quantize_int8`
  (calibrated on random images: the kernels, and so the speed, do not depend on the
  calibration data);
* ``onnxruntime``: the model exported by :func:`~visionblocks.export` and run by ONNX
  Runtime in float32;
* ``compile``: ``torch.compile`` (Inductor), whose compilation for each input shape is
  reported as the row's setup time.

A runtime that cannot run here (no ``onnxruntime``, no bf16 instructions, a model that
does not quantize or compile) is a row that says why, not an error. Timings are wall
clock, so other work on the machine shows up in them, mostly in the 99th percentile.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from visionblocks._bench_report import (
    PERCENTILES,
    BenchReport,
    RuntimeLatency,
    cpu_flags,
    cpu_name,
    versions,
)
from visionblocks._export import export, input_shape_of, quantized_layer
from visionblocks.inference import load_model, model_card
from visionblocks.quantize import Int8Classifier, quantize_int8
from visionblocks.train import cpu_supports_bf16, resolve_plan

__all__ = ["DEFAULT_BUDGET_MS", "RUNTIMES", "BenchReport", "RuntimeLatency", "bench"]

RUNTIMES = {
    "eager": "eager fp32",
    "bf16": "eager bf16 channels-last",
    "int8": "INT8 (quantize_int8)",
    "onnxruntime": "ONNX Runtime fp32",
    "compile": "torch.compile fp32",
}
"""Runtime name -> the label of its row, in the order :func:`bench` runs them."""
DEFAULT_BUDGET_MS = 50.0
"""Latency budget per prediction: the lab's bar for a deployed model, 50 ms."""
_CALIBRATION_IMAGES = 32


def bench(
    model_or_path: nn.Module | str | os.PathLike[str],
    *,
    runtimes: Sequence[str] | None = None,
    input_shape: tuple[int, int, int] | None = None,
    batch_size: int = 32,
    budget_ms: float = DEFAULT_BUDGET_MS,
    percentile: int = 99,
    threads: int | None = None,
    min_runs: int = 200,
    min_seconds: float = 1.0,
    max_seconds: float = 10.0,
    warmup_seconds: float = 0.5,
    name: str | None = None,
    progress: bool = False,
) -> BenchReport:
    """Time ``model_or_path`` on the CPU at batch 1 and at ``batch_size``, per runtime.

    Each runtime gets a warm-up of at least 3 calls and ``warmup_seconds``, then timed
    batch-1 calls until there are ``min_runs`` of them and ``min_seconds`` have passed,
    or ``max_seconds`` have (a slow model gets fewer runs, at least 3; its p99 is then
    the slowest run). Throughput is the median of at least 3 calls at ``batch_size``
    (``min_seconds``, at most ``max_seconds``). The model is copied; it is left as it is.

    Args:
        model_or_path: A model (float, or INT8 from :func:`~visionblocks.quantize_int8`:
            then only its eager row runs), or the path of a model file
            (:func:`~visionblocks.load_model`).
        runtimes: Runtime names: ``"eager"``, ``"bf16"``, ``"int8"``, ``"onnxruntime"``,
            ``"compile"`` (default: all of them, in that order).
        input_shape: ``(C, H, W)`` of one input; by default the card's image shape, else
            the model's ``default_input_size``.
        batch_size: Images per call in the throughput measurement.
        budget_ms: Latency budget of the pass/fail column, in milliseconds.
        percentile: The batch-1 percentile checked against the budget (50, 90 or 99).
        threads: CPU threads for torch and ONNX Runtime (default: ``torch.get_num_threads()``);
            torch's setting is restored afterwards.
        min_runs: Timed batch-1 calls at least (unless ``max_seconds`` runs out first).
        min_seconds: Seconds of timed calls at least, per measurement.
        max_seconds: Seconds of timed calls at most, per measurement.
        warmup_seconds: Seconds of untimed calls before each measurement.
        name: The model's name in the report (default: its builder, else its class).
        progress: Print each runtime's result on stderr as it is measured.

    Returns:
        The :class:`BenchReport`; ``str()`` of it is a table.

    Raises:
        ValueError: An unknown runtime, a non-positive count or time, a budget that is not
            a positive number, a percentile not in (50, 90, 99), no known input shape.

    Example:
        >>> import visionblocks as vb
        >>> report = bench(vb.resnet20(), runtimes=["eager", "int8"], min_runs=5,
        ...                min_seconds=0.01, warmup_seconds=0.0, batch_size=4, threads=1)
        >>> report.runtimes, report.input_shape
        (['eager', 'int8'], (3, 32, 32))
        >>> report.row("eager").runs >= 5, report.row("eager").latency_ms[99] > 0
        (True, True)
    """
    names = _check_arguments(
        runtimes, batch_size, budget_ms, percentile, threads,
        (min_runs, min_seconds, max_seconds, warmup_seconds),
    )  # fmt: skip
    model = model_or_path if isinstance(model_or_path, nn.Module) else load_model(model_or_path)
    shape = input_shape_of(model, input_shape)
    card = model_card(model)
    label = name or (card.builder if card is not None and card.builder else type(model).__name__)
    model = _cpu_eval_copy(model)
    labels = dict(RUNTIMES)
    if _is_int8(model):
        labels["eager"] = "eager INT8 (the model given)"
    count = threads or torch.get_num_threads()
    timing = _Timing(min_runs, min_seconds, max_seconds, warmup_seconds)
    results = []
    with _torch_threads(count):
        for runtime in names:
            row = _measure_runtime(
                runtime, labels[runtime], model, shape, batch_size, count, timing
            )
            results.append(row)
            if progress:
                _report_progress(label, row)
    return BenchReport(
        model=label, input_shape=shape, batch_size=batch_size, budget_ms=float(budget_ms),
        percentile=percentile, threads=count, cpu=cpu_name(), flags=cpu_flags(),
        versions=versions(), results=tuple(results),
    )  # fmt: skip


def _check_arguments(
    runtimes: Sequence[str] | None,
    batch_size: int,
    budget_ms: float,
    percentile: int,
    threads: int | None,
    times: tuple[int, float, float, float],
) -> list[str]:
    names = list(RUNTIMES) if runtimes is None else list(runtimes)
    unknown = [r for r in names if r not in RUNTIMES]
    if isinstance(runtimes, str) or unknown or not names:
        raise ValueError(
            f"unknown runtimes {unknown or runtimes!r}; choose from {', '.join(RUNTIMES)}."
        )
    for label, value in (("batch_size", batch_size), ("min_runs", times[0]), ("threads", threads)):
        if value is None and label == "threads":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive int; got {value!r}.")
    time_names = ("min_seconds", "max_seconds", "warmup_seconds")
    for label, seconds in zip(time_names, times[1:], strict=True):
        if not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
            raise ValueError(f"{label} must be a finite number of seconds >= 0; got {seconds!r}.")
    if times[2] < times[1]:
        raise ValueError(f"max_seconds={times[2]} is below min_seconds={times[1]}; raise it.")
    if not isinstance(budget_ms, (int, float)) or not 0 < budget_ms < float("inf"):
        raise ValueError(f"budget_ms must be a positive number of milliseconds; got {budget_ms!r}.")
    if percentile not in PERCENTILES:
        raise ValueError(f"percentile must be one of {PERCENTILES}; got {percentile!r}.")
    return names


@dataclass(frozen=True)
class _Timing:
    min_runs: int
    min_seconds: float
    max_seconds: float
    warmup_seconds: float

    def measure(self, call: Callable[[], object], *, min_runs: int, warmup: int) -> list[float]:
        """Seconds per call of ``call``, after ``warmup`` calls and ``warmup_seconds``."""
        started = time.perf_counter()
        done = 0
        while done < warmup or time.perf_counter() - started < self.warmup_seconds:
            call()
            done += 1
        seconds: list[float] = []
        started = time.perf_counter()
        while True:
            before = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - before)
            elapsed = time.perf_counter() - started
            if (len(seconds) >= min_runs and elapsed >= self.min_seconds) or (
                elapsed >= self.max_seconds and len(seconds) >= 3
            ):
                return seconds


# A runtime's setup: (model, (C, H, W), threads) -> a function that, given an input batch,
# returns the call to time.
_Runner = Callable[[torch.Tensor], Callable[[], object]]


class _NotAvailableError(Exception):
    """The runtime cannot run here; the message says why (it becomes the row's reason)."""


def _measure_runtime(
    runtime: str,
    label: str,
    model: nn.Module,
    shape: tuple[int, int, int],
    batch_size: int,
    threads: int,
    timing: _Timing,
) -> RuntimeLatency:
    generator = torch.Generator().manual_seed(0)
    one = torch.randn((1, *shape), generator=generator)
    many = torch.randn((batch_size, *shape), generator=generator)
    started = time.perf_counter()
    try:
        runner = _SETUPS[runtime](model, shape, threads)
        first = runner(one)
        first()  # the first call compiles (torch.compile): part of the setup
        setup = time.perf_counter() - started
        seconds = timing.measure(first, min_runs=timing.min_runs, warmup=3)
        per_batch = timing.measure(runner(many), min_runs=3, warmup=1)
    except _NotAvailableError as err:
        return RuntimeLatency(runtime, label, reason=str(err))
    except Exception as err:  # any failure of an optional runtime is its row's reason
        return RuntimeLatency(runtime, label, reason=_reason(err))
    milliseconds = np.percentile(np.array(seconds) * 1e3, PERCENTILES)
    return RuntimeLatency(
        runtime, label, latency_ms=dict(zip(PERCENTILES, map(float, milliseconds), strict=True)),
        runs=len(seconds), throughput=batch_size / float(np.median(per_batch)),
        setup_s=setup if runtime in ("int8", "onnxruntime", "compile") else None,
    )  # fmt: skip


def _reason(err: Exception, limit: int = 160) -> str:
    """``err`` in one short line: its type and its message's first line (or sentence)."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    text = " ".join(lines[0].split()) if lines else ""
    end = text.find(". ")
    if len(text) > limit and 0 < end < limit:
        text = text[: end + 1]
    elif len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _is_int8(model: nn.Module) -> bool:
    return isinstance(model, Int8Classifier) or quantized_layer(model) is not None


def _refuse_int8(model: nn.Module, runtime: str) -> None:
    if _is_int8(model):
        raise _NotAvailableError(f"the model is INT8 already; {runtime} takes a float model")


def _eager(model: nn.Module, shape: tuple[int, int, int], threads: int) -> _Runner:
    def runner(x: torch.Tensor) -> Callable[[], object]:
        return functools.partial(_infer, model, x)

    return runner


def _infer(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        out: torch.Tensor = model(x)
    return out


def _bf16(model: nn.Module, shape: tuple[int, int, int], threads: int) -> _Runner:
    _refuse_int8(model, "bf16 autocast")
    if not cpu_supports_bf16():
        raise _NotAvailableError("this CPU has no AVX512-BF16 or AMX-BF16; bf16 would be emulated")
    plan = resolve_plan("cpu", "bf16", channels_last=True)  # fit's plan on such a CPU
    converted = plan.prepare(copy.deepcopy(model))

    def run(x: torch.Tensor) -> None:
        with torch.inference_mode(), plan.autocast():
            converted(x)

    def runner(x: torch.Tensor) -> Callable[[], object]:
        return functools.partial(run, x.contiguous(memory_format=plan.memory_format))

    return runner


def _int8(model: nn.Module, shape: tuple[int, int, int], threads: int) -> _Runner:
    _refuse_int8(model, "quantize_int8")
    calibration = torch.randn(
        (_CALIBRATION_IMAGES, *shape), generator=torch.Generator().manual_seed(1)
    )
    quantized = quantize_int8(model, calibration, batch_size=_CALIBRATION_IMAGES // 2)
    return _eager(quantized, shape, threads)


def _onnxruntime(model: nn.Module, shape: tuple[int, int, int], threads: int) -> _Runner:
    _refuse_int8(model, "ONNX export")
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError:
        raise _NotAvailableError(
            "onnxruntime is not installed: pip install 'visionblocks[export]'"
        ) from None
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = export(model, Path(folder) / "model.onnx", input_shape=shape, batch_size=1).path
        except ImportError as err:
            raise _NotAvailableError(str(err)) from err
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    input_name = session.get_inputs()[0].name

    def runner(x: torch.Tensor) -> Callable[[], object]:
        return functools.partial(session.run, None, {input_name: x.numpy()})

    return runner


def _compile(model: nn.Module, shape: tuple[int, int, int], threads: int) -> _Runner:
    _refuse_int8(model, "torch.compile")
    # One graph per input shape (batch 1, then batch_size): the fastest code for each.
    compiled = torch.compile(copy.deepcopy(model), dynamic=False)
    return _eager(compiled, shape, threads)  # type: ignore[arg-type]


_SETUPS: dict[str, Callable[[nn.Module, tuple[int, int, int], int], _Runner]] = {
    "eager": _eager,
    "bf16": _bf16,
    "int8": _int8,
    "onnxruntime": _onnxruntime,
    "compile": _compile,
}


def _cpu_eval_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode on the CPU, float32 unless it is INT8."""
    copied = copy.deepcopy(model).eval()
    param = next(copied.parameters(), None)
    if param is not None and (param.device.type != "cpu" or param.dtype != torch.float32):
        copied.to(device="cpu", dtype=torch.float32)
    return copied


@contextlib.contextmanager
def _torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _report_progress(model: str, row: RuntimeLatency) -> None:
    if row.available and row.latency_ms is not None:
        text = f"p50 {row.latency_ms[50]:.2f} ms, p99 {row.latency_ms[99]:.2f} ms ({row.runs} runs)"
    else:
        text = f"n/a ({row.reason})"
    print(f"{model}: {row.label}: {text}", file=sys.stderr, flush=True)
