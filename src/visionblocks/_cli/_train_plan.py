"""What a ``visionblocks train`` run does, from its resolved options.

The options are checked first (:func:`check_options`, before any data is read); then
:func:`plan_model` picks and builds the network for one of three kinds of run: plain
(``--model``), ``--recipe`` (the recipe's network) or ``--pretrained`` (a pretrained
network with a new head, trained by ``fine_tune``); :func:`fit_arguments` is the one place
that turns the options, the plan and the callbacks (:func:`make_callbacks`) into the
keyword arguments of ``fit`` (or ``fine_tune``).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from visionblocks._cli._common import (
    CLIError,
    build_model,
    check_data_options,
    check_model_name,
    parse_model_args,
)
from visionblocks._cli.config import OptionSpec
from visionblocks.data import ImageDataset, StreamingDataset
from visionblocks.model_file import card_of
from visionblocks.recipes import RECIPE_PRESETS, FastRecipe, fast_recipe
from visionblocks.train import (
    EMA,
    FIT_DEFAULTS,
    LAST_CHECKPOINT,
    Callback,
    EarlyStopping,
    FocalLoss,
    check_fit_arguments,
    check_metrics,
    seed_everything,
)
from visionblocks.transfer import pretrained

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MODEL",
    "MIN_STEPS",
    "RECIPE_SETS",
    "SMALL_DATA",
    "SMALL_FOLDER",
    "SMALL_FOLDER_STEPS",
    "Data",
    "EpochCopies",
    "Plan",
    "check_options",
    "fit_arguments",
    "freeze_epochs",
    "make_callbacks",
    "plan_model",
    "recipe_preset",
    "small_batch_size",
    "too_few_steps",
]

DEFAULT_MODEL = "resnet20"
# ResNet-20 on the 2,000 built-in sample images in batches of 64: about 6 s per epoch on 2
# (shared) CPU cores, so the default run takes about a minute and reaches ~80% test accuracy
# (measured: docs/getting_started.rst).
DEFAULT_EPOCHS = 8
# Below this many training images the default batch is small, so that the run still takes
# enough optimizer steps (2,000 images in batches of 256 would be 8 steps per epoch).
SMALL_DATA = 10_000
# A small folder still gets this many optimizer steps per epoch (batches down to 16)...
SMALL_STEPS_PER_EPOCH = 20
# ... and this many in all (more epochs, up to MAX_SMALL_EPOCHS): with fewer, the result
# swings with the seed, and a plan below it gets a warning. 4 classes x 100 Fashion-MNIST
# images (T-shirt, Trouser, Shirt, Sneaker), 5 seeds, benchmarks/small_folder_plan.py: 0.2's
# 8 epochs x 5 steps of 64 gave 48.8-82.5% (3 seeds), 160 steps of 16 82.5-90.0%.
MIN_STEPS = 150
# A folder so small that its batches are halved (under 64 x SMALL_STEPS_PER_EPOCH images)
# gets this many steps: on the folder above, 300 steps gave 82.5-87.5% over 5 seeds, 320
# steps 85.0-88.8%, 600 steps 80.0-86.3% (it overfits).
SMALL_FOLDER = 64 * SMALL_STEPS_PER_EPOCH
SMALL_FOLDER_STEPS = 300
MAX_SMALL_EPOCHS = 30
# The fit() options a --recipe sets itself; left alone (None on the parser) they take
# train's FIT_DEFAULTS.
RECIPE_SETS = ("augment", "optimizer", "schedule", "momentum", "weight_decay", "label_smoothing")
# Options that override a recipe's field of the same name.
RECIPE_FIELDS = ("epochs", "batch_size", "lr", "momentum", "weight_decay", "label_smoothing")
Data = ImageDataset | StreamingDataset
# The options fit() checks itself: checked here by its public check, before any data is read.
_FIT_CHECKED = tuple(inspect.signature(check_fit_arguments).parameters)
# The valid values of the options no library function checks before the data is read.
_CLI_RANGES: dict[str, tuple[str, Any]] = {
    "freeze_epochs": ("an integer >= 0", lambda v: v >= 0),
    "early_stop": ("a patience >= 1 epoch", lambda v: v >= 1),
    "checkpoint_every": ("an integer >= 1 (epochs)", lambda v: v >= 1),
}
# The library's checks of the options that are not fit()'s own: each raises its ValueError.
# seed_everything seeds as it checks; harmless, since run_train seeds again before building
# the model.
_OTHER_CHECKS: dict[str, Any] = {
    "ema": EMA, "seed": seed_everything, "metrics": check_metrics, "focal_gamma": FocalLoss,
}  # fmt: skip


def _library_check(flag: str, key: str, value: Any) -> None:
    """Run the library's own check of ``key``; its error becomes one naming ``flag``."""
    try:
        if key in _OTHER_CHECKS:
            _OTHER_CHECKS[key](value)
        else:
            check_fit_arguments(**{key: value})
    except (TypeError, ValueError) as err:
        # The library's messages start with the argument's name: say the flag instead.
        message = str(err)
        named = message.startswith(f"{key} ")
        raise CLIError(
            f"{flag} {message[len(key) + 1 :]}" if named else f"{flag}: {message}"
        ) from None


def check_options(args: argparse.Namespace, specs: dict[str, OptionSpec]) -> None:
    """Fail before any data is read on a value out of range or options that do not combine."""
    for key in (*_FIT_CHECKED, *_OTHER_CHECKS):
        if key in specs and getattr(args, key) is not None:
            _library_check(specs[key].flag, key, getattr(args, key))
    for key, (allowed, ok) in _CLI_RANGES.items():
        value = getattr(args, key)
        if value is not None and not ok(value):
            raise CLIError(f"{specs[key].flag} must be {allowed}; got {value!r}.")
    check_data_options(args.dataset, args.limit, args.image_size, args.val_fraction)
    if args.monitor is not None and args.early_stop is None:
        raise CLIError("--monitor names what --early-stop watches; add --early-stop PATIENCE.")
    if args.focal_gamma is not None and args.loss != "focal":
        raise CLIError("--focal-gamma is the focal loss's gamma; add --loss focal.")
    if args.pretrained is None:
        pairs = (("--weights", args.weights), ("--freeze-epochs", args.freeze_epochs))
        alone = [flag for flag, value in pairs if value is not None]
        if alone:
            them = "them" if len(alone) > 1 else "it"
            raise CLIError(
                f"{' and '.join(alone)} go{'' if len(alone) > 1 else 'es'} with --pretrained NAME; "
                f"add --pretrained or drop {them}."
            )
    elif args.model is not None or args.recipe is not None:
        raise CLIError("--pretrained NAME names the model to fine-tune; drop --model and --recipe.")
    if args.recipe is None:
        if args.preset is not None:
            raise CLIError(f"--preset {args.preset} chooses a recipe's preset; add --recipe fast.")
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


def recipe_preset(args: argparse.Namespace, train: Data) -> str:
    """The ``--recipe`` preset of a run.

    ``--preset``, else the dataset's own, else the one for the data's number of channels.
    """
    preset = args.preset or (args.dataset if args.dataset in RECIPE_PRESETS else None)
    return str(preset or ("fashion-mnist" if train.image_shape[0] == 1 else "cifar10"))


def _recipe_for(args: argparse.Namespace, train: Data) -> FastRecipe:
    """The ``--recipe`` preset for ``train`` with the overriding options applied."""
    preset = recipe_preset(args, train)
    overrides = {k: getattr(args, k) for k in RECIPE_FIELDS if getattr(args, k) is not None}
    if len(train) < SMALL_DATA and args.batch_size is None:
        overrides["batch_size"] = 64
        if args.lr is None:  # the preset's learning rate is for its batch: scale it with it
            base = RECIPE_PRESETS[preset]
            overrides["lr"] = base.lr * 64 / base.batch_size
    try:
        return fast_recipe(preset, **overrides)
    except ValueError as err:
        raise CLIError(str(err)) from err


@dataclass
class Plan:
    """The network of a run: its registry name, the model, its builder kwargs, the recipe."""

    name: str
    model: nn.Module
    model_kwargs: dict[str, Any]
    recipe: FastRecipe | None = None

    @property
    def tta(self) -> bool:
        """Whether the run evaluates with flip TTA (the recipe's choice)."""
        return self.recipe is not None and self.recipe.tta


def plan_model(args: argparse.Namespace, train: Data) -> Plan:
    """The network the options ask for, built for ``train``."""
    if args.recipe is not None:
        recipe = _recipe_for(args, train)
        arch = {
            "widths": list(recipe.widths), "activation": recipe.activation,
            "identity_init": recipe.identity_init,
        }  # fmt: skip
        model, kwargs = build_model("fast_cnn", train.num_classes, train.image_shape, arch)
        recipe.init_model(model, train)
        return Plan("fast_cnn", model, kwargs, recipe)
    extra = parse_model_args(args.model_arg)
    if args.pretrained is not None:
        return Plan(args.pretrained, *_pretrained_model(args, train, extra))
    name = args.model or DEFAULT_MODEL
    return Plan(name, *build_model(name, train.num_classes, train.image_shape, extra))


def fit_arguments(
    args: argparse.Namespace, train: Data, plan: Plan, callbacks: Sequence[Callback] = ()
) -> dict[str, Any]:
    """The keyword arguments of ``fit`` (and ``fine_tune``) for the options, written once.

    A recipe's settings, else each option given or ``fit``'s default (``FIT_DEFAULTS``),
    the CLI's own epochs and batch size, then what every run adds: MixUp/CutMix, device,
    precision, seed, progress, the optional extras and ``callbacks``.
    """
    if plan.recipe is not None:
        kwargs = plan.recipe.fit_kwargs()
    else:
        kwargs = {k: getattr(FIT_DEFAULTS, k) for k in RECIPE_SETS}
        kwargs.update({k: getattr(args, k) for k in RECIPE_SETS if getattr(args, k) is not None})
        if kwargs["schedule"] == "none":
            kwargs["schedule"] = None
        batch_size = args.batch_size or (
            small_batch_size(len(train)) if len(train) < SMALL_DATA else 256
        )
        epochs = args.epochs
        if epochs is None:  # enough steps in all for a small folder, within reason
            steps = _steps_per_epoch(len(train), batch_size)
            wanted = SMALL_FOLDER_STEPS if len(train) < SMALL_FOLDER else MIN_STEPS
            epochs = min(MAX_SMALL_EPOCHS, max(DEFAULT_EPOCHS, -(-wanted // steps)))
        kwargs.update(epochs=epochs, batch_size=batch_size, lr=args.lr)
    kwargs.update(
        mixup=args.mixup, cutmix=args.cutmix, device=args.device, precision=args.precision,
        seed=args.seed, progress="lines" if args.no_progress else True,
    )  # fmt: skip
    kwargs.update({k: getattr(args, k) for k in ("grad_clip", "accumulate") if getattr(args, k)})
    if args.ema:  # the run's one average: --ema sets its decay (a recipe's keeps every/warm-up)
        recipe_ema = kwargs.get("ema")
        kwargs["ema"] = (
            dataclasses.replace(recipe_ema, decay=args.ema) if isinstance(recipe_ema, EMA)
            else args.ema
        )  # fmt: skip
    if args.compile:
        kwargs["compile"] = True
    if args.metrics:
        kwargs["metrics"] = [name.strip() for name in args.metrics.split(",") if name.strip()]
    kwargs.update({k: getattr(args, k) for k in ("class_weight", "sampler") if getattr(args, k)})
    if args.loss == "focal":  # fit's loss="focal" is gamma 2 with fit's label smoothing
        smoothing = kwargs["label_smoothing"]
        gamma = args.focal_gamma
        kwargs["loss"] = "focal" if gamma is None else FocalLoss(gamma, label_smoothing=smoothing)
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), *callbacks]
    return kwargs


def small_batch_size(images: int) -> int:
    """The default batch below ``SMALL_DATA`` images: 64, halved down to 16 for short epochs.

    It is halved until an epoch has ``SMALL_STEPS_PER_EPOCH`` steps, or the batch is 16.

    Example:
        >>> small_batch_size(1_800), small_batch_size(600), small_batch_size(320)
        (64, 16, 16)
    """
    batch = 64
    while batch > 16 and images // batch < SMALL_STEPS_PER_EPOCH:
        batch //= 2
    return batch


def _steps_per_epoch(images: int, batch_size: int) -> int:
    """Optimizer steps in an epoch of ``images`` (fit drops the last, smaller batch)."""
    return max(1, images // batch_size)


def too_few_steps(epochs: int, batch_size: int, images: int) -> str | None:
    """A warning when a plan takes fewer than ``MIN_STEPS`` optimizer steps, else None."""
    per_epoch = _steps_per_epoch(images, batch_size)
    if epochs * per_epoch >= MIN_STEPS:
        return None
    return (
        f"warning: this plan takes only {epochs * per_epoch} optimizer steps ({epochs} epochs "
        f"x {per_epoch} steps of {batch_size}); with so few the result swings with the seed: "
        f"use a smaller --batch-size or more --epochs ({MIN_STEPS}+ steps)"
    )


def _pretrained_model(
    args: argparse.Namespace, train: Data, extra: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """``--pretrained NAME --weights ...``: the model with a new head, and its builder kwargs."""
    weights = args.weights or "DEFAULT"
    model = pretrained(
        args.pretrained, train.num_classes, weights=weights, in_channels=train.image_shape[0],
        model_kwargs=extra,
    )  # fmt: skip
    # The builder kwargs pretrained() used (a checkpoint's own, or timm's): its card has them.
    card = card_of(model)
    saved = dict(card.builder_kwargs) if card is not None else {}
    kwargs = {
        **saved, **extra, "num_classes": train.num_classes, "in_channels": train.image_shape[0]
    }  # fmt: skip
    return model, kwargs


class EpochCopies(Callback):
    """Copy ``fit``'s ``last.pt`` to ``epoch-E.pt`` after every ``every``-th completed epoch.

    ``fit`` writes ``last.pt`` right after ``on_epoch_end``, so the copy of epoch E is
    made when the next epoch starts (or the run ends).

    Example:
        >>> EpochCopies("runs/x", every=2).every
        2
    """

    def __init__(self, folder: str | Path, *, every: int) -> None:
        self.folder = Path(folder)
        self.every = every
        self._completed: int | None = None

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        """Note that ``epoch`` completed (``fit`` saves it next)."""
        self._completed = epoch if epoch % self.every == 0 else None

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        """Copy the checkpoint of the epoch completed before this one."""
        self._copy()

    def on_fit_end(self, trainer: Any) -> None:
        """Copy the checkpoint of the last epoch."""
        self._copy()

    def _copy(self) -> None:
        last = self.folder / LAST_CHECKPOINT
        if self._completed is not None and last.is_file():
            shutil.copyfile(last, self.folder / f"epoch-{self._completed}.pt")
        self._completed = None


def make_callbacks(args: argparse.Namespace, out: Path) -> list[Callback]:
    """The callbacks the options ask for; the loggers check their files here, before training."""
    from visionblocks.train import CSVLogger

    callbacks: list[Callback] = [CSVLogger(out / "history.csv")]
    if args.early_stop is not None:
        callbacks.append(EarlyStopping(args.monitor or "val_loss", patience=args.early_stop))
    if args.checkpoint_every is not None:
        callbacks.append(EpochCopies(out, every=args.checkpoint_every))
    if args.tensorboard is not None:
        from visionblocks.train import TensorBoardLogger

        try:
            callbacks.append(TensorBoardLogger(args.tensorboard or out / "tensorboard"))
        except ImportError as err:
            raise CLIError(
                f"--tensorboard needs the tensorboard package: "
                f'pip install "visionblocks[tensorboard]" ({err}).'
            ) from None
        except ValueError as err:
            raise CLIError(f"--tensorboard: {err}") from None
    return callbacks


def freeze_epochs(args: argparse.Namespace) -> int:
    """The epochs that train only the new head of a ``--pretrained`` run."""
    return 1 if args.freeze_epochs is None else int(args.freeze_epochs)
