"""Where a training step of the ``fast`` recipe spends its time: per layer and per kernel.

For every layer of the recipe's network (at its batch size, in the precision and memory
format ``fit`` chooses on this machine) the script times, in isolation and on the real
input shape:

* convolutions and the head: forward, input gradient and weight gradient separately
  (``torch.autograd.grad`` with respect to one of them), with their FLOPs and the share of
  this machine's matmul peak each reaches;
* the memory-bound layers (BatchNorm, activations, max-pool, the whitening layer's
  activation): forward + backward together.

It then times whole training steps (forward, loss, backward, SGD step) and prints what the
per-layer sum leaves unexplained (the optimizer, the loss, framework overhead). Every time is
the median of ``--repeats`` runs after warm-up. The CPU flags and the load average are
printed, since the kernels and the noise depend on them::

    .venv/bin/python benchmarks/profile_fast.py [--preset fashion-mnist] [--repeats 20]
        [--json benchmarks/results/profile_fast-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from time_to_accuracy import matmul_peak
from torch import nn

from visionblocks._device import cpu_flags, cpu_name
from visionblocks.recipes import RECIPE_PRESETS, fast_recipe
from visionblocks.train import Muon, resolve_plan

COMPUTE = (nn.Conv2d, nn.Linear)
MEMORY_BOUND = (nn.BatchNorm2d, nn.ReLU, nn.GELU, nn.MaxPool2d)


def median_ms(step: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``step`` in milliseconds, after three warm-up calls."""
    for _ in range(3):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def layer_inputs(model: nn.Module, x: torch.Tensor, plan: Any) -> dict[str, torch.Tensor]:
    """The input each leaf layer sees in one forward pass (detached)."""
    seen: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            seen.setdefault(name, args[0].detach())  # returns None: the output stays

        return hook

    hooks = [
        module.register_forward_hook(keep(name))
        for name, module in model.named_modules()
        if isinstance(module, COMPUTE + MEMORY_BOUND)
    ]
    with torch.no_grad(), plan.autocast():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def conv_flops(module: nn.Module, x: torch.Tensor, out: torch.Tensor) -> float:
    """Multiply-add FLOPs (x2) of one forward pass of a conv or linear layer."""
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        per_output = 2 * kh * kw * module.in_channels // module.groups
        return float(per_output * out.numel())
    return float(2 * x.shape[-1] * out.numel())


def profile_layer(
    name: str, module: nn.Module, x: torch.Tensor, plan: Any, repeats: int
) -> dict[str, Any]:
    """Forward / input-gradient / weight-gradient times of one layer on its real input."""
    x = x.clone().requires_grad_(True)
    with plan.autocast():
        out = module(x)
    grad = torch.randn_like(out)
    row: dict[str, Any] = {"layer": name, "kind": type(module).__name__}
    row["shape"] = f"{tuple(x.shape[1:])} -> {tuple(out.shape[1:])}"

    def forward() -> torch.Tensor:
        with torch.no_grad(), plan.autocast():
            return module(x)  # type: ignore[no-any-return]

    def backward(*wrt: torch.Tensor) -> Callable[[], Any]:
        def run() -> Any:
            with plan.autocast():
                y = module(x)
            return torch.autograd.grad(y, wrt, grad)

        return run

    row["forward_ms"] = median_ms(forward, repeats)
    params = [p for p in module.parameters() if p.requires_grad]
    if isinstance(module, COMPUTE):
        fwd_and = {
            "dgrad_ms": backward(x),
            "wgrad_ms": backward(params[0]) if params else None,
        }
        for key, run in fwd_and.items():
            # Each run repeats the forward pass; subtract it to leave the gradient alone.
            row[key] = None if run is None else max(median_ms(run, repeats) - row["forward_ms"], 0)
        row["gflop"] = conv_flops(module, x, out) / 1e9
    else:
        row["fwd_bwd_ms"] = median_ms(backward(x, *params), repeats)
    return row


def step_ms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, plan: Any, repeats: int, optimizer_name: str
) -> float:
    """Median time of a whole training step (the recipe's optimizer) at its batch size."""
    optimizer: torch.optim.Optimizer = (
        Muon.for_model(model, lr=1e-3)
        if optimizer_name == "muon"
        else torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with plan.autocast():
            logits = model(x)
        F.cross_entropy(logits.float(), y, label_smoothing=0.1).backward()  # type: ignore[no-untyped-call]
        optimizer.step()

    return median_ms(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="fashion-mnist", choices=sorted(RECIPE_PRESETS))
    parser.add_argument("--widths", type=int, nargs="+", help="override the preset's widths")
    parser.add_argument("--image-size", type=int, default=28)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--text", type=Path, default=None, help="also write the printed report")
    args = parser.parse_args()
    printed: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        printed.append(line)

    recipe = fast_recipe(args.preset, **({"widths": tuple(args.widths)} if args.widths else {}))
    plan = resolve_plan("cpu")
    model = plan.prepare(recipe.build_model(10, args.channels)).train()
    shape = (recipe.batch_size, args.channels, args.image_size, args.image_size)
    x = torch.randn(shape).contiguous(memory_format=plan.memory_format)
    y = torch.randint(10, (recipe.batch_size,))
    load = os.getloadavg()
    say(
        f"{cpu_name()}; flags {' '.join(cpu_flags())}; {torch.get_num_threads()} threads; "
        f"load average {load[0]:.1f}/{load[1]:.1f}; torch {torch.__version__}\n"
        f"preset {args.preset!r}: widths {recipe.widths}, batch {recipe.batch_size}, "
        f"optimizer {recipe.optimizer}, "
        f"{plan.describe()}"
    )
    dtype = torch.bfloat16 if plan.autocast_dtype == torch.bfloat16 else torch.float32
    peak = matmul_peak(dtype, torch.device("cpu"))
    inputs = layer_inputs(model, x, plan)
    modules = dict(model.named_modules())
    rows = [profile_layer(n, modules[n], inputs[n], plan, args.repeats) for n in inputs]
    whole = step_ms(model, x, y, plan, args.repeats, recipe.optimizer)

    say(f"\nmatmul peak ({str(dtype).removeprefix('torch.')}): {peak / 1e9:.0f} GFLOP/s")
    header = f"{'layer':<16}{'kind':<12}{'shape':<30}{'fwd':>8}{'dgrad':>8}{'wgrad':>8}"
    say(f"{header}{'GFLOP':>8}{'% peak':>8}")
    total_compute = total_memory = 0.0
    for row in rows:
        if "gflop" in row:
            spent = row["forward_ms"] + row["dgrad_ms"] + (row["wgrad_ms"] or 0)
            total_compute += spent
            gflop = 3 * row["gflop"] if row["wgrad_ms"] is not None else 2 * row["gflop"]
            share = gflop * 1e9 / (spent / 1e3) / peak if spent else 0.0
            row["peak_share"] = share
            wgrad = f"{row['wgrad_ms']:8.2f}" if row["wgrad_ms"] is not None else f"{'-':>8}"
            say(
                f"{row['layer']:<16}{row['kind']:<12}{row['shape']:<30}{row['forward_ms']:8.2f}"
                f"{row['dgrad_ms']:8.2f}{wgrad}{row['gflop']:8.3f}{share:8.1%}"
            )
        else:
            total_memory += row["fwd_bwd_ms"]
            say(
                f"{row['layer']:<16}{row['kind']:<12}{row['shape']:<30}"
                f"{'fwd+bwd ' + format(row['fwd_bwd_ms'], '.2f'):>24}"
            )
    other = whole - total_compute - total_memory
    say(
        f"\nwhole training step: {whole:.1f} ms = convs/head {total_compute:.1f} ms "
        f"({total_compute / whole:.0%}) + memory-bound layers {total_memory:.1f} ms "
        f"({total_memory / whole:.0%}) + the rest (loss, optimizer, overhead) {other:.1f} ms "
        f"({other / whole:.0%})"
    )
    if args.text:
        args.text.write_text("\n".join(printed) + "\n")
    if args.json:
        report = {
            "cpu": cpu_name(), "flags": list(cpu_flags()), "threads": torch.get_num_threads(),
            "load": load, "preset": args.preset, "widths": list(recipe.widths),
            "batch_size": recipe.batch_size, "optimizer": recipe.optimizer,
            "peak_gflops": peak / 1e9, "step_ms": whole,
            "layers": rows,
        }  # fmt: skip
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
