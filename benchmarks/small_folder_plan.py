"""Does the CLI's plan for a small image folder give a stable result? 5 seeds, one table.

Builds the folder a new user would try (4 classes x 100 real Fashion-MNIST images from
the built-in sample, as PNG files: Trouser, Shirt, Sneaker, Bag; ``--source`` and
``--classes`` choose others), then runs the README's
own-images command on it for each seed::

    visionblocks train --dataset FOLDER --val-fraction 0.2 --image-size 64 --seed S

and prints the validation accuracy per seed, the spread (best - worst) and the plan the
CLI chose (batch size, steps per epoch, epochs). Extra arguments go to every run, to
compare plans::

    .venv/bin/python benchmarks/small_folder_plan.py
    .venv/bin/python benchmarks/small_folder_plan.py --seeds 0 1 2 3 4 -- --batch-size 64
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

import visionblocks as vb
from visionblocks.cli import main

CLASSES = (1, 6, 7, 8)  # Trouser, Shirt, Sneaker, Bag
PER_CLASS = 100


def write_folder(root: Path, source: str, classes: list[int]) -> Path:
    """``PER_CLASS`` images of each of ``classes`` as PNGs, one folder per class."""
    data = vb.load_dataset(source)
    for label in classes:
        name = data.classes[label].replace("/", "-")
        (root / name).mkdir(parents=True)
        images = data.images[data.labels == label][:PER_CLASS]
        for i, image in enumerate(images):
            Image.fromarray(image[0].numpy()).save(root / name / f"{i:03d}.png")
    return root


def run(folder: Path, out: Path, seed: int, extra: list[str]) -> tuple[float, str, float]:
    """One training run: validation accuracy, the plan line, seconds."""
    argv = ["train", "--dataset", str(folder), "--val-fraction", "0.2", "--image-size", "64",
            "--seed", str(seed), "--no-progress", "--out", str(out), *extra]  # fmt: skip
    printed = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(printed):
        code = main(argv)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"visionblocks {' '.join(argv)} exited {code}:\n{printed.getvalue()}")
    metrics = json.loads((out / "metrics.json").read_text())
    plan = next(line for line in printed.getvalue().splitlines() if line.startswith("fit:"))
    warnings = [line for line in printed.getvalue().splitlines() if "warning" in line.lower()]
    for line in warnings:
        print(f"  {line}")
    return float(metrics["val_accuracy"]), plan, seconds


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--source", default="sample", help="sample or fashion-mnist")
    parser.add_argument("--classes", type=int, nargs="+", default=list(CLASSES))
    parser.add_argument("extra", nargs="*", help="after --: arguments added to every run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "photos", args.source, args.classes)
        names = ", ".join(sorted(p.name for p in folder.iterdir()))
        print(f"folder: {names} x {PER_CLASS} images of {args.source}; extra: {args.extra}")
        accuracies = []
        for seed in args.seeds:
            accuracy, plan, seconds = run(folder, Path(tmp) / f"run{seed}", seed, args.extra)
            accuracies.append(accuracy)
            print(f"seed {seed}: val accuracy {accuracy:.2%} in {seconds:.0f} s | {plan}")
        spread = max(accuracies) - min(accuracies)
        mean = sum(accuracies) / len(accuracies)
        print(
            f"mean {mean:.2%}, worst {min(accuracies):.2%}, best {max(accuracies):.2%}, "
            f"spread {spread * 100:.1f} points over {len(accuracies)} seeds"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main_()
