"""What several sub-commands share: datasets with a size limit, model building, checkpoints."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionblocks import models
from visionblocks._paths import write_probe
from visionblocks.data import DATASETS, ImageDataset, StreamingDataset, load_dataset, subset
from visionblocks.data import normalize as normalize_images
from visionblocks.data._dataset import subset_indices
from visionblocks.inference import load_model, model_card
from visionblocks.models import create_model, list_models

__all__ = [
    "DEFAULT_VAL_FRACTION",
    "CLIError",
    "Splits",
    "TrainedModel",
    "add_checkpoint_argument",
    "add_data_arguments",
    "add_device_arguments",
    "build_model",
    "check_data_options",
    "check_limit",
    "check_model_name",
    "has_matplotlib",
    "input_size_for",
    "limit",
    "load_data",
    "load_splits",
    "load_trained",
    "model_file",
    "normalize",
    "parse_model_args",
    "probe_writable",
]

DEFAULT_VAL_FRACTION = 0.2
"""Share of an image folder's (or labels file's) images held out for validation without val/."""
NAMED_VAL_FRACTION = 0.1
"""Share of a built-in dataset's training split held out for validation by default."""


class CLIError(Exception):
    """A user error: ``main`` prints its message as one line and exits with status 1.

    Example:
        >>> from visionblocks.cli import main
        >>> main(["train", "--config", "no-such-file.toml"])  # the message goes to stderr
        1
        >>> main(["--debug", "train", "--config", "no-such-file.toml"])
        Traceback (most recent call last):
            ...
        visionblocks._cli._common.CLIError: --config 'no-such-file.toml': no such file.
    """


def has_matplotlib() -> bool:
    """Whether the optional plotting dependency is importable."""
    return importlib.util.find_spec("matplotlib") is not None


def add_data_arguments(
    parser: argparse.ArgumentParser, *, default: str | None = "sample", default_help: str = ""
) -> None:
    """``--dataset`` (``default``, described by ``default_help``), ``--root`` and ``--limit``."""
    parser.add_argument(
        "--dataset",
        default=default,
        help="sample (built in, offline), fashion-mnist, mnist, cifar10, cifar100, or the path "
        "of an image folder with one subfolder per class, or with train/ (and val/, test/) "
        "subfolders of those, or a labels file (.csv: an image and a label per row) "
        f"(default: {default_help or default})",
    )
    parser.add_argument(
        "--root", help="folder holding the dataset files (for a labels file: its images)"
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="use at most N images of each split (a class-balanced subset), for quick runs",
    )


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--precision``."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "bf16", "fp16", "fp32"),
        help="autocast precision (default: auto, bf16 where the hardware has fast kernels)",
    )


def check_limit(max_images: int | None) -> None:
    """``--limit``: a positive number of images, or None (all of them)."""
    if max_images is not None and max_images < 1:
        raise CLIError(f"--limit must be a positive number of images; got {max_images}.")


def check_data_options(
    name: str, max_images: int | None, image_size: int | None, val_fraction: float | None
) -> None:
    """Check ``--limit``, ``--image-size`` and ``--val-fraction`` before any data is read.

    The one guard of the image-folder options: each in range, and given only for an
    image folder (``--val-fraction`` for a built-in dataset or a folder without ``val/``).
    """
    check_limit(max_images)
    if image_size is not None and image_size < 1:
        raise CLIError(f"--image-size must be a positive number of pixels; got {image_size}.")
    if val_fraction is not None and not 0 < val_fraction < 1:  # NaN fails both comparisons
        raise CLIError(f"--val-fraction must be in (0, 1), e.g. 0.2; got {val_fraction}.")
    if is_named(name):
        if image_size is not None:
            raise CLIError(
                f"--image-size applies to image folders and labels files; {name!r} is a "
                f"built-in dataset (images of one size)."
            )
    elif (Path(name) / "val").is_dir() and val_fraction is not None:
        raise CLIError(
            f"--val-fraction splits the training images, but {str(Path(name))!r} has its own "
            f"val/ subfolder; drop --val-fraction."
        )


def limit(dataset: ImageDataset, max_images: int | None) -> ImageDataset:
    """At most ``max_images`` images of ``dataset``, the same share of every class."""
    check_limit(max_images)
    if max_images is None or max_images >= len(dataset):
        return dataset
    # A class-balanced subset; round(fraction * n_c) per class can overshoot by a few
    # images, which a uniform subset then trims.
    small = subset(dataset, max_images / len(dataset), seed=0)
    if len(small) > max_images:
        small = subset(small, max_images / len(small), stratified=False, seed=0)
    return dataclasses.replace(small, name=f"{dataset.name}[:{len(small)}]")


def load_data(
    name: str, split: str, root: str | None, max_images: int | None = None
) -> ImageDataset:
    """``load_dataset`` (into memory) plus ``--limit``."""
    data = load_dataset(name, split, root=root, in_memory=True)
    if not isinstance(data, ImageDataset):  # pragma: no cover - in_memory=True is honoured
        raise TypeError(f"load_dataset({name!r}, in_memory=True) returned {type(data).__name__}.")
    return limit(data, max_images)


@dataclass
class Splits:
    """The data of a training run: train, validation and the split it is evaluated on."""

    train: ImageDataset | StreamingDataset
    val: ImageDataset | StreamingDataset
    test: ImageDataset | StreamingDataset
    eval_split: str  # "test", or "val" for a folder without test/
    val_fraction: float | None  # the share of train/ held out as val, if it was


def load_splits(
    name: str,
    root: str | None,
    max_images: int | None = None,
    *,
    image_size: int | tuple[int, int] | None = None,
    val_fraction: float | None = None,
    resize: str = "squash",
) -> Splits:
    """The splits of a training run: the test split is never used to choose anything.

    Validation (what early stopping, the plateau schedule and the epoch lines see) is a
    ``val/`` subfolder, or else a stratified part of the training images held out with
    seed 0: ``val_fraction`` of them (default :data:`NAMED_VAL_FRACTION` of a built-in
    dataset's, :data:`DEFAULT_VAL_FRACTION` of a folder's). The run is evaluated once, at
    the end, on the test split (a built-in dataset's, or a ``test/`` subfolder); a folder
    without ``test/`` is evaluated on its validation split, and the run says so. The
    options are checked by :func:`check_data_options`.
    """
    if is_named(name):
        fraction = NAMED_VAL_FRACTION if val_fraction is None else val_fraction
        named, named_val = hold_out(load_data(name, "train", root, max_images), fraction)
        named_test = load_data(name, "test", root, max_images)
        return Splits(named, named_val, named_test, "test", fraction)
    folder = Path(name)  # an image folder, or a labels file (one set of images: no val/, test/)
    has_val, has_test = (folder / "val").is_dir(), (folder / "test").is_dir()
    if not has_val and val_fraction is None:
        val_fraction = DEFAULT_VAL_FRACTION
    sized: dict[str, Any] = {} if image_size is None else {"image_size": image_size}
    sized.update({} if resize == "squash" else {"resize": resize})
    split_kw = {**sized, **({} if val_fraction is None else {"val_fraction": val_fraction})}
    # --limit takes a class-balanced subset of the decoded images; else large folders stream.
    in_memory = True if max_images is not None else None

    def read(split: str, **kwargs: Any) -> ImageDataset | StreamingDataset:
        data = load_dataset(folder, split, root=root, in_memory=in_memory, **kwargs)
        return limit(data, max_images) if isinstance(data, ImageDataset) else data

    train, val = read("train", **split_kw), read("val", **split_kw)
    if has_test:
        return Splits(train, val, read("test", **sized), "test", val_fraction)
    return Splits(train, val, val, "val", val_fraction)


def is_named(name: str) -> bool:
    """Whether ``name`` is a built-in dataset rather than an image folder or labels file."""
    if name.lower().endswith(".csv"):
        return False
    return name.lower() in DATASETS or not Path(name).is_dir()


def hold_out(data: ImageDataset, fraction: float) -> tuple[ImageDataset, ImageDataset]:
    """``data`` split into training and validation images: ``fraction`` of each class held out.

    The choice is seeded (seed 0), so every run of a dataset validates on the same images;
    both parts keep ``data``'s ``mean``/``std``.

    Example:
        >>> from visionblocks.data import load_dataset
        >>> train, val = hold_out(load_dataset("sample"), 0.1)
        >>> len(train), len(val), val.labels.bincount().tolist()
        (1800, 200, [20, 20, 20, 20, 20, 20, 20, 20, 20, 20])
    """
    held = torch.zeros(len(data), dtype=torch.bool)
    held[subset_indices(data, fraction, seed=0)] = True
    train, val = (
        dataclasses.replace(data, images=data.images[part], labels=data.labels[part], name=name)
        for part, name in ((~held, f"{data.name} (train part)"), (held, f"{data.name} (val part)"))
    )
    return train, val


def probe_writable(folder: Path, flag: str) -> None:
    """Create ``folder`` and write a file into it, so that a bad ``flag`` fails before training.

    The output folder's counterpart of :func:`visionblocks._paths.check_output_file`, which
    checks the output files of ``predict --csv`` and ``export --out``.
    """
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{flag} {str(folder)!r} is a file, not a folder; choose another path.")
    reason = write_probe(folder)
    if reason is not None:
        raise CLIError(
            f"{flag} {str(folder)!r} cannot be written ({reason}); choose another folder."
        )


def check_model_name(name: str) -> None:
    """Fail fast (before any data is loaded) on a model name that is not registered."""
    if name not in list_models():
        create_model(name)  # raises the registry's ValueError with the closest names


def parse_model_args(pairs: list[str] | None) -> dict[str, Any]:
    """Turn ``["width=32", "shortcut=padding"]`` into builder keyword arguments.

    Values are Python literals where they parse as one (``32``, ``0.5``, ``True``,
    ``(32, 64)``) and plain strings otherwise.
    """
    kwargs: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise CLIError(f"--model-arg takes KEY=VALUE, e.g. width=32; got {pair!r}.")
        try:
            kwargs[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            kwargs[key] = text
    return kwargs


def _accepts(name: str, parameter: str) -> bool:
    try:
        builder = models.get_model_builder(name)
    except ValueError:
        return False
    try:
        return parameter in inspect.signature(builder).parameters
    except (TypeError, ValueError):
        return False


def build_model(
    name: str, num_classes: int, image_shape: tuple[int, int, int], extra: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``name`` for data of ``image_shape`` (C, H, W); return the model and its kwargs.

    The kwargs are what :func:`~visionblocks.train.save_checkpoint` stores so that the
    model can be rebuilt later. ``image_size`` is passed to builders that need it (the
    simple CNN, whose fully connected layer fixes the input size).
    """
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_channels": image_shape[0]}
    if _accepts(name, "image_size") and image_shape[1] == image_shape[2]:
        kwargs["image_size"] = image_shape[1]
    kwargs.update(extra)
    try:
        return create_model(name, **kwargs), kwargs
    except TypeError as err:
        raise CLIError(f"cannot build {name!r} with {kwargs}: {err}.") from err


@dataclass
class TrainedModel:
    """A model rebuilt from a checkpoint the ``train`` command wrote."""

    model: nn.Module
    name: str
    stats: tuple[tuple[float, ...], tuple[float, ...]] | None
    classes: list[str]
    image_shape: tuple[int, int, int] | None
    state: dict[str, Any]


def add_checkpoint_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``checkpoint`` of the commands that use a trained model."""
    parser.add_argument("checkpoint", help="model.pt written by `visionblocks train`")


def model_file(path: str) -> Path:
    """``path`` of an existing model file, or a :class:`CLIError` that says how to make one."""
    if not Path(path).is_file():
        raise CLIError(
            f"no checkpoint at {path!r}: no model file there; `visionblocks train --out DIR` "
            f"writes DIR/model.pt."
        )
    return Path(path)


def load_trained(path: str) -> TrainedModel:
    """Rebuild the model stored in a checkpoint with :func:`visionblocks.load_model`.

    ``state`` holds the file's other plain entries (``dataset``, ``epochs``, ...).
    """
    model = load_model(model_file(path))
    card = model_card(model)
    if card is None:  # pragma: no cover - load_model always attaches one
        raise RuntimeError(f"load_model({path!r}) returned a model without its ModelCard.")
    num_classes = int(getattr(model, "num_classes", 0))
    classes = list(card.classes or [str(i) for i in range(num_classes)])
    name = card.builder or type(model).__name__
    return TrainedModel(model, name, card.stats, classes, card.image_shape, card.info)


def input_size_for(input_size: list[int] | None, in_channels: int) -> tuple[int, int, int]:
    """``--input-size`` or the model's natural size (28x28 for 1 channel, else 32x32)."""
    if input_size is not None:
        if len(input_size) != 3 or min(input_size) < 1:
            raise CLIError(f"--input-size takes C H W, e.g. 3 32 32; got {input_size}.")
        return (input_size[0], input_size[1], input_size[2])
    side = 28 if in_channels == 1 else 32
    return (in_channels, side, side)


def normalize(
    images: torch.Tensor, stats: tuple[tuple[float, ...], tuple[float, ...]] | None
) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` -> floats normalized with ``stats`` (or just scaled to [0, 1])."""
    if stats is None:
        channels = images.shape[1]
        stats = ((0.0,) * channels, (1.0,) * channels)
    return normalize_images(images, *stats)
