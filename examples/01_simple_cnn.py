"""Exercise 1: a simple CNN, three conv/pool stages and a two-layer classifier.

The lab's network: Conv(32)-ReLU-MaxPool, Conv(64)-ReLU-MaxPool, Conv(128)-ReLU-MaxPool,
Flatten, FC(512)-ReLU-Dropout(0.5), FC(10). It has 1,147,466 parameters on CIFAR-10's
3x32x32 images; the lab expects about 72% test accuracy on CIFAR-10.

This script prints the parameter count and the output shape after every layer (the
lab's first debugging tip), trains the net, prints the learning curves and the test
accuracy per class, and writes ``curves.png``, ``confusion.png``, ``misclassified.png``
and ``history.csv`` to ``--out``.

    python examples/01_simple_cnn.py                            # built-in sample, offline
    python examples/01_simple_cnn.py --dataset fashion-mnist    # the full 60,000 images
"""

from __future__ import annotations

import _common
import torch

import visionblocks as vb
from visionblocks.analysis import plot_confusion_matrix, plot_misclassified, summary


def main() -> None:
    parser = _common.make_parser(__doc__ or "", epochs=15)
    parser.add_argument(
        "--augment", default="none", help="augmentation preset (Exercise 4 adds it; default none)"
    )
    args = parser.parse_args()
    train, test = _common.load_data(args)
    out = _common.out_dir(args)
    c, h, w = train.image_shape

    torch.manual_seed(args.seed)
    model = vb.simple_cnn(num_classes=train.num_classes, in_channels=c, image_size=h)
    print(model)
    cifar = vb.simple_cnn()
    print(
        f"parameters: {_common.num_params(model):,} for {c}x{h}x{w} inputs "
        f"({_common.num_params(cifar):,} for CIFAR-10's 3x32x32)"
    )
    print("\noutput shape after every layer (batch of 1):")
    print(summary(model, (c, h, w)))

    history, result, _ = _common.train_and_test(
        "simple CNN", model, train, test, args, augment=args.augment
    )
    print(result)
    history.to_csv(out / "history.csv")
    if _common.has_matplotlib():
        history.plot(save=out / "curves.png")
        plot_confusion_matrix(result.confusion, test.classes, save=out / "confusion.png")
        # Predictions come in the order of the test set, so they line up with its images.
        plot_misclassified(
            test.images,
            result.targets,
            result.predictions,
            test.classes,
            save=out / "misclassified.png",
        )
    print(f"wrote the curves, confusion matrix and mistakes to {out}")


if __name__ == "__main__":
    main()
