"""Train the ``fast`` recipe with some fields overridden; print its accuracy and time.

How the Fashion-MNIST presets were chosen (docs/speed.rst, "Choosing the Fashion-MNIST
preset"). Each argument is one configuration: a JSON object of
:class:`~visionblocks.recipes.FastRecipe` fields. Every configuration runs once per seed
(``--seeds``), and each run prints the validation accuracy after every epoch it validates
(flip TTA if the recipe says so) and its wall time, evaluations included.

Tuning is done on a held-out part of the training set, never on the test set: by default
``--holdout 10000`` trains on 50,000 training images and validates on the other 10,000 (a
stratified split fixed by ``--split-seed``). ``--test`` trains on all 60,000 and reports
the 10,000 official test images instead; use it once per chosen configuration::

    .venv/bin/python benchmarks/recipe_sweep.py '{"epochs": 3}' '{"epochs": 4}' --seeds 0 1 2
    .venv/bin/python benchmarks/recipe_sweep.py '{"epochs": 3}' --test --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence

import torch
from _lab_baseline import Run
from time_to_accuracy import Clock

import visionblocks as vb
from visionblocks.recipes import RECIPE_PRESETS, fast_recipe, train_fast


def holdout_split(
    data: vb.ImageDataset, count: int, *, seed: int
) -> tuple[vb.ImageDataset, vb.ImageDataset]:
    """Split ``data`` into (rest, held out) with ``count`` held-out images, stratified."""
    generator = torch.Generator().manual_seed(seed)
    held: list[torch.Tensor] = []
    for c in range(data.num_classes):
        members = torch.nonzero(data.labels == c).flatten()
        share = round(count * len(members) / len(data))
        held.append(members[torch.randperm(len(members), generator=generator)[:share]])
    mask = torch.zeros(len(data), dtype=torch.bool)
    mask[torch.cat(held)] = True

    def part(keep: torch.Tensor, name: str) -> vb.ImageDataset:
        return vb.ImageDataset(
            data.images[keep], data.labels[keep], list(data.classes), f"{data.name}/{name}"
        )

    return part(~mask, "fit"), part(mask, "holdout")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="JSON overrides, e.g. '{\"epochs\": 5}'")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--preset", help="the preset to override (default: the dataset's)")
    parser.add_argument("--target", type=float, default=0.93)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--holdout", type=int, default=10_000, help="held-out training images")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--test", action="store_true", help="report the official test set")
    args = parser.parse_args(argv)
    preset = args.preset or args.dataset
    if preset not in RECIPE_PRESETS:
        parser.error(f"unknown preset {preset!r}; choose from {sorted(RECIPE_PRESETS)}")
    train = vb.load_dataset(args.dataset)
    if args.test:
        val, where = vb.load_dataset(args.dataset, split="test"), "test"
    else:
        train, val = holdout_split(train, args.holdout, seed=args.split_seed)
        where = "held-out"
    print(
        f"{args.dataset}: preset {preset!r}, {len(train):,} training images, accuracy on "
        f"{len(val):,} {where} images; {torch.get_num_threads()} torch threads"
    )
    for spec in args.runs:
        overrides = json.loads(spec)
        if "widths" in overrides:
            overrides["widths"] = tuple(overrides["widths"])
        recipe = fast_recipe(preset, **overrides)
        finals, seconds = [], []
        for seed in args.seeds:
            run = Run(spec)
            start = time.perf_counter()
            clock = Clock(run, start, [args.target], math.inf, stop=False, data=where)
            torch.manual_seed(seed)  # the network's initial weights
            result = train_fast(
                train, val, recipe=recipe, callbacks=[clock], progress=False, seed=seed
            )
            epochs = ", ".join(f"{a:.2%} ({s:.1f} s)" for _, s, a in run.evals)
            hit = run.time_to(args.target)
            reached = f"{hit:.1f} s" if hit is not None else "not reached"
            print(f"{spec} seed {seed}: {epochs}; {args.target:.0%}: {reached}", flush=True)
            finals.append(result.accuracy or 0.0)
            seconds.append(result.seconds)
        if len(args.seeds) > 1:
            spread = statistics.stdev(finals)
            print(
                f"{spec}: final {statistics.mean(finals):.2%} +- {spread:.2%} "
                f"(min {min(finals):.2%}, {len(finals)} seeds) in {statistics.mean(seconds):.1f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
