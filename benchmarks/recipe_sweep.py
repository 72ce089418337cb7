"""Train the ``fast`` recipe with some fields overridden; print its accuracy after every epoch.

How the Fashion-MNIST preset was chosen (docs/speed.rst, "Choosing the Fashion-MNIST
preset"). Each argument is one run: a JSON object of :class:`~visionblocks.recipes.FastRecipe`
fields, plus an optional ``"seed"``. Accuracies are flip-TTA test accuracies (the recipe
validates with TTA), times are seconds since the run started, evaluations included::

    .venv/bin/python benchmarks/recipe_sweep.py '{"epochs": 5}' '{"epochs": 5, "padding": 0}' \\
        '{"epochs": 5, "padding": 0, "seed": 1}'
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Sequence

from _lab_baseline import Run
from time_to_accuracy import Clock

import visionblocks as vb
from visionblocks.recipes import fast_recipe, train_fast


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="JSON overrides, e.g. '{\"epochs\": 5}'")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--target", type=float, default=0.93)
    args = parser.parse_args(argv)
    train = vb.load_dataset(args.dataset)
    test = vb.load_dataset(args.dataset, split="test")
    for spec in args.runs:
        overrides = json.loads(spec)
        seed = overrides.pop("seed", 0)
        if "widths" in overrides:
            overrides["widths"] = tuple(overrides["widths"])
        recipe = fast_recipe(args.dataset, **overrides)
        run = Run(spec)
        clock = Clock(run, time.perf_counter(), [args.target], math.inf, stop=False)
        train_fast(train, test, recipe=recipe, callbacks=[clock], progress=False, seed=seed)
        epochs = ", ".join(f"{a:.2%} ({s:.0f} s)" for _, s, a in run.evals)
        hit = run.time_to(args.target)
        reached = f"{hit:.1f} s" if hit is not None else "not reached"
        print(f"{spec} seed {seed}: {epochs}; {args.target:.0%}: {reached}", flush=True)


if __name__ == "__main__":
    main()
