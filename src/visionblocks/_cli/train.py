"""``visionblocks train``: fit a registered model on a dataset and save everything to ``--out``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from torch import nn

from visionblocks._cli._common import (
    CLIError,
    add_data_arguments,
    add_device_arguments,
    build_model,
    check_model_name,
    has_matplotlib,
    load_data,
    parse_model_args,
)
from visionblocks.data import PRESETS, ImageDataset
from visionblocks.recipes import PRESETS as RECIPE_PRESETS
from visionblocks.recipes import FastRecipe, fast_recipe
from visionblocks.train import evaluate, fit, save_checkpoint

__all__ = ["DEFAULT_EPOCHS", "DEFAULT_MODEL", "FIT_DEFAULTS", "add_train_parser", "run_train"]

DEFAULT_MODEL = "resnet20"
# ResNet-20 on the 2,000 built-in sample images in batches of 64: about 6 s per epoch on 2
# (shared) CPU cores, so the default run takes about a minute and reaches ~80% test accuracy
# (measured: docs/getting_started.rst).
DEFAULT_EPOCHS = 8
# Below this many training images the default batch is small, so that the run still takes
# enough optimizer steps (2,000 images in batches of 256 would be 8 steps per epoch).
SMALL_DATA = 10_000
# Defaults of the options a --recipe sets itself (None on the parser, so that an option given
# together with --recipe can be told from one left alone).
FIT_DEFAULTS: dict[str, Any] = {
    "model": DEFAULT_MODEL,
    "augment": "standard",
    "optimizer": "sgd",
    "schedule": "onecycle",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
}
# Options that override a recipe's field of the same name.
RECIPE_FIELDS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "label_smoothing")


def add_train_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``train`` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a model and save checkpoint, history and plots",
        description="Train a registered model on a dataset. With no arguments: ResNet-20 on the "
        "built-in Fashion-MNIST sample, offline, in about a minute on 2 CPU cores.",
    )
    p.add_argument(
        "--recipe", choices=("fast",), help="train a recipe's network with its settings: fast "
        "= visionblocks.recipes (fast_cnn with a whitening stem, one-cycle SGD, flip TTA); "
        "--epochs, --batch-size, --lr, --momentum, --weight-decay, --label-smoothing override it",
    )  # fmt: skip
    p.add_argument(
        "--model", help=f"registry name (see `visionblocks models`; default: {DEFAULT_MODEL})"
    )
    p.add_argument(
        "--model-arg",
        action="append",
        metavar="KEY=VALUE",
        help="extra builder argument, repeatable, e.g. --model-arg width=32",
    )
    add_data_arguments(p)
    p.add_argument("--epochs", type=int, help=f"default: {DEFAULT_EPOCHS}, or the recipe's")
    p.add_argument(
        "--batch-size", type=int,
        help=f"default: 64 below {SMALL_DATA:,} training images (enough steps), else 256",
    )  # fmt: skip
    p.add_argument(
        "--augment", choices=PRESETS, help="augmentation preset (default: standard = pad-4 "
        "crop + flip; lab = the lab's Exercise 4)",
    )  # fmt: skip
    p.add_argument("--optimizer", choices=("sgd", "adamw", "adam"), help="default: sgd")
    p.add_argument("--lr", type=float, help="peak learning rate (default: 0.2 per 256 for SGD)")
    p.add_argument("--momentum", type=float, help="default: 0.9")
    p.add_argument("--weight-decay", type=float, help="default: 5e-4")
    p.add_argument(
        "--schedule", choices=("onecycle", "cosine", "step", "plateau", "none"),
        help="default: onecycle",
    )  # fmt: skip
    p.add_argument("--label-smoothing", type=float, help="default: 0.1")
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


def _check_options(args: argparse.Namespace) -> None:
    """Fail before loading data on options that ``--recipe`` sets itself or unknown models."""
    if args.recipe is None:
        if args.model is not None:
            check_model_name(args.model)
        return
    fixed = ("model", "model_arg", "augment", "optimizer", "schedule")
    given = [f"--{k.replace('_', '-')}" for k in fixed if getattr(args, k) is not None]
    if given:
        raise CLIError(
            f"{', '.join(given)} cannot be combined with --recipe {args.recipe}, which sets "
            f"those options itself; drop them, or train without --recipe."
        )


def _recipe_for(args: argparse.Namespace, train: ImageDataset) -> FastRecipe:
    """The ``--recipe`` preset for ``train`` with the overriding options applied."""
    # The dataset's own preset, else the one for its number of channels.
    preset = args.dataset if args.dataset in RECIPE_PRESETS else None
    preset = preset or ("fashion-mnist" if train.image_shape[0] == 1 else "cifar10")
    overrides = {k: getattr(args, k) for k in RECIPE_FIELDS if getattr(args, k) is not None}
    if len(train) < SMALL_DATA and args.batch_size is None:
        overrides["batch_size"] = 64
    try:
        return fast_recipe(preset, **overrides)
    except ValueError as err:
        raise CLIError(str(err)) from err


def _plan(
    args: argparse.Namespace, train: ImageDataset
) -> tuple[str, nn.Module, dict[str, Any], dict[str, Any], bool]:
    """``(model name, model, its kwargs, fit() kwargs, flip TTA?)`` for the options given."""
    if args.recipe is not None:
        recipe = _recipe_for(args, train)
        widths = {"widths": list(recipe.widths)}
        model, kwargs = build_model("fast_cnn", train.num_classes, train.image_shape, widths)
        recipe.init_model(model, train)
        fit_kwargs = recipe.fit_kwargs()
        fit_kwargs.update(mixup=args.mixup, cutmix=args.cutmix)
        return "fast_cnn", model, kwargs, fit_kwargs, recipe.tta
    # The options left alone take FIT_DEFAULTS; "model" names the network, the rest go to fit().
    fit_kwargs = {
        k: d if getattr(args, k) is None else getattr(args, k) for k, d in FIT_DEFAULTS.items()
    }
    name = fit_kwargs.pop("model")
    extra = parse_model_args(args.model_arg)
    model, kwargs = build_model(name, train.num_classes, train.image_shape, extra)
    if fit_kwargs["schedule"] == "none":
        fit_kwargs["schedule"] = None
    fit_kwargs.update(
        epochs=args.epochs or DEFAULT_EPOCHS,
        batch_size=args.batch_size or (64 if len(train) < SMALL_DATA else 256),
        lr=args.lr, mixup=args.mixup, cutmix=args.cutmix,
    )  # fmt: skip
    return name, model, kwargs, fit_kwargs, False


def run_train(args: argparse.Namespace) -> int:
    """Train, evaluate on the test split, write the outputs; return the exit code."""
    _check_options(args)
    train = load_data(args.dataset, "train", args.root, args.limit)
    test = load_data(args.dataset, "test", args.root, args.limit)
    name, model, kwargs, fit_kwargs, tta = _plan(args, train)
    out = Path(args.out) if args.out else _default_out(name, args.dataset)
    progress = not args.no_progress
    recipe = f" with the {args.recipe} recipe" if args.recipe else ""
    print(
        f"training {name}{recipe} on {train.name} ({len(train):,} images {train.image_shape}, "
        f"{train.num_classes} classes), {fit_kwargs['epochs']} epochs in batches of "
        f"{fit_kwargs['batch_size']}; testing on {len(test):,}{' with flip TTA' if tta else ''}"
    )
    started = time.perf_counter()
    history = fit(
        model, train, test, device=args.device, precision=args.precision, progress=progress,
        seed=args.seed, **fit_kwargs,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    result = evaluate(model, test, tta=tta, device=args.device, precision=args.precision)

    out.mkdir(parents=True, exist_ok=True)
    stats = [list(train.mean), list(train.std)]
    save_checkpoint(
        out / "model.pt", model, model_name=name, model_kwargs=kwargs,
        extra={
            "stats": stats, "classes": list(train.classes), "image_shape": list(train.image_shape),
            "dataset": args.dataset, "epochs": len(history), "seed": args.seed,
            "test_accuracy": result.accuracy, "tta": tta,
        },
    )  # fmt: skip
    history.to_csv(out / "history.csv")
    history.to_json(out / "history.json")
    metrics = {
        "model": name, "recipe": args.recipe, "dataset": args.dataset, "epochs": len(history),
        "tta": tta, "train_images": len(train), "test_images": len(test),
        "seconds": round(seconds, 1),
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
        f"test accuracy {result.accuracy:.2%}{' (flip TTA)' if tta else ''} after "
        f"{len(history)} epochs in {seconds:.0f} s; "
        f"wrote {', '.join(written)} to {out}"
    )
    return 130 if history.interrupted else 0
