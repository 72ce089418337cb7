"""Class imbalance on Fashion-MNIST: no correction, class weights, a balanced sampler, focal loss.

The training set is drawn from Fashion-MNIST's training split: ``--per-class`` images
of each class (2,000 of the 6,000, so that the twelve runs fit in about a quarter of an
hour on 2 shared CPU cores), except three classes cut to 2% of that (``--minority``,
default Pullover, Coat and Shirt: the garments the full data already confuses most, with
each other and with T-shirts, so a rare one is easily absorbed by a common neighbour).
Which images are kept is drawn once with ``--data-seed``, so every run trains on the
same set. Each run trains the ``fast`` recipe's network with its settings
(``fast_recipe("fashion-mnist")``: one-cycle SGD, label smoothing 0.1, a weight EMA,
flips) for ``--epochs`` epochs, once per seed for each way of handling the imbalance:

* ``none``: ``fit``'s label-smoothed cross-entropy, every image once per epoch;
* ``class weights``: ``fit(class_weight="balanced")``, ``n / (K * n_c)`` per class;
* ``sampler``: ``fit(sampler="balanced")``, each class drawn equally often, with
  replacement, an epoch as long as the training set;
* ``focal``: ``fit(loss="focal")``, gamma 2, with the same label smoothing.

Each model is evaluated once on the full, balanced test split (10,000 images) with
:func:`~visionblocks.train.evaluate` (no TTA): macro-F1 and the mean recall of the
minority classes (``EvalResult.macro_f1``, ``EvalResult.recall``). The table (mean ± std
over seeds, then per seed) goes to ``docs/_generated/imbalance.rst``, which
``docs/imbalanced.rst`` includes::

    .venv/bin/python benchmarks/imbalance.py            # about 15 minutes on 2 busy CPU cores
    .venv/bin/python benchmarks/imbalance.py --dataset sample --per-class 100 --epochs 1 \
        --seeds 0 --out -

Torch runs on ``--threads`` threads, default 1: on 2 cores shared with other jobs a
second thread made an epoch 6x slower (each op waits for its slowest thread), measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

import visionblocks as vb
from visionblocks.recipes import fast_recipe
from visionblocks.train import EvalResult, evaluate, fit

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_generated" / "imbalance.rst"
MINORITY = ("Pullover", "Coat", "Shirt")
METHODS: dict[str, dict[str, Any]] = {
    "none": {},
    "class weights": {"class_weight": "balanced"},
    "sampler": {"sampler": "balanced"},
    "focal": {"loss": "focal"},
}
CODE = {
    "none": "``fit(...)``",
    "class weights": '``class_weight="balanced"``',
    "sampler": '``sampler="balanced"``',
    "focal": '``loss="focal"`` (gamma 2)',
}


def imbalanced(
    data: vb.ImageDataset, per_class: int, minority: Sequence[int], keep: float, seed: int
) -> vb.ImageDataset:
    """``per_class`` images of each class of ``data``, ``keep`` of that for ``minority``.

    The images are drawn with ``seed`` and kept in their order in ``data``.
    """
    generator = torch.Generator().manual_seed(seed)
    kept = torch.zeros(len(data), dtype=torch.bool)
    for label in range(data.num_classes):
        members = (data.labels == label).nonzero().flatten()
        count = min(per_class, len(members))
        count = max(1, round(keep * count)) if label in minority else count
        kept[members[torch.randperm(len(members), generator=generator)[:count]]] = True
    return dataclasses.replace(
        data, images=data.images[kept], labels=data.labels[kept], name=f"{data.name} (imbalanced)"
    )


def run(
    train: vb.ImageDataset,
    test: vb.ImageDataset,
    method: dict[str, Any],
    seed: int,
    epochs: int,
) -> tuple[EvalResult, float]:
    """Train the fast recipe's network with ``method``'s fit arguments; test result, seconds."""
    recipe = fast_recipe("fashion-mnist", epochs=epochs, val_every=epochs)
    vb.train.seed_everything(seed)  # the initial weights
    model = recipe.build_model(train.num_classes, train.image_shape[0])
    recipe.init_model(model, train)
    started = time.perf_counter()
    fit(model, train, seed=seed, progress=False, **recipe.fit_kwargs(), **method)
    seconds = time.perf_counter() - started
    return evaluate(model, test), seconds


def minority_recall(result: EvalResult, minority: Sequence[int]) -> float:
    """Mean recall of the minority classes."""
    return statistics.fmean(result.recall[c] for c in minority)


def spread(values: Sequence[float]) -> str:
    """``mean ± std`` in percent (sample std over the seeds)."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.fmean(values):.2f} ± {100 * std:.2f}"


def table(results: dict[str, list[tuple[float, float, float]]], seeds: Sequence[int]) -> str:
    """An RST list-table: per method, the means ± std, then macro-F1 / minority recall per seed."""
    header = ["Method", "Macro-F1 (%)", "Minority recall (%)", "Accuracy (%)"]
    header += [f"Seed {s}: F1 / recall" for s in seeds]
    rows = []
    for name, per_seed in results.items():
        f1s, recalls, accuracies = zip(*per_seed, strict=True)
        row = [CODE[name], spread(f1s), spread(recalls), spread(accuracies)]
        row += [f"{100 * f1:.2f} / {100 * r:.2f}" for f1, r, _ in per_seed]
        rows.append(row)
    lines = [
        ".. list-table:: Test macro-F1 and the minority classes' mean recall, mean ± std "
        "over the seeds, then per seed",
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
    parser.add_argument("--per-class", type=int, default=2000, help="images of a common class")
    parser.add_argument("--minority", nargs="+", default=list(MINORITY), help="class names")
    parser.add_argument("--keep", type=float, default=0.02, help="share of a minority class kept")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the images kept")
    parser.add_argument("--epochs", type=int, default=2, help="the fast recipe's 2")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--out", default=str(OUT), help="the RST file to write, or - (stdout)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    full = vb.load_dataset(args.dataset, "train", root=args.root)
    test = vb.load_dataset(args.dataset, "test", root=args.root)
    minority = [full.classes.index(name) for name in args.minority]
    train = imbalanced(full, args.per_class, minority, args.keep, args.data_seed)
    counts = torch.bincount(train.labels, minlength=train.num_classes).tolist()
    results: dict[str, list[tuple[float, float, float]]] = {}
    seconds: list[float] = []
    started = time.perf_counter()
    for name in args.methods:
        results[name] = []
        for seed in args.seeds:
            result, took = run(train, test, METHODS[name], seed, args.epochs)
            seconds.append(took)
            scores = (result.macro_f1, minority_recall(result, minority), result.accuracy)
            results[name].append(scores)
            print(
                f"{name:>13}  seed {seed}: macro-F1 {scores[0]:.2%}, minority recall "
                f"{scores[1]:.2%} ({', '.join(f'{result.recall[c]:.0%}' for c in minority)}), "
                f"accuracy {scores[2]:.2%}, {took:.0f} s",
                flush=True,
            )
    total = time.perf_counter() - started

    command = " ".join(["python benchmarks/imbalance.py", *(argv or sys.argv[1:])]).strip()
    minority_text = ", ".join(
        f"{full.classes[c]} {counts[c]}" for c in minority
    )  # e.g. "Pullover 120"
    common = min(n for c, n in enumerate(counts) if c not in minority)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = "\n".join([
        ".. This file is generated by benchmarks/imbalance.py; do not edit.",
        "",
        f"Training set: {len(train):,} images of {args.dataset}'s training split, "
        f"{common:,} of each common class and {args.keep:.0%} of that of the minority "
        f"classes: {minority_text} (drawn with seed {args.data_seed}); test set: all "
        f"{len(test):,} test images. The fast recipe's network and settings, {args.epochs} "
        f"epochs; seeds {', '.join(map(str, args.seeds))}. {len(seconds)} runs, "
        f"{statistics.fmean(seconds):.0f} s of training each on average, {total:.0f} s in all, "
        f"on {cores} CPU cores ({platform.machine()}, {args.threads} torch thread(s)), torch "
        f"{torch.__version__}, visionblocks {vb.__version__}. Command: ``{command}``.",
        "",
        table(results, args.seeds),
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
