"""Time to a test accuracy: the lab's way versus visionblocks' ``fast`` recipe and fit() defaults.

Same machine, same run, ratios printed. Sides (``--sides``):

* ``lab-simple_cnn``, ``lab-resnet20``: the lab's way (``benchmarks/_lab_baseline.py``):
  per-sample PIL transforms (``RandomCrop(S, padding=4)``, ``RandomHorizontalFlip``,
  ``ToTensor``, ``Normalize``) in a ``DataLoader(num_workers=2)``, fp32, ``Adam(1e-3)``,
  batch 128, a hand-written loop, the lab's ``simple_cnn`` / ``resnet_cifar(depth=20)``;
* ``fast``: :func:`visionblocks.recipes.train_fast` with the dataset's preset;
  ``fast:E`` the same with ``E`` epochs (a longer run, e.g. for 94%);
* ``fit-defaults-resnet20``: ``fit(resnet_cifar(depth=20), train, test, epochs=E)`` with every
  other argument left at its default (issue 4's "defaults that win", target 92%).

Every side evaluates the full test set after every epoch, and that time counts: a side's
time to a target is the wall time from the creation of its loaders (the dataset is already
in memory, loaded once for all sides) to the end of the first evaluation at or above the
target. Each side stops when it has reached all targets or its budget
(``--lab-seconds`` / ``--max-epochs`` for the lab, ``--max-seconds`` for ours) runs out;
a target not reached is reported as such and the ratio becomes a lower bound (">=").

CPU efficiency: the bf16 matmul peak of this machine (a large ``torch.matmul`` under the
same thread count) next to the ``fast`` recipe's training FLOP/s (FLOPs of one training
step counted with ``torch.utils.flop_counter.FlopCounterMode``, times its measured steps
per second of training).

Usage (the numbers in docs/speed.rst)::

    .venv/bin/python benchmarks/time_to_accuracy.py --threads 1 --max-seconds 300
    # issue 4's target only:
    .venv/bin/python benchmarks/time_to_accuracy.py --targets 0.92 \
        --sides lab-resnet20 fit-defaults-resnet20
    # CUDA, CIFAR-10 from a local copy (cifar-10-batches-py under --root):
    .venv/bin/python benchmarks/time_to_accuracy.py --dataset cifar10 --root DATA \
        --device cuda --targets 0.94 --sides fast lab-resnet20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _lab_baseline import Run, lab_time_to_accuracy
from torch.utils.flop_counter import FlopCounterMode

import visionblocks as vb
from visionblocks._device import cpu_flags as present_cpu_flags
from visionblocks._device import cpu_name
from visionblocks.recipes import RECIPE_PRESETS, FastRecipe, fast_recipe, train_fast
from visionblocks.train import Callback, RunState, fit, resolve_plan

# airbench94's published figure (https://github.com/KellerJordan/cifar10-airbench):
# 94.01% mean CIFAR-10 test accuracy in 3.29 s on one NVIDIA A100.
AIRBENCH_SECONDS, AIRBENCH_GPU = 3.29, "A100"
SIDES = ("lab-simple_cnn", "lab-resnet20", "fast", "fit-defaults-resnet20")


def side_name(text: str) -> str:
    """An argparse type: one of ``SIDES``, ``fast:E`` (the dataset's preset with E epochs)
    or ``fast:NAME`` (the preset ``NAME`` of ``RECIPE_PRESETS``)."""
    tail = text.removeprefix("fast:")
    if text in SIDES or (tail != text and (tail.isdigit() and int(tail) >= 1)):
        return text
    if tail != text and tail in RECIPE_PRESETS:
        return text
    raise argparse.ArgumentTypeError(
        f"unknown side {text!r}; choose from {SIDES}, fast:E or fast:NAME with NAME one of "
        f"{sorted(RECIPE_PRESETS)}"
    )


def side_recipe(side: str, dataset: str, epochs: int | None) -> FastRecipe:
    """The recipe a ``fast`` side trains: its preset, with ``--epochs`` or ``fast:E`` applied."""
    tail = side.partition(":")[2]
    recipe = fast_recipe(tail if tail in RECIPE_PRESETS else dataset)
    if tail.isdigit():
        return dataclasses.replace(recipe, epochs=int(tail))
    return dataclasses.replace(recipe, epochs=epochs) if epochs else recipe


class Clock(Callback):
    """Record (epoch, seconds since ``start``, val_acc) after every epoch; stop when done
    (every target reached or ``max_seconds`` passed) unless ``stop=False``."""

    def __init__(
        self,
        run: Run,
        start: float,
        targets: Sequence[float],
        max_seconds: float,
        *,
        stop: bool = True,
        data: str = "test",
    ) -> None:
        self.run, self.start, self.targets, self.max_seconds = run, start, targets, max_seconds
        self.stop, self.data = stop, data

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        if "val_acc" not in metrics:  # fit(val_every=N) skipped this epoch's validation
            return
        if trainer.plan.device.type == "cuda":
            torch.cuda.synchronize(trainer.plan.device)
        elapsed = time.perf_counter() - self.start
        self.run.evals.append((epoch, elapsed, metrics["val_acc"]))
        self.run.seconds = elapsed
        print(
            f"  {self.run.name}: epoch {epoch} {self.data} acc {metrics['val_acc']:.2%} at "
            f"{elapsed:.0f} s"
        )
        if not self.stop:
            return
        if all(self.run.time_to(t) is not None for t in self.targets):
            trainer.should_stop, self.run.stopped = True, "all targets reached"
        elif elapsed > self.max_seconds:
            trainer.should_stop = True
            self.run.stopped = f"budget of {self.max_seconds:.0f} s ran out"


def run_fast(
    name: str,
    recipe: FastRecipe,
    train: vb.ImageDataset,
    test: vb.ImageDataset,
    args: argparse.Namespace,
    seed: int,
) -> Run:
    run = Run(name)
    start = time.perf_counter()
    clock = Clock(run, start, args.targets, args.max_seconds)
    torch.manual_seed(seed)  # the network's initial weights
    result = train_fast(
        train, test, recipe=recipe, callbacks=[clock], device=args.device, progress=False,
        seed=seed,
    )  # fmt: skip
    run.stopped = run.stopped or f"{recipe.epochs} epochs done"
    run.images_per_second = sum(result.history["images_per_second"]) / len(result.history)
    run.extra["final_tta"] = result.accuracy or 0.0  # the last validation, with flip TTA
    return run


def run_fit_defaults(
    train: vb.ImageDataset, test: vb.ImageDataset, args: argparse.Namespace, seed: int
) -> Run:
    run = Run("fit-defaults-resnet20")
    torch.manual_seed(seed)
    model = vb.resnet_cifar(
        num_classes=train.num_classes, in_channels=train.image_shape[0], depth=20
    )
    start = time.perf_counter()
    history = fit(
        model, train, test, epochs=args.fit_epochs, device=args.device, progress=False,
        seed=seed, callbacks=[Clock(run, start, args.targets, args.max_seconds)],
    )  # fmt: skip
    run.stopped = run.stopped or f"{args.fit_epochs} epochs done"
    run.images_per_second = sum(history["images_per_second"]) / len(history)
    return run


def matmul_peak(dtype: torch.dtype, device: torch.device, seconds: float = 3.0) -> float:
    """FLOP/s of repeated ``n x n`` matmuls in ``dtype`` (the best of several timings)."""
    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t = time.perf_counter()
        torch.matmul(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def train_step_flops(recipe: FastRecipe, train: vb.ImageDataset, device: str) -> float:
    """FLOPs of one training step (forward + backward) of the recipe at its batch size."""
    plan = resolve_plan(device)
    model = plan.prepare(recipe.build_model(train.num_classes, train.image_shape[0]))
    x = torch.randn(recipe.batch_size, *train.image_shape, device=plan.device)
    x = x.contiguous(memory_format=plan.memory_format)
    y = torch.randint(train.num_classes, (recipe.batch_size,), device=plan.device)
    with FlopCounterMode(display=False) as counter:
        with plan.autocast():
            logits = model(x)
        F.cross_entropy(logits.float(), y).backward()  # type: ignore[no-untyped-call]
    return float(counter.get_total_flops())


def lab_seconds(args: argparse.Namespace, runs: dict[str, Run]) -> float:
    """A lab side's budget: ``--lab-factor`` times fast's time to the first target, if set."""
    if not args.lab_factor:
        return float(args.lab_seconds)
    fast_s = runs["fast"].time_to(args.targets[0]) if "fast" in runs else None
    if fast_s is None:
        print(f"  fast did not reach {args.targets[0]:.0%}: budget --lab-seconds instead")
        return float(args.lab_seconds)
    print(f"  budget {args.lab_factor:g} x {fast_s:.1f} s = {args.lab_factor * fast_s:.0f} s")
    return args.lab_factor * fast_s


def describe(run: Run, targets: Sequence[float]) -> str:
    parts = []
    for t in targets:
        s = run.time_to(t)
        parts.append(f"{t:.0%}: {s:7.1f} s" if s is not None else f"{t:.0%}: not reached")
    final = ""
    if "final_tta" in run.extra:
        final = f", final with flip TTA {run.extra['final_tta']:.2%}"
    if "final" in run.extra:
        final = f", {run.extra['final']:.2%} when the budget ran out (untimed)"
    return (
        f"{run.name:<22} {' | '.join(parts)}  best {run.best:.2%} in {len(run.evals)} evals, "
        f"{run.seconds:.0f} s, {run.images_per_second:.0f} train img/s{final} ({run.stopped})"
    )


def ratio(lab: Run, ours: Run, target: float) -> str:
    ours_s, lab_s = ours.time_to(target), lab.time_to(target)
    if ours_s is None:
        return f"{ours.name} did not reach {target:.0%}: no ratio"
    if lab_s is None:
        return f">= {lab.seconds / ours_s:.1f}x ({lab.name} not reached in {lab.seconds:.0f} s)"
    return f"{lab_s / ours_s:.1f}x"


def lab_epochs(runs: dict[str, Run], target: float) -> dict[str, tuple[float, float] | None]:
    """For each of our sides: (its seconds to ``target``, that time in lab epochs), where a
    lab epoch is the first epoch of the first lab side, its test evaluation included."""
    lab = next((r for side, r in runs.items() if side.startswith("lab-") and r.evals), None)
    out: dict[str, tuple[float, float] | None] = {}
    if lab is None:
        return out
    for side, run in runs.items():
        if side.startswith("lab-"):
            continue
        seconds = run.time_to(target)
        out[side] = None if seconds is None else (seconds, seconds / lab.evals[0][1])
    return out


def run_sides(
    sides: Sequence[str],
    train: vb.ImageDataset,
    test: vb.ImageDataset,
    args: argparse.Namespace,
    seed: int,
) -> dict[str, Run]:
    """Every side once, with ``seed``, in order."""
    plan = resolve_plan(args.device)
    runs: dict[str, Run] = {}
    for side in sides:
        print(f"{side} (seed {seed}):")
        if side.startswith("lab-"):
            arch = side.removeprefix("lab-")
            c, size = train.image_shape[0], train.image_shape[-1]
            model = (
                vb.simple_cnn(train.num_classes, c, image_size=size)
                if arch == "simple_cnn"
                else vb.resnet_cifar(train.num_classes, c, depth=20)
            )
            runs[side] = lab_time_to_accuracy(
                side, model, train, test, targets=args.targets, device=plan.device,
                max_epochs=args.max_epochs, max_seconds=lab_seconds(args, runs), seed=seed,
            )  # fmt: skip
        elif side.startswith("fast"):
            recipe = side_recipe(side, args.dataset, args.epochs)
            runs[side] = run_fast(side, recipe, train, test, args, seed)
        else:
            runs[side] = run_fit_defaults(train, test, args, seed)
    return runs


def summarize_lab_epochs(
    per_seed: dict[int, dict[str, Run]], targets: Sequence[float]
) -> dict[str, Any]:
    """Print and return each side's time to each target in lab epochs, per seed and mean."""
    report: dict[str, Any] = {}
    first = next(iter(per_seed.values()))
    lab_sides = [s for s in first if s.startswith("lab-")]
    if not lab_sides:
        return report
    lab_epoch = [runs[lab_sides[0]].evals[0][1] for runs in per_seed.values()]
    spread = f" +- {statistics.stdev(lab_epoch):.1f}" if len(lab_epoch) > 1 else ""
    print(
        f"\none lab epoch ({lab_sides[0]}'s first epoch and its test evaluation): "
        f"{statistics.mean(lab_epoch):.1f}{spread} s over {len(lab_epoch)} seed(s)"
    )
    for t in targets:
        per_run = [lab_epochs(runs, t) for runs in per_seed.values()]
        for side in (s for s in first if not s.startswith("lab-")):
            found = [in_lab_epochs.get(side) for in_lab_epochs in per_run]
            shown = ", ".join(
                "not reached" if f is None else f"{f[0]:.1f} s = {f[1]:.2f}" for f in found
            )
            key = f"{side} to {t:.0%}"
            report[key] = {
                "seconds": [None if f is None else f[0] for f in found],
                "per_seed": [None if f is None else f[1] for f in found],
                "lab_epochs": None,
            }
            if any(f is None for f in found):
                print(f"  {key}: {shown} (not reached by every seed: no mean)")
                continue
            ratios = [f[1] for f in found if f is not None]
            mean = statistics.mean(ratios)
            sd = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
            report[key].update(lab_epochs=mean, stdev=sd)
            print(
                f"  {key}: seconds to {t:.0%} / seconds of one lab epoch = {mean:.2f} +- "
                f"{sd:.2f} (seeds {list(per_seed)}: {shown})"
            )
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist or cifar10")
    parser.add_argument("--root", help="folder with the dataset files (CIFAR-10)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.93, 0.94])
    parser.add_argument(
        "--sides", nargs="+", default=list(SIDES), type=side_name,
        help=f"some of {', '.join(SIDES)}, fast:E, fast:PRESET (default: {' '.join(SIDES)})",
    )  # fmt: skip
    parser.add_argument("--max-seconds", type=float, default=900.0, help="budget of our sides")
    parser.add_argument("--lab-seconds", type=float, default=600.0, help="budget per lab side")
    parser.add_argument(
        "--lab-factor", type=float, help="budget per lab side = this many times the fast "
        "recipe's time to the first target (fast then runs first); overrides --lab-seconds",
    )  # fmt: skip
    parser.add_argument("--max-epochs", type=int, default=50, help="epoch budget per lab side")
    parser.add_argument("--fit-epochs", type=int, default=4, help="epochs of fit-defaults")
    parser.add_argument("--epochs", type=int, help="override the fast recipe's epochs")
    parser.add_argument("--limit", type=int, help="use only N training images (development)")
    parser.add_argument("--test-limit", type=int, help="use only N test images (development)")
    parser.add_argument("--threads", type=int, help="torch threads for every side")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    train = vb.load_dataset(args.dataset, root=args.root)
    test = vb.load_dataset(args.dataset, split="test", root=args.root)
    if args.limit and args.limit < len(train):
        train = vb.subset(train, args.limit / len(train), seed=0)
    if args.test_limit and args.test_limit < len(test):
        test = vb.subset(test, args.test_limit / len(test), seed=0)
    plan = resolve_plan(args.device)
    sides = list(dict.fromkeys(args.sides))
    if args.lab_factor and "fast" in sides:
        sides = ["fast", *(s for s in sides if s != "fast")]
    lab_budget = f"{args.lab_seconds:.0f} s per lab side"
    if args.lab_factor:
        first = f"{args.targets[0]:.0%}"
        lab_budget = f"{args.lab_factor:g}x the fast recipe's time to {first} per lab side"
    print(
        f"{args.dataset}: {len(train):,} train / {len(test):,} test images; {plan.describe()} "
        f"for visionblocks; {torch.get_num_threads()} torch threads; CPU flags: {cpu_flags()}; "
        f"targets {', '.join(f'{t:.0%}' for t in args.targets)}; budgets {lab_budget}, "
        f"{args.max_epochs} epochs per lab side, {args.max_seconds:.0f} s per visionblocks side"
    )
    per_seed = {seed: run_sides(sides, train, test, args, seed) for seed in args.seeds}

    report: dict[str, Any] = {
        "seeds": args.seeds, "cpu_flags": cpu_flags(), "cpu": cpu_name(),
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average": os.getloadavg()[0], "runs": {}, "ratios": {},
    }  # fmt: skip
    if plan.device.type == "cuda":
        report["device"] = f"{torch.cuda.get_device_name(plan.device)} (torch {torch.__version__})"
    print("\nresults (seconds include the per-epoch evaluations on the full test set):")
    for seed, runs in per_seed.items():
        for side, run in runs.items():
            print(f"  seed {seed}: " + describe(run, args.targets))
            report["runs"].setdefault(side, {})[seed] = vars(run)
        for ours in (s for s in runs if not s.startswith("lab-")):
            for lab in (s for s in runs if s.startswith("lab-")):
                for t in args.targets:
                    text = ratio(runs[lab], runs[ours], t)
                    report["ratios"][f"{ours} vs {lab} to {t:.0%}, seed {seed}"] = text
                    print(f"  seed {seed}: speed-up to {t:.0%}, {ours} vs {lab}: {text}")
    report["lab_epochs"] = summarize_lab_epochs(per_seed, args.targets)

    runs = per_seed[args.seeds[0]]
    fast_sides = [s for s in runs if s.startswith("fast")]
    # What each recipe side trained, so that a report stays readable when the presets change.
    report["recipes"] = {
        s: dataclasses.asdict(side_recipe(s, args.dataset, args.epochs)) for s in fast_sides
    }
    if fast_sides:
        dtype = torch.bfloat16 if plan.precision == "bf16" else torch.float32
        peak = matmul_peak(dtype, plan.device)
        report["efficiency_by_side"] = {}
        for side in fast_sides:
            fast = runs[side]
            recipe = side_recipe(side, args.dataset, args.epochs)
            flops = train_step_flops(recipe, train, args.device)
            achieved = flops * fast.images_per_second / recipe.batch_size
            efficiency = {"step_flops": flops, "achieved": achieved, "peak": peak}
            report["efficiency_by_side"][side] = efficiency
            report.setdefault("efficiency", efficiency)  # the first recipe side's
            print(
                f"\nefficiency: one training step of {fast.name} (batch {recipe.batch_size}) = "
                f"{flops / 1e9:.1f} GFLOP; at {fast.images_per_second:.0f} img/s that is "
                f"{achieved / 1e9:.1f} GFLOP/s = {achieved / peak:.1%} of this machine's "
                f"{str(dtype).removeprefix('torch.')} matmul peak ({peak / 1e9:.1f} GFLOP/s)"
            )
        times_94 = [t for t in (runs[s].time_to(0.94) for s in fast_sides) if t is not None]
        fast_s = min(times_94, default=None)
        if plan.device.type == "cuda" and args.dataset == "cifar10":
            shown = f"{fast_s:.1f} s" if fast_s is not None else "not reached"
            print(
                f"GPU: fast recipe to 94% on {torch.cuda.get_device_name(plan.device)}: {shown}; "
                f"airbench94: {AIRBENCH_SECONDS} s on an {AIRBENCH_GPU} (published)"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str) + "\n")


def cpu_flags() -> str:
    """The CPU features that decide the kernels (AVX-512 BF16, AMX), space-separated."""
    return " ".join(f for f in present_cpu_flags() if f.startswith(("avx512", "amx"))) or (
        "none of avx512f/avx512_bf16/amx"
    )


if __name__ == "__main__":
    main()
