"""The INT8 paths of :func:`visionblocks.quantize_int8` side by side, on real Fashion-MNIST.

For ResNet-20, the lab's simple CNN and MobileNetV2 (each trained on the full
Fashion-MNIST training set, or loaded from ``--checkpoint-dir`` if a previous run saved
it there), every ``method=`` of ``quantize_int8`` is run on the same 512 training
images and measured in the same process against the float model:

* accuracy on the full 10,000-image test set (``visionblocks.evaluate``, fp32 on the CPU);
* batch-1 latency: the median of single-image calls;
* batch-256 throughput: images per second over whole batches;
* setup: seconds to quantize, plus (``pt2e``) compiling for batch sizes 1 and 256, cold:
  Inductor's caches are switched off (``torch.compiler.config.force_disable_caches``)
  unless ``--warm-compile-cache`` is given, so a rerun measures what a first start costs.

All runtimes use the same thread count (``--threads``, default 1: the machine has two
cores shared with other jobs). The variants are timed in interleaved rounds and each
speed is the median over rounds; every ratio is taken within a round (each path against
fp32 measured moments apart) and its median reported, so load from other processes
hits both sides of a ratio alike. Speeds are in CPU time of this process (what the
kernels cost, whatever else runs) and in wall-clock time, with the load average printed
beside them.

Run (about 30 minutes on 2 shared cores the first time, most of it training;
``--checkpoint-dir`` keeps the trained weights, so a rerun only measures)::

    .venv/bin/python benchmarks/int8_paths.py --checkpoint-dir /tmp/vb-int8 \\
        --table docs/_generated/int8_paths.rst

The table is included in docs/quantization.rst.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
from torch import nn

import visionblocks as vb
from visionblocks._int8.capture import root_of
from visionblocks._int8.ort import OnnxRuntimeModule, float_onnx
from visionblocks.data import ImageDataset
from visionblocks.model_file import attach_card, card_of
from visionblocks.models import Classifier, mobilenetv2_cifar, resnet_cifar, simple_cnn
from visionblocks.quantize import METHODS, QuantizationMethod, quantize_int8

# name -> (title, builder, epochs on the full training set). MobileNetV2 gets one epoch:
# its stride-1 CIFAR stem makes an epoch cost ~12 CPU-minutes here (bf16, one thread).
BUILDERS: dict[str, tuple[str, Callable[[], Classifier], int]] = {
    "resnet20": ("ResNet-20", lambda: resnet_cifar(in_channels=1, depth=20), 3),
    "simple_cnn": ("simple CNN", lambda: simple_cnn(in_channels=1, image_size=28), 3),
    "mobilenetv2": ("MobileNetV2", lambda: mobilenetv2_cifar(in_channels=1), 1),
}
LABELS: dict[str, str] = {
    "fp32": "fp32 (eager PyTorch)",
    "ort-fp32": "fp32, ONNX Runtime (reference)",
    "onnxruntime": "INT8 ``onnxruntime``",
    "pt2e": "INT8 ``pt2e`` (torchao + compile)",
    "fx": "INT8 ``fx`` (torch.ao, deprecated)",
}
Clock = Callable[[], float]


@dataclass
class Speeds:
    """Per-round timings of one variant: batch-1 seconds per call, batch-256 images/s."""

    b1_cpu: list[float] = field(default_factory=list)
    b1_wall: list[float] = field(default_factory=list)
    b256_cpu: list[float] = field(default_factory=list)
    b256_wall: list[float] = field(default_factory=list)


def cpu_flags() -> list[str]:
    """The CPU's SIMD flags that matter for INT8 and bf16 kernels (Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())  # type: ignore[union-attr]
    return sorted(f for f in flags if f.startswith(("avx512", "amx", "avx_vnni", "avx2")))


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def train_or_load(name: str, train: ImageDataset, args: argparse.Namespace) -> Classifier:
    _, builder, epochs = BUILDERS[name]
    model = builder()
    path = Path(args.checkpoint_dir, f"{name}-e{epochs}.pt") if args.checkpoint_dir else None
    if path is not None and path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        print(f"{name}: loaded {path}")
    else:
        start = time.perf_counter()
        history = vb.fit(
            model,
            train,
            epochs=epochs,
            optimizer="adamw",
            augment=None,  # a few epochs only: augmentation would cost more than it buys
            seed=0,
            progress=False,
        )
        print(
            f"{name}: trained {epochs} epoch(s) on the full training set in "
            f"{time.perf_counter() - start:.0f} s (train acc {history.last['train_acc']:.4f})"
        )
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), path)
    # The card records what the model was trained on, as fit would: the INT8 models carry
    # it too, so evaluate normalizes their inputs the same way.
    card = card_of(model)
    assert card is not None
    attach_card(model, card.replace(image_shape=train.image_shape, mean=train.mean, std=train.std))
    return model.cpu().eval()


def normalized(data: ImageDataset) -> torch.Tensor:
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    return (data.images.float() / 255 - mean) / std  # (N, C, H, W) float32


def time_round(
    variants: dict[str, nn.Module], x1: torch.Tensor, x256: torch.Tensor, args: argparse.Namespace
) -> dict[str, tuple[float, float, float, float]]:
    """One round: (b1 CPU s, b1 wall s, b256 CPU img/s, b256 wall img/s) per variant."""
    result = {}
    with torch.inference_mode():
        for name, model in variants.items():
            cpu_calls, wall_calls = [], []
            for _ in range(args.b1_calls):
                cpu, wall = time.process_time(), time.perf_counter()
                model(x1)
                cpu_calls.append(time.process_time() - cpu)
                wall_calls.append(time.perf_counter() - wall)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(args.b256_calls):
                model(x256)
            images = args.b256_calls * len(x256)
            result[name] = (
                statistics.median(cpu_calls),
                statistics.median(wall_calls),
                images / (time.process_time() - cpu),
                images / (time.perf_counter() - wall),
            )
    return result


def bench_model(
    name: str, train: ImageDataset, test: ImageDataset, args: argparse.Namespace
) -> list[dict[str, object]]:
    model = train_or_load(name, train, args)
    x_train = normalized(train)
    order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))
    calibration = x_train[order[: args.calibration_images]]
    x_test = normalized(test)
    x1, x256 = x_test[:1].clone(), x_test[:256].clone()

    variants: dict[str, nn.Module] = {"fp32": model}
    setup: dict[str, float] = {}
    variants["ort-fp32"] = OnnxRuntimeModule(
        float_onnx(root_of(model), calibration[:2]), threads=args.threads
    )
    for method in args.methods:
        start = time.perf_counter()
        int8 = quantize_int8(model, calibration, method=method)
        with torch.inference_mode():  # first calls: pt2e compiles for each batch size here
            int8(x1)
            int8(x256)
        setup[method] = time.perf_counter() - start
        variants[method] = int8
        print(f"{name}: {method} ready in {setup[method]:.1f} s", flush=True)

    accuracy = {}
    for key, variant in variants.items():
        if key == "ort-fp32":
            continue  # the same float model; only its speed is of interest
        result = vb.evaluate(variant, test, batch_size=256, device="cpu", precision="fp32")
        accuracy[key] = result.accuracy

    rounds: dict[str, Speeds] = {key: Speeds() for key in variants}
    ratios: dict[str, Speeds] = {key: Speeds() for key in variants}
    loads = [load_average()]
    with torch.inference_mode():
        for variant in variants.values():  # warm-up: allocations, oneDNN primitives, sessions
            for _ in range(3):
                variant(x1)
            variant(x256)
    for _ in range(args.rounds):
        measured = time_round(variants, x1, x256, args)
        base = measured["fp32"]
        for key, (b1_cpu, b1_wall, b256_cpu, b256_wall) in measured.items():
            speeds, ratio = rounds[key], ratios[key]
            speeds.b1_cpu.append(b1_cpu)
            speeds.b1_wall.append(b1_wall)
            speeds.b256_cpu.append(b256_cpu)
            speeds.b256_wall.append(b256_wall)
            # Speed-ups: fp32 time over this variant's time, within the round.
            ratio.b1_cpu.append(base[0] / b1_cpu)
            ratio.b1_wall.append(base[1] / b1_wall)
            ratio.b256_cpu.append(b256_cpu / base[2])
            ratio.b256_wall.append(b256_wall / base[3])
        loads.append(load_average())
    print(f"\n{name}: load average (1, 5, 15 min) before and after each round: {loads}")

    med = statistics.median
    header = (
        f"{'variant':34s} {'test acc':>8s} {'delta':>6s} {'b1 ms':>7s} {'x':>5s} "
        f"{'b1 ms wall':>10s} {'x':>5s} {'b256 img/s':>10s} {'x':>5s} "
        f"{'img/s wall':>10s} {'x':>5s} {'setup s':>7s}"
    )
    print(header)
    rows = []
    for key in variants:
        s, r = rounds[key], ratios[key]
        acc = accuracy.get(key)
        delta = None if acc is None else 100 * (acc - accuracy["fp32"])
        row: dict[str, object] = {
            "model": name,
            "variant": key,
            "accuracy": acc,
            "delta_points": delta,
            "b1_ms": 1000 * med(s.b1_cpu),
            "b1_x": med(r.b1_cpu),
            "b1_ms_wall": 1000 * med(s.b1_wall),
            "b1_x_wall": med(r.b1_wall),
            "b256_ips": med(s.b256_cpu),
            "b256_x": med(r.b256_cpu),
            "b256_ips_wall": med(s.b256_wall),
            "b256_x_wall": med(r.b256_wall),
            "setup_s": setup.get(key),
        }
        rows.append(row)
        print(
            f"{key:34s} {'' if acc is None else f'{acc:.4f}':>8s} "
            f"{'' if delta is None else f'{delta:+.2f}':>6s} "
            f"{row['b1_ms']:7.2f} {row['b1_x']:5.2f} {row['b1_ms_wall']:10.2f} "
            f"{row['b1_x_wall']:5.2f} {row['b256_ips']:10.0f} {row['b256_x']:5.2f} "
            f"{row['b256_ips_wall']:10.0f} {row['b256_x_wall']:5.2f} "
            f"{'' if key not in setup else f'{setup[key]:.1f}':>7s}"
        )
    return rows


def _cell(value: object, spec: str) -> str:
    return "" if value is None else format(value, spec)


def summary(rows: list[dict[str, object]]) -> list[str]:
    """One row per path: the range over the models of each column that has a ratio."""

    def span(key: str, variant: str, spec: str, unit: str = "") -> str:
        values = [float(r[key]) for r in rows if r["variant"] == variant and r[key] is not None]  # type: ignore[arg-type]
        if not values:
            return ""
        low, high = format(min(values), spec), format(max(values), spec)
        return f"{low}{unit}" if low == high else f"{low} to {high}{unit}"

    models = len({r["model"] for r in rows})
    lines = [
        f".. list-table:: Summary: the range over the {models} models",
        "   :header-rows: 1",
        "",
        "   * - Path",
        "     - Accuracy vs fp32 (points)",
        "     - Batch-1 speed-up",
        "     - Batch-256 speed-up",
        "     - Setup (s)",
    ]
    for variant in dict.fromkeys(str(r["variant"]) for r in rows):
        if variant == "fp32":
            continue
        lines += [
            f"   * - {LABELS[variant]}",
            f"     - {span('delta_points', variant, '+.2f')}",
            f"     - {span('b1_x', variant, '.1f', 'x')}",
            f"     - {span('b256_x', variant, '.1f', 'x')}",
            f"     - {span('setup_s', variant, '.0f')}",
        ]
    return [*lines, ""]


def write_table(path: Path, rows: list[dict[str, object]], machine: str, command: str) -> None:
    """An RST list-table per model: accuracy and speed of each path against fp32."""
    lines = [
        f".. Generated by benchmarks/int8_paths.py ({time.strftime('%Y-%m-%d')}); do not edit.",
        "",
        machine,
        "",
        "Command::",
        "",
        f"    {command}",
        "",
    ]
    for name in dict.fromkeys(str(r["model"]) for r in rows):
        title, builder, epochs = BUILDERS[name]
        params = sum(p.numel() for p in builder().parameters())
        lines += [
            f".. list-table:: {title} ({params:,} parameters; 1x28x28 Fashion-MNIST, trained "
            f"{epochs} epoch{'s' if epochs > 1 else ''})",
            "   :header-rows: 1",
            "",
            "   * - Path",
            "     - Test accuracy",
            "     - vs fp32 (points)",
            "     - Batch 1 (ms)",
            "     - Batch-1 speed-up",
            "     - Batch 256 (img/s)",
            "     - Batch-256 speed-up",
            "     - Speed-ups, wall clock (1 / 256)",
            "     - Setup (s)",
        ]
        for row in (r for r in rows if r["model"] == name):
            acc = row["accuracy"]
            lines += [
                f"   * - {LABELS[str(row['variant'])]}",
                f"     - {'' if acc is None else f'{100 * float(acc):.2f}%'}",  # type: ignore[arg-type]
                f"     - {_cell(row['delta_points'], '+.2f')}",
                f"     - {_cell(row['b1_ms'], '.2f')}",
                f"     - {_cell(row['b1_x'], '.2f')}x",
                f"     - {_cell(row['b256_ips'], ',.0f')}",
                f"     - {_cell(row['b256_x'], '.2f')}x",
                f"     - {_cell(row['b1_x_wall'], '.2f')}x / {_cell(row['b256_x_wall'], '.2f')}x",
                f"     - {_cell(row['setup_s'], '.0f')}",
            ]
        lines.append("")
    lines += summary(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(line.rstrip() for line in lines))
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--calibration-images", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--b1-calls", type=int, default=50, help="batch-1 calls per round")
    parser.add_argument("--b256-calls", type=int, default=4, help="batch-256 calls per round")
    parser.add_argument("--checkpoint-dir", default=None, help="cache trained weights here")
    parser.add_argument("--table", type=Path, default=None, help="write the RST table here")
    parser.add_argument(
        "--warm-compile-cache",
        action="store_true",
        help="let pt2e reuse Inductor's on-disk caches from earlier runs (setup then shrinks)",
    )
    args = parser.parse_args()
    if not args.warm_compile_cache:
        torch.compiler.config.force_disable_caches = True
    methods: list[QuantizationMethod] = args.methods
    args.methods = methods

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    flags = cpu_flags()
    machine = (
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared "
        f"with other jobs (load average {load_average()} at the start), CPU flags "
        f"{' '.join(flags) or 'unknown'}; {args.threads} thread(s) for every runtime; "
        f"torch {torch.__version__}, torchao {package_version('torchao')}, onnxruntime "
        f"{package_version('onnxruntime')}. Speeds in CPU time of the benchmark process, "
        f"medians of {args.rounds} interleaved rounds ({args.b1_calls} batch-1 calls, "
        f"{args.b256_calls} batches of 256 per round); speed-ups against fp32 in the same round."
    )
    print(machine)
    train = vb.load_dataset("fashion-mnist")
    test = vb.load_dataset("fashion-mnist", split="test")
    rows = []
    for name in args.models:
        rows += bench_model(name, train, test, args)
    if args.table is not None:
        command = "python benchmarks/int8_paths.py --checkpoint-dir /tmp/vb-int8 --table " + str(
            args.table
        )
        write_table(args.table, rows, machine, command)


if __name__ == "__main__":
    main()
