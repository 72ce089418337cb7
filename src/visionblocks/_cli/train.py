"""``visionblocks train``: fit a registered model on a dataset and save everything to ``--out``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from visionblocks._cli._common import (
    add_data_arguments,
    add_device_arguments,
    build_model,
    check_model_name,
    has_matplotlib,
    load_data,
    parse_model_args,
)
from visionblocks.data import PRESETS
from visionblocks.train import evaluate, fit, save_checkpoint

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_MODEL", "add_train_parser", "run_train"]

DEFAULT_MODEL = "resnet20"
# ResNet-20 on the 2,000 built-in sample images in batches of 64: about 6 s per epoch on 2
# (shared) CPU cores, so the default run takes about a minute and reaches ~80% test accuracy
# (measured: docs/getting_started.rst).
DEFAULT_EPOCHS = 8
# Below this many training images the default batch is small, so that the run still takes
# enough optimizer steps (2,000 images in batches of 256 would be 8 steps per epoch).
SMALL_DATA = 10_000


def add_train_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``train`` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a model and save checkpoint, history and plots",
        description="Train a registered model on a dataset. With no arguments: ResNet-20 on the "
        "built-in Fashion-MNIST sample, offline, in about a minute on 2 CPU cores.",
    )
    p.add_argument(
        "--model", default=DEFAULT_MODEL, help="registry name (see `visionblocks models`)"
    )
    p.add_argument(
        "--model-arg",
        action="append",
        metavar="KEY=VALUE",
        help="extra builder argument, repeatable, e.g. --model-arg width=32",
    )
    add_data_arguments(p)
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="default: %(default)s")
    p.add_argument(
        "--batch-size", type=int,
        help=f"default: 64 below {SMALL_DATA:,} training images (enough steps), else 256",
    )  # fmt: skip
    p.add_argument(
        "--augment", default="standard", choices=PRESETS, help="augmentation preset (default: "
        "%(default)s = pad-4 crop + flip; lab = the lab's Exercise 4)",
    )  # fmt: skip
    p.add_argument("--optimizer", default="sgd", choices=("sgd", "adamw", "adam"))
    p.add_argument("--lr", type=float, help="peak learning rate (default: 0.2 per 256 for SGD)")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument(
        "--schedule", default="onecycle", choices=("onecycle", "cosine", "step", "plateau", "none")
    )
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (0: off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha (0: off)")
    add_device_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    p.add_argument(
        "--out", help="output folder (default: runs/MODEL-DATASET); gets model.pt, history.csv, "
        "history.json, metrics.json and, with matplotlib, curves.png and confusion.png",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_train)


def _default_out(model: str, dataset: str) -> Path:
    return Path("runs") / f"{model}-{Path(dataset).name or 'data'}"


def run_train(args: argparse.Namespace) -> int:
    """Train, evaluate on the test split, write the outputs; return the exit code."""
    check_model_name(args.model)
    extra = parse_model_args(args.model_arg)
    train = load_data(args.dataset, "train", args.root, args.limit)
    test = load_data(args.dataset, "test", args.root, args.limit)
    model, kwargs = build_model(args.model, train.num_classes, train.image_shape, extra)
    batch_size = args.batch_size or (64 if len(train) < SMALL_DATA else 256)
    out = Path(args.out) if args.out else _default_out(args.model, args.dataset)
    progress = not args.no_progress
    print(
        f"training {args.model} on {train.name} ({len(train):,} images {train.image_shape}, "
        f"{train.num_classes} classes), {args.epochs} epochs in batches of {batch_size}; "
        f"testing on {len(test):,}"
    )
    started = time.perf_counter()
    history = fit(
        model, train, test, epochs=args.epochs, batch_size=batch_size,
        optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=None if args.schedule == "none" else args.schedule,
        label_smoothing=args.label_smoothing, mixup=args.mixup, cutmix=args.cutmix,
        augment=args.augment, device=args.device, precision=args.precision,
        progress=progress, seed=args.seed,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    result = evaluate(model, test, device=args.device, precision=args.precision)

    out.mkdir(parents=True, exist_ok=True)
    stats = [list(train.mean), list(train.std)]
    save_checkpoint(
        out / "model.pt", model, model_name=args.model, model_kwargs=kwargs,
        extra={
            "stats": stats, "classes": list(train.classes), "image_shape": list(train.image_shape),
            "dataset": args.dataset, "epochs": len(history), "seed": args.seed,
            "test_accuracy": result.accuracy,
        },
    )  # fmt: skip
    history.to_csv(out / "history.csv")
    history.to_json(out / "history.json")
    metrics = {
        "model": args.model, "dataset": args.dataset, "epochs": len(history),
        "train_images": len(train), "test_images": len(test), "seconds": round(seconds, 1),
        "test_accuracy": result.accuracy, "test_loss": result.loss,
        "per_class_accuracy": dict(zip(test.classes, result.per_class_accuracy, strict=True)),
    }  # fmt: skip
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    written = ["model.pt", "history.csv", "history.json", "metrics.json"]
    if has_matplotlib():
        from visionblocks.analysis import plot_confusion_matrix

        history.plot(save=out / "curves.png")
        plot_confusion_matrix(result.confusion, test.classes, save=out / "confusion.png")
        written += ["curves.png", "confusion.png"]
    print(result)
    print(
        f"test accuracy {result.accuracy:.2%} after {len(history)} epochs in {seconds:.0f} s; "
        f"wrote {', '.join(written)} to {out}"
    )
    return 130 if history.interrupted else 0
