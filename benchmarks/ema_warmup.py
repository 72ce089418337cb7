"""Why ``fit(ema=...)`` warms up: a short run's average with and without the warm-up.

ResNet-20 on the small folder of ``small_folder_plan.py`` (4 classes x 100 Fashion-MNIST
images, 20% held out, 64 px), 8 epochs of 20 steps of 16, once without an average, once
with ``EMA(0.99, warmup=False)`` (0.2's ``fit(ema=0.99)``) and once with the warm-up
(``fit(ema=0.99)`` now); prints the validation accuracy after every epoch (docs/training.rst)::

    .venv/bin/python benchmarks/ema_warmup.py [--seed 3] [--source fashion-mnist]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from small_folder_plan import write_folder

import visionblocks as vb
from visionblocks.train import EMA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--source", default="fashion-mnist", help="sample or fashion-mnist")
    parser.add_argument("--classes", type=int, nargs="+", default=[0, 1, 6, 7])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "photos", args.source, args.classes)
        train = vb.load_dataset(folder, "train", val_fraction=0.2, image_size=64)
        val = vb.load_dataset(folder, "val", val_fraction=0.2, image_size=64)
        averages = {"no average": None, "EMA(0.99, warmup=False)": EMA(0.99, warmup=False),
                    "EMA(0.99) (warm-up)": EMA(0.99)}  # fmt: skip
        for name, ema in averages.items():
            torch.manual_seed(args.seed)
            model = vb.resnet_cifar(depth=20, num_classes=len(args.classes), in_channels=1)
            history = vb.fit(
                model, train, val, epochs=8, batch_size=16, ema=ema, progress=False,
                seed=args.seed,
            )  # fmt: skip
            accuracies = " ".join(f"{a:.1%}" for a in history["val_acc"])
            print(f"{name:<24} val accuracy per epoch: {accuracies}", flush=True)


if __name__ == "__main__":
    main()
