"""``visionblocks train``: fit a registered model on a dataset and save everything to ``--out``.

Every option can also come from ``--config FILE`` (TOML, keys named like the options);
flags given on the command line override the file. Every run writes its fully resolved
settings to ``OUT/config.toml`` before it trains and checkpoints ``OUT/last.pt`` after
every epoch, so ``--config OUT/config.toml`` repeats a run and ``--resume OUT`` finishes
an interrupted one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

import visionblocks
from visionblocks._cli._common import (
    CLIError,
    add_data_arguments,
    add_device_arguments,
    has_matplotlib,
    is_named,
    load_splits,
    probe_writable,
)
from visionblocks._cli._run_folder import CONFIG_FILE, RunFolder
from visionblocks._cli._train_plan import (
    DEFAULT_EPOCHS,
    DEFAULT_MODEL,
    MIN_STEPS,
    RECIPE_SETS,
    SMALL_DATA,
    SMALL_FOLDER,
    SMALL_FOLDER_STEPS,
    Data,
    Plan,
    check_options,
    fit_arguments,
    freeze_epochs,
    make_callbacks,
    plan_model,
    recipe_preset,
    too_few_steps,
)
from visionblocks._cli.config import OptionSpec, option_specs, read_config, toml_value, write_config
from visionblocks._cli.inspect import split_warnings
from visionblocks.data import AUGMENT_PRESETS, RESIZE_RULES, SAMPLERS
from visionblocks.model_file import atomic_write_text, card_of
from visionblocks.recipes import RECIPE_PRESETS
from visionblocks.train import (
    BUILTIN_METRICS,
    FIT_DEFAULTS,
    LAST_CHECKPOINT,
    OPTIMIZERS,
    History,
    evaluate,
    fit,
    resolve_plan,
    save_checkpoint,
    seed_everything,
)
from visionblocks.transfer import fine_tune

__all__ = [
    "CONFIG_FILE",
    "TrainOptions",
    "add_train_parser",
    "resolve_options",
    "run_train",
    "train_options",
]

# Options that say where a run goes or comes from, not what it is: not read from a config file.
_NOT_IN_CONFIG = ("config", "resume", "overwrite")
# Options that --resume accepts: how the run is shown, not what it computes.
RESUME_KEEPS = ("no_progress",)


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE", help="read options from a TOML file (keys named like the "
        "options, e.g. batch_size = 64); flags given here override it. Every run writes its "
        "settings to OUT/config.toml, so --config OUT/config.toml --out OTHER repeats it",
    )  # fmt: skip
    p.add_argument(
        "--resume", metavar="RUN", help="continue the interrupted run in folder RUN with its own "
        "settings (RUN/config.toml) from its last completed epoch",
    )  # fmt: skip
    p.add_argument(
        "--recipe", choices=("fast",), help="train a recipe's network with its settings: fast "
        "= visionblocks.recipes (fast_cnn with a whitening stem, one-cycle Muon/SGD, flip TTA); "
        "--epochs, --batch-size, --lr, --momentum, --weight-decay, --label-smoothing override it",
    )  # fmt: skip
    p.add_argument(
        "--preset", choices=sorted(RECIPE_PRESETS), help="with --recipe: the recipe's preset "
        "(default: the dataset's own, else fashion-mnist for grayscale and cifar10 for colour; "
        "fashion-mnist-94 trains longer for 94%%, fashion-mnist-94-gpu a wider network on a "
        "GPU)",
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
    p.add_argument(
        "--pretrained", metavar="NAME", help="fine-tune this model (a visionblocks or torchvision "
        "name) from pretrained weights: the new head first, then everything with discriminative "
        "learning rates (visionblocks.transfer.fine_tune)",
    )  # fmt: skip
    p.add_argument(
        "--weights", metavar="PATH|DEFAULT", help="with --pretrained: a local checkpoint or state "
        "dict (offline), or torchvision's weights name (downloaded; default: DEFAULT)",
    )  # fmt: skip
    p.add_argument(
        "--freeze-epochs", type=int, metavar="N",
        help="with --pretrained: epochs that train only the new head (default: 1); --epochs "
        "then train the whole network",
    )  # fmt: skip
    add_data_arguments(p)
    p.add_argument(
        "--image-size", type=int, metavar="N", help="image folders: resize every image to NxN"
    )
    p.add_argument(
        "--resize", choices=RESIZE_RULES, help="with --image-size: squash (default: stretch "
        "to NxN) or shorter-side+center-crop (keep the aspect ratio, cut the centre); "
        "predict sizes new images the same way",
    )  # fmt: skip
    p.add_argument(
        "--val-fraction", type=float, metavar="F", help="image folders without val/ or test/: "
        "hold out this stratified fraction of the images for validation (default: 0.2)",
    )  # fmt: skip
    p.add_argument(
        "--epochs", type=int, help=f"default: {DEFAULT_EPOCHS}, or more for {MIN_STEPS} "
        f"optimizer steps in all ({SMALL_FOLDER_STEPS} below {SMALL_FOLDER:,} training "
        f"images), or the recipe's",
    )  # fmt: skip
    p.add_argument(
        "--batch-size", type=int,
        help=f"default: 64 below {SMALL_DATA:,} training images (down to 16 on a small folder, "
        "for 20 steps per epoch), else 256",
    )  # fmt: skip
    p.add_argument(
        "--augment", choices=AUGMENT_PRESETS, help="augmentation preset (default: standard = pad-4 "
        "crop + flip; lab = the lab's Exercise 4; photo = random resized crop + flip)",
    )  # fmt: skip
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"default: {FIT_DEFAULTS.optimizer}")
    p.add_argument("--lr", type=float, help="peak learning rate (default: 0.2 per 256 for SGD)")
    p.add_argument("--momentum", type=float, help=f"default: {FIT_DEFAULTS.momentum}")
    p.add_argument("--weight-decay", type=float, help=f"default: {FIT_DEFAULTS.weight_decay}")
    p.add_argument(
        "--schedule", choices=("onecycle", "cosine", "step", "plateau", "none"),
        help=f"default: {FIT_DEFAULTS.schedule}",
    )  # fmt: skip
    p.add_argument("--label-smoothing", type=float, help=f"default: {FIT_DEFAULTS.label_smoothing}")
    p.add_argument("--mixup", type=float, default=0.0, help="MixUp alpha (default: 0, off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="CutMix alpha (default: 0, off)")
    p.add_argument(
        "--class-weight", choices=("balanced",), help="imbalanced data: weigh each class's "
        "loss by n / (K * n_c), from the training labels (default: every class 1)",
    )  # fmt: skip
    p.add_argument(
        "--sampler", choices=SAMPLERS, help="imbalanced data: balanced = draw every class "
        "equally often in each epoch (its images with replacement; an epoch keeps the data's "
        "length; seeded, so --resume replays it) (default: every image once per epoch)",
    )  # fmt: skip
    p.add_argument(
        "--loss", choices=("focal",), help="focal = the focal loss, which weighs the examples "
        "the model gets wrong more, with --label-smoothing and --class-weight (default: "
        "label-smoothed cross-entropy)",
    )  # fmt: skip
    p.add_argument(
        "--focal-gamma", type=float, metavar="GAMMA",
        help="with --loss focal: its focusing parameter >= 0 (default: 2; 0 is cross-entropy)",
    )  # fmt: skip
    p.add_argument("--grad-clip", type=float, metavar="NORM", help="clip the gradient norm")
    p.add_argument(
        "--ema", type=float, metavar="DECAY", help="validate and keep an exponential moving "
        "average of the weights with this per-step decay in (0, 1), e.g. 0.99 (the run's one "
        "average: with --recipe it sets the recipe's decay)",
    )  # fmt: skip
    p.add_argument(
        "--metrics", metavar="NAME,...", help="also measure these on the validation split "
        f"every epoch, as history.csv's val_NAME columns ({', '.join(BUILTIN_METRICS)}; "
        "per_class_recall: val_recall_0, val_recall_1, ...)",
    )  # fmt: skip
    p.add_argument(
        "--early-stop", type=int, metavar="PATIENCE",
        help="stop when the validation loss (or --monitor) has not improved for PATIENCE epochs",
    )  # fmt: skip
    p.add_argument(
        "--monitor", metavar="KEY", help="with --early-stop: the history column it watches, "
        "e.g. val_macro_f1 with --metrics macro_f1 (default: val_loss)",
    )  # fmt: skip
    p.add_argument(
        "--accumulate", type=int, metavar="N", help="sum the gradients of N batches per "
        "optimizer step (an N times larger effective batch; default: 1)",
    )  # fmt: skip
    p.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    add_device_arguments(p)
    p.add_argument(
        "--seed", type=int, default=0, help="seeds the initial weights, the order of the data, "
        "augmentation and MixUp/CutMix (default: 0)",
    )  # fmt: skip
    p.add_argument(
        "--out", help="output folder (default: runs/MODEL-DATASET); gets config.toml, last.pt "
        "(every epoch), model.pt, history.csv (as it trains), history.json, metrics.json and, "
        "with matplotlib, curves.png and confusion.png",
    )  # fmt: skip
    p.add_argument(
        "--overwrite", action="store_true", help="replace the run already in --out (its files "
        "are removed first); without it, a folder holding a run is refused",
    )  # fmt: skip
    p.add_argument(
        "--checkpoint-every", type=int, metavar="N",
        help="also keep a copy of the epoch's checkpoint as OUT/epoch-E.pt every N epochs",
    )  # fmt: skip
    p.add_argument(
        "--tensorboard", nargs="?", const="", metavar="DIR",
        help="write TensorBoard scalars to DIR (default: OUT/tensorboard)",
    )  # fmt: skip
    p.add_argument(
        "--no-progress", action="store_true",
        help="no progress bars (the plan, epoch and interruption lines stay)",
    )  # fmt: skip


@dataclass(frozen=True)
class TrainOptions:
    """The options of ``train`` that a config file may set, and their values left alone."""

    specs: dict[str, OptionSpec]
    defaults: dict[str, Any]


def add_train_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``train`` sub-command."""
    p = sub.add_parser(
        "train",
        help="train a model and save checkpoint, history and plots",
        description="Train a registered model on a dataset. With no arguments: ResNet-20 on the "
        "built-in Fashion-MNIST sample, offline, in about a minute on 2 CPU cores.",
    )
    _add_options(p)
    specs = {k: v for k, v in option_specs(p).items() if k not in _NOT_IN_CONFIG}
    options = TrainOptions(specs, {k: p.get_default(k) for k in specs})
    # None everywhere on the parser, so that a flag given on the command line can be told
    # from one left alone (which --config and --resume need); resolve_options fills in the
    # defaults, read from this parser before they were replaced.
    p.set_defaults(**dict.fromkeys(specs), func=run_train, train_options=options)


def train_options(args: argparse.Namespace) -> TrainOptions:
    """The :class:`TrainOptions` of parsed ``train`` arguments.

    Example:
        >>> from visionblocks.cli import build_parser
        >>> options = train_options(build_parser().parse_args(["train"]))
        >>> options.specs["batch_size"].flag, options.defaults["dataset"]
        ('--batch-size', 'sample')
    """
    options = getattr(args, "train_options", None)
    if not isinstance(options, TrainOptions):
        raise TypeError("train_options() takes the arguments the train sub-command parsed.")
    return options


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """The options of a run: defaults, then ``--config`` (or the resumed run's), then flags."""
    options = train_options(args)
    specs = options.specs
    given = {k: getattr(args, k) for k in specs if getattr(args, k, None) is not None}
    base: dict[str, Any] = {}
    if getattr(args, "resume", None) is not None:
        if args.config is not None:
            raise CLIError("--resume reads the run's own RUN/config.toml; drop --config.")
        extra = sorted(specs[k].flag for k in given if k not in RESUME_KEEPS)
        if extra:
            raise CLIError(
                f"--resume continues the run with its own settings; drop {', '.join(extra)} "
                f"(to change them, start a new run with --config RUN/{CONFIG_FILE})."
            )
        run = Path(args.resume)
        if not (run / CONFIG_FILE).is_file():
            raise CLIError(
                f"--resume {str(run)!r}: no {CONFIG_FILE} there; give the folder of a run "
                f"that `visionblocks train --out RUN` started."
            )
        base = {**read_config(run / CONFIG_FILE, specs), "out": str(run)}
    elif getattr(args, "config", None) is not None:
        base = read_config(args.config, specs)
    return argparse.Namespace(**{**options.defaults, **base, **given}, train_options=options)


def _absolute(path: str | None) -> str | None:
    """An existing path made absolute (the run's files then work from any folder), else as is."""
    return str(Path(path).resolve()) if path is not None and Path(path).exists() else path


def _dataset_path(dataset: str) -> str:
    """A built-in dataset's name as it is; an image folder's or labels file's absolute path."""
    return dataset if is_named(dataset) else str(Path(dataset).resolve())


def _default_out(model: str, dataset: str) -> Path:
    return Path("runs") / f"{model}-{Path(dataset).name or 'data'}"


def _settings(
    args: argparse.Namespace, name: str, fit_kwargs: dict[str, Any], tta: bool
) -> dict[str, Any]:
    """What ``config.toml`` records: the resolved options, then ``[fit]`` and ``[environment]``."""
    options = {k: getattr(args, k) for k in train_options(args).specs if k != "out"}
    # Paths made absolute, so that the file repeats the run from any working directory.
    options.update(
        dataset=_dataset_path(options["dataset"]),
        root=_absolute(options["root"]),
        weights=_absolute(options["weights"]),
    )
    options.update(epochs=fit_kwargs["epochs"], batch_size=fit_kwargs["batch_size"])
    if args.recipe is None:
        options.update({k: fit_kwargs[k] for k in RECIPE_SETS})
        options.update(model=args.model or name, schedule=fit_kwargs["schedule"] or "none")
        if args.pretrained is not None:
            options.update(model=None, freeze_epochs=freeze_epochs(args))
    plan = resolve_plan(args.device, args.precision)
    # How the run is shown (progress) is an option, not a setting of what it computes.
    used = {k: toml_value(v) for k, v in fit_kwargs.items() if k not in ("callbacks", "progress")}
    used.update(model=name, tta=tta, callbacks=[type(c).__name__ for c in fit_kwargs["callbacks"]])
    environment = {
        "visionblocks": visionblocks.__version__, "torch": torch.__version__,
        "torchvision": torchvision.__version__, "python": sys.version.split()[0],
        "plan": plan.describe(),
    }  # fmt: skip
    return {**options, "fit": used, "environment": environment}


def _train(
    args: argparse.Namespace,
    model: nn.Module,
    data: tuple[Data, Data],
    fit_kwargs: dict[str, Any],
    out: Path,
    *,
    resuming: bool,
) -> History:
    """Train with ``fit`` (checkpointing into ``out``, resuming from it) or ``fine_tune``."""
    train, val = data
    if args.pretrained is not None:
        return fine_tune(model, train, val, frozen_epochs=freeze_epochs(args), **fit_kwargs)
    last = out / LAST_CHECKPOINT
    resume = last if resuming and last.is_file() else None
    if resuming and resume is None:
        print(f"{out} has no {LAST_CHECKPOINT} (no epoch had completed): starting it again")
    return fit(model, train, val, checkpoint_dir=out, resume=resume, **fit_kwargs)


def run_train(args: argparse.Namespace) -> int:
    """Train, evaluate on the test (or validation) split, write the outputs; exit code."""
    resuming, config, overwrite = args.resume is not None, args.config, args.overwrite
    args = resolve_options(args)
    check_options(args, train_options(args).specs)
    if resuming and args.pretrained is not None:
        raise CLIError(
            "--resume continues runs of fit(); a --pretrained run has two stages: start it "
            f"again with --config {Path(args.out) / CONFIG_FILE}."
        )
    data = load_splits(
        args.dataset, args.root, args.limit, image_size=args.image_size,
        val_fraction=args.val_fraction, resize=args.resize or "squash",
    )  # fmt: skip
    args.val_fraction = data.val_fraction
    for line in split_warnings(data):  # imbalance and train/test leakage, in memory only
        print(line)
    train, val, test, split = data.train, data.val, data.test, data.eval_split
    # Seeded before the model exists, so that the seed also covers its initial weights.
    seed_everything(args.seed)
    plan = plan_model(args, train)
    out = Path(args.out) if args.out else _default_out(plan.name, args.dataset)
    if config is not None and out.resolve() == Path(config).resolve().parent:
        raise CLIError(
            f"--config {config!r} is in the output folder {str(out)!r}, which this run would "
            f"overwrite; pass --out OTHER to repeat the run elsewhere."
        )
    probe_writable(out, "--out")
    if resuming and overwrite:
        raise CLIError("--resume continues a run and --overwrite replaces one; pass one of them.")
    folder = RunFolder(out, flag="--resume" if resuming else "--out")
    folder.claim()  # one process per run folder, until this run ends
    try:
        if resuming:
            _check_resumable(folder, train_options(args).specs)
        else:
            folder.start_new(overwrite=overwrite)
        return _run_in(folder, args, (train, val, test, split), plan, resuming=resuming)
    finally:
        folder.release()


def _check_resumable(folder: RunFolder, specs: dict[str, OptionSpec]) -> None:
    """Stop unless the folder holds an unfinished run whose config.toml is as it started."""
    folder.check_resume(read_config(folder.path / CONFIG_FILE, specs))
    done = folder.finished()
    if done is not None:
        raise CLIError(
            f"--resume {str(folder.path)!r}: the run finished all {done} epochs, nothing to "
            f"continue; to train longer, start a new run with --config "
            f"{folder.path / CONFIG_FILE} --epochs N --out OTHER."
        )


def _run_in(
    folder: RunFolder,
    args: argparse.Namespace,
    data: tuple[Data, Data, Data, str],
    plan: Plan,
    *,
    resuming: bool,
) -> int:
    """Train into the claimed ``folder``, evaluate once on the held-out split, write outputs."""
    train, val, test, split = data
    model, name, tta, out = plan.model, plan.name, plan.tta, folder.path
    specs = train_options(args).specs
    fit_kwargs = fit_arguments(args, train, plan, make_callbacks(args, out))
    warning = too_few_steps(fit_kwargs["epochs"], fit_kwargs["batch_size"], len(train))
    if warning is not None:
        print(warning)
    if not resuming:
        write_config(out / CONFIG_FILE, _settings(args, name, fit_kwargs, tta))
        folder.record_start(read_config(out / CONFIG_FILE, specs))
    how = f" with the {args.recipe} recipe ({recipe_preset(args, train)})" if args.recipe else ""
    how += f" fine-tuned from {args.weights or 'DEFAULT'}" if args.pretrained else ""
    print(
        f"training {name}{how} on {train.name} ({len(train):,} images {train.image_shape}, "
        f"{train.num_classes} classes), {fit_kwargs['epochs']} epochs in batches of "
        f"{fit_kwargs['batch_size']}; validating on {len(val):,} images of {val.name}; "
        f"evaluating once, at the end, on the {split} split{' with flip TTA' if tta else ''}"
        f"{' (there is no test split)' if split == 'val' else ''}"
    )
    started = time.perf_counter()
    history = _train(args, model, (train, val), fit_kwargs, out, resuming=resuming)
    seconds = time.perf_counter() - started
    result = evaluate(model, test, tta=tta, device=args.device, precision=args.precision)
    card = card_of(model)
    # Interrupted mid-epoch, fit returns the last completed epoch's weights when last.pt
    # holds them; else the half-trained weights stay, and the outputs say so.
    partial = card.training.get("partial_epoch") if card is not None else None

    # The model's card (builder, classes, input shape, statistics) is fit's; the run adds
    # where it came from and how it scored.
    save_checkpoint(
        out / "model.pt", model,
        extra={"dataset": _dataset_path(args.dataset), "seed": args.seed, "eval_split": split,
               "val_fraction": args.val_fraction, "root": _absolute(args.root),
               f"{split}_accuracy": result.accuracy,
               "tta": tta},
    )  # fmt: skip
    history.to_csv(out / "history.csv")
    history.to_json(out / "history.json")
    metrics = {
        "model": name, "recipe": args.recipe, "dataset": args.dataset, "epochs": len(history),
        "interrupted": history.interrupted, "partial_epoch": partial, "tta": tta,
        "train_images": len(train), "val_images": len(val),
        "eval_split": split, f"{split}_images": len(test), "seconds": round(seconds, 1),
        f"{split}_accuracy": result.accuracy, f"{split}_loss": result.loss,
        "per_class_accuracy": dict(zip(test.classes, result.per_class_accuracy, strict=True)),
    }  # fmt: skip
    if result.task == "multilabel":  # accuracy is exact match; mAP is the headline number
        metrics.update(task=result.task, **{f"{split}_map": result.mean_average_precision})
    atomic_write_text(json.dumps(metrics, indent=2) + "\n", out / "metrics.json")
    written = [CONFIG_FILE, "model.pt", "history.csv", "history.json", "metrics.json"]
    if has_matplotlib():
        from visionblocks.analysis import plot_confusion_matrix

        if len(history):  # not after an interruption during the first epoch
            history.plot(save=out / "curves.png")
            written.append("curves.png")
        if result.task != "multilabel":  # per-label counts are printed, not a K x K matrix
            plot_confusion_matrix(result.confusion, test.classes, save=out / "confusion.png")
            written.append("confusion.png")
    print(result)
    weights = f" and part of epoch {partial} (half-trained weights)" if partial else ""
    scored = f"{split} accuracy {result.accuracy:.2%}"
    if result.task == "multilabel":
        scored = f"{split} mAP {result.mean_average_precision:.4f}, exact-match {scored}"
    print(
        f"{scored}{' (flip TTA)' if tta else ''} after "
        f"{len(history)} epochs{weights} in {seconds:.0f} s; wrote {', '.join(written)} to {out}"
    )
    if history.interrupted:
        if args.pretrained is None:
            print(f"interrupted: `visionblocks train --resume {out}` continues the run")
        return 130
    return 0
