"""What every example shares: its command line, data loading with ``--limit``, output folder.

Not part of the package: the examples put their own folder on ``sys.path`` (Python does
that for the script being run), so ``import _common`` finds this file.

Every example accepts::

    --dataset sample|fashion-mnist|mnist|cifar10|cifar100|FOLDER   (default: sample, offline)
    --root DIR        where the dataset files are (CIFAR-10: the folder with cifar-10-batches-py)
    --epochs N        training budget per model
    --limit N         at most N images per split (class-balanced), for quick tries
    --out DIR         where plots and CSVs go (default: runs/examples/<example name>)
    --seed, --batch-size, --device, --precision, --no-progress
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

import visionblocks as vb


def make_parser(description: str, *, epochs: int) -> argparse.ArgumentParser:
    """The shared arguments; an example adds its own and calls ``parse_args``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="sample", help="default: %(default)s (offline)")
    parser.add_argument("--root", help="folder holding the dataset files")
    parser.add_argument("--epochs", type=int, default=epochs, help="default: %(default)s")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N images per split")
    parser.add_argument("--batch-size", type=int, default=128, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--precision", default="auto", help="auto, bf16, fp16 or fp32")
    parser.add_argument("--out", help="output folder (default: runs/examples/<example>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def limit(dataset: vb.ImageDataset, max_images: int | None) -> vb.ImageDataset:
    """At most ``max_images`` images, the same share of every class."""
    if max_images is None or max_images >= len(dataset):
        return dataset
    small = vb.subset(dataset, max_images / len(dataset), seed=0)
    if len(small) > max_images:  # per-class rounding can overshoot by a few images
        small = vb.subset(small, max_images / len(small), stratified=False, seed=0)
    return dataclasses.replace(small, name=f"{dataset.name}[:{len(small)}]")


def load_data(args: argparse.Namespace) -> tuple[vb.ImageDataset, vb.ImageDataset]:
    """The train and test splits of ``--dataset``, cut to ``--limit``; prints what was loaded."""
    train = limit(vb.load_dataset(args.dataset, "train", root=args.root), args.limit)
    test = limit(vb.load_dataset(args.dataset, "test", root=args.root), args.limit)
    c, h, w = train.image_shape
    print(
        f"data: {train.name} {len(train):,} train / {len(test):,} test images, {c}x{h}x{w}, "
        f"{train.num_classes} classes"
    )
    return train, test


def out_dir(args: argparse.Namespace) -> Path:
    """``--out`` (created), default ``runs/examples/<script name>``."""
    name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "example"
    path = Path(args.out) if args.out else Path("runs") / "examples" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`visionblocks.fit` that come from the command line."""
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "progress": not args.no_progress,
    }


def has_matplotlib() -> bool:
    """Whether plots can be drawn (``pip install visionblocks[viz]``)."""
    return importlib.util.find_spec("matplotlib") is not None


def num_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def pct(fraction: float) -> str:
    """An accuracy (a fraction) as a percentage: ``0.8412 -> '84.12%'``."""
    return f"{fraction:.2%}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print rows as a right-aligned text table (ints with thousands separators, floats .4f).

    Format accuracies with :func:`pct` first; they are fractions, not losses.
    """

    def cell(value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return str(value)
        return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"

    texts = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in texts)) for i, h in enumerate(headers)]
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in texts:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths, strict=True)))


def export_onnx_and_finish(model: nn.Module | Path, out: Path, started: float) -> None:
    """Export ``model`` to ``out/model.onnx`` (or say why not), then the run's total time."""
    try:
        exported = vb.export(model, out / "model.onnx")
    except ImportError as err:  # onnx, onnxscript, onnxruntime: pip install 'visionblocks[export]'
        print(f"ONNX export skipped: {err}")
    else:
        print(exported)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; outputs in {out}")


def print_curves(history: vb.History) -> None:
    """The learning curves as a table: one row per epoch."""
    rows = [
        [
            int(r["epoch"]),
            r["train_loss"],
            pct(r["train_acc"]),
            r.get("val_loss", float("nan")),
            pct(r.get("val_acc", float("nan"))),
            f"{r['lr']:.2e}",
        ]
        for r in history.records
    ]
    print_table(["epoch", "train loss", "train acc", "test loss", "test acc", "lr"], rows)


def train_and_test(
    name: str,
    model: nn.Module,
    train: vb.ImageDataset,
    test: vb.ImageDataset,
    args: argparse.Namespace,
    **fit_kwargs: Any,
) -> tuple[vb.History, vb.EvalResult, float]:
    """Fit ``model`` (validating on ``test`` every epoch) and evaluate it; prints the summary."""
    print(f"\n== {name}: {num_params(model):,} parameters, {args.epochs} epochs ==")
    started = time.perf_counter()
    history = vb.fit(model, train, test, **fit_options(args), **fit_kwargs)
    seconds = time.perf_counter() - started
    result = vb.evaluate(model, test, device=args.device, precision=args.precision)
    print_curves(history)
    print(f"{name}: test accuracy {result.accuracy:.2%} ({seconds:.0f} s of training)")
    return history, result, seconds
