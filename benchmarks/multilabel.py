"""Multi-label classification on Fashion-MNIST mosaics: mAP and macro-F1 over seeds.

Each image is a 2x2 mosaic (56x56) of Fashion-MNIST garments: every cell holds a garment
with probability ``--fill`` (else it stays black), at least one cell does, and the
garments are drawn uniformly from the split's images. An image's labels are the
classes in it (a class twice is one label), so it has one to four of the ten labels.
``--train`` mosaics are made from the training split and ``--test`` from the test
split (drawn once with ``--data-seed``, so every run sees the same sets).

Each run trains the ``fast`` recipe's network and settings
(``fast_recipe("fashion-mnist")``: whitened first layer, one-cycle SGD, label smoothing,
weight EMA, pad-crop and flip, which only move garments between cells) for ``--epochs``
epochs on the multi-hot targets: ``fit`` infers the task and trains with
``BCEWithLogitsLoss``. Each model is evaluated once on the test mosaics with
:func:`~visionblocks.train.evaluate`: mAP (mean over labels of the average precision),
macro-F1 of the labels predicted at the card's threshold 0.5 and the exact-match ratio
(every label of an image right). The table (mean ± std over seeds, then per seed) goes to
``docs/_generated/multilabel.rst``, which ``docs/imbalanced.rst`` includes::

    .venv/bin/python benchmarks/multilabel.py        # about 8 minutes on 2 busy CPU cores
    .venv/bin/python benchmarks/multilabel.py --dataset sample --train 500 --test 200 \
        --epochs 1 --seeds 0 --out -

Torch runs on ``--threads`` threads, default 1 (on 2 shared cores a second thread made
an epoch several times slower, measured for ``benchmarks/imbalance.py``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

import visionblocks as vb
from visionblocks.data import multi_hot
from visionblocks.recipes import fast_recipe
from visionblocks.train import EvalResult, evaluate, fit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_generated" / "multilabel.rst"


def mosaics(data: vb.ImageDataset, count: int, fill: float, seed: int) -> vb.ImageDataset:
    """``count`` 2x2 mosaics of ``data``'s images, labelled with the classes they show."""
    generator = torch.Generator().manual_seed(seed)
    filled = torch.rand(count, 4, generator=generator) < fill  # (N, 4) cells with a garment
    empty = ~filled.any(dim=1)
    filled[empty, torch.randint(4, (int(empty.sum()),), generator=generator)] = True
    picks = torch.randint(len(data), (count, 4), generator=generator)  # (N, 4) source images
    cells = data.images[picks] * filled[:, :, None, None, None]  # (N, 4, C, H, W), black if empty
    top = torch.cat([cells[:, 0], cells[:, 1]], dim=3)  # (N, C, H, 2W)
    bottom = torch.cat([cells[:, 2], cells[:, 3]], dim=3)
    images = torch.cat([top, bottom], dim=2)  # (N, C, 2H, 2W)
    label_sets = [data.labels[row[cell]].tolist() for row, cell in zip(picks, filled, strict=True)]
    return vb.ImageDataset(
        images.contiguous(), multi_hot(label_sets, data.num_classes), list(data.classes),
        name=f"{data.name} 2x2 mosaics",
    )  # fmt: skip


def run(
    train: vb.ImageDataset, test: vb.ImageDataset, seed: int, epochs: int
) -> tuple[EvalResult, float]:
    """Train the fast recipe's network on the mosaics; the test result and the seconds."""
    recipe = fast_recipe("fashion-mnist", epochs=epochs, val_every=epochs)
    vb.train.seed_everything(seed)  # the initial weights
    model = recipe.build_model(train.num_classes, train.image_shape[0])
    recipe.init_model(model, train)
    started = time.perf_counter()
    fit(model, train, seed=seed, progress=False, **recipe.fit_kwargs())
    seconds = time.perf_counter() - started
    return evaluate(model, test), seconds


def spread(values: Sequence[float]) -> str:
    """``mean ± std`` in percent (sample std over the seeds)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * std:.2f}"


def table(scores: list[tuple[float, float, float]], seeds: Sequence[int]) -> str:
    """An RST list-table: one row per metric, the mean ± std, then each seed."""
    header = ["Metric (test mosaics)", "Mean ± std (%)", *(f"Seed {s} (%)" for s in seeds)]
    names = ["mAP", "Macro-F1 at 0.5", "Exact match at 0.5"]
    rows = [
        [name, spread(values), *(f"{100 * v:.2f}" for v in values)]
        for name, values in zip(names, zip(*scores, strict=True), strict=True)
    ]
    lines = [
        ".. list-table:: Multi-label metrics of the fast recipe's network on held-out "
        "mosaics, mean ± std over the seeds, then per seed",
        "   :header-rows: 1",
        "",
    ]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines += [f"     - {cell}" for cell in row[1:]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist or sample")
    parser.add_argument("--root", help="folder of the dataset's files")
    parser.add_argument("--train", type=int, default=6000, help="training mosaics")
    parser.add_argument("--test", type=int, default=2000, help="test mosaics")
    parser.add_argument("--fill", type=float, default=0.5, help="chance that a cell is filled")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the mosaics")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default=str(OUT), help="the RST file to write, or - (stdout)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    source = vb.load_dataset(args.dataset, "train", root=args.root)
    train = mosaics(source, args.train, args.fill, args.data_seed)
    test = mosaics(vb.load_dataset(args.dataset, "test", root=args.root), args.test, args.fill,
                   args.data_seed + 1)  # fmt: skip
    per_image = float(train.labels.sum(dim=1).mean())
    chance = float(test.labels.mean(dim=0).mean())  # the mAP of random scores, in expectation
    scores: list[tuple[float, float, float]] = []
    seconds: list[float] = []
    started = time.perf_counter()
    for seed in args.seeds:
        result, took = run(train, test, seed, args.epochs)
        seconds.append(took)
        mean_ap = result.mean_average_precision
        assert mean_ap is not None  # a multi-label result
        scores.append((mean_ap, result.macro_f1, result.accuracy))
        print(
            f"seed {seed}: mAP {mean_ap:.2%}, macro-F1 {result.macro_f1:.2%}, exact match "
            f"{result.accuracy:.2%}, {took:.0f} s",
            flush=True,
        )
    total = time.perf_counter() - started

    command = " ".join(["python benchmarks/multilabel.py", *(argv or sys.argv[1:])]).strip()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    c, h, w = train.image_shape
    text = "\n".join([
        ".. This file is generated by benchmarks/multilabel.py; do not edit.",
        "",
        f"{len(train):,} training mosaics from {args.dataset}'s training split and "
        f"{len(test):,} test mosaics from its test split ({c}x{h}x{w}, each cell filled "
        f"with probability {args.fill}, drawn with seed {args.data_seed}): "
        f"{per_image:.2f} labels per image on average; random scores would give a mAP of "
        f"{chance:.1%} (the labels' mean prevalence). The fast recipe's network and "
        f"settings, {args.epochs} epochs; seeds {', '.join(map(str, args.seeds))}. "
        f"{len(seconds)} runs, {statistics.fmean(seconds):.0f} s of training each on "
        f"average, {total:.0f} s in all, on {cores} CPU cores ({platform.machine()}, "
        f"{args.threads} torch thread(s)), torch {torch.__version__}, visionblocks "
        f"{vb.__version__}. Command: ``{command}``.",
        "",
        table(scores, args.seeds),
        "",
    ])  # fmt: skip
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
