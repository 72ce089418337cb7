"""``visionblocks bench``: batch-1 latency and throughput of a model, per runtime, on the CPU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from torch import nn

from visionblocks._bench import DEFAULT_BUDGET_MS, RUNTIMES, bench
from visionblocks._bench_report import PERCENTILES
from visionblocks._cli._common import (
    CLIError,
    build_model,
    check_model_name,
    input_size_for,
    model_file,
)
from visionblocks._paths import check_output_file
from visionblocks.inference import load_model

__all__ = ["add_bench_parser"]


def add_bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``bench`` sub-command."""
    p = sub.add_parser(
        "bench",
        help="time a model at batch 1 (p50/p90/p99) and its throughput, per CPU runtime",
        description="Time a model on the CPU, per runtime: eager fp32, bf16 autocast with "
        "channels-last (CPUs with bf16 instructions), INT8 (quantize_int8), ONNX Runtime, "
        "torch.compile. Batch-1 latency percentiles after a warm-up, throughput at --batch-size, "
        "and whether the latency is within --budget. A runtime that cannot run here is a row "
        "that says why. torch.compile compiles for each shape first (tens of seconds on a "
        "small CPU); leave it out with --runtime.",
    )
    p.add_argument(
        "model",
        metavar="MODEL_OR_RUN",
        help="a model file (model.pt, .safetensors), a run folder written by `visionblocks "
        "train --out` (its model.pt), or a registered model name (random weights, which do not "
        "change the timings)",
    )
    p.add_argument(
        "--runtime",
        action="append",
        choices=list(RUNTIMES),
        help="a runtime to time; repeat for several (default: all)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="input shape (default: the model file's image shape, else the model's own size)",
    )
    p.add_argument(
        "--batch-size", type=int, default=32, help="images per call for throughput (default: 32)"
    )
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_MS,
        metavar="MS",
        help="latency budget per prediction in ms (default: %(default)g)",
    )
    p.add_argument(
        "--percentile",
        type=int,
        choices=PERCENTILES,
        default=99,
        help="batch-1 percentile checked against the budget (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's, all cores)")
    p.add_argument(
        "--min-runs", type=int, default=200, help="timed batch-1 calls at least (default: 200)"
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=10.0,
        help="seconds of timed calls at most per measurement (default: %(default)g)",
    )
    p.add_argument("--json", metavar="OUT", help="also write the report to this JSON file")
    p.set_defaults(func=_bench)


def _model_for(name: str, input_size: list[int] | None) -> nn.Module:
    """A model file, a run folder's ``model.pt``, or a registered builder's model."""
    path = Path(name)
    if path.is_dir():
        run = path / "model.pt"
        if not run.is_file():
            raise CLIError(
                f"{name!r} is a folder without model.pt; give a model file or a run folder "
                f"written by `visionblocks train --out DIR`."
            )
        return load_model(run)
    if path.is_file() or path.suffix in (".pt", ".safetensors"):
        return load_model(model_file(name))
    check_model_name(name)
    shape = input_size_for(input_size, input_size[0] if input_size else 3)
    model, _ = build_model(name, 10, shape, {})
    return model


def _bench(args: argparse.Namespace) -> int:
    if args.json is not None:
        check_output_file(args.json, "--json")
    counts = {"--min-runs": args.min_runs, "--batch-size": args.batch_size,
              "--threads": args.threads, "--max-seconds": args.max_seconds}  # fmt: skip
    for flag, value in counts.items():
        if value is not None and not value > 0:
            raise CLIError(f"{flag} must be a positive number; got {value}.")
    model = _model_for(args.model, args.input_size)
    shape = input_size_for(args.input_size, 3) if args.input_size else None
    report = bench(
        model,
        runtimes=args.runtime,
        input_shape=shape,
        batch_size=args.batch_size,
        budget_ms=args.budget,
        percentile=args.percentile,
        threads=args.threads,
        min_runs=args.min_runs,
        min_seconds=min(1.0, args.max_seconds),
        max_seconds=args.max_seconds,
        progress=True,
    )
    print(report)
    if args.json is not None:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
