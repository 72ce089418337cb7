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
from visionblocks.data import ImageDataset, load_dataset, subset
from visionblocks.models import create_model, list_models
from visionblocks.train import load_checkpoint

__all__ = [
    "CLIError",
    "TrainedModel",
    "add_data_arguments",
    "add_device_arguments",
    "build_model",
    "check_model_name",
    "has_matplotlib",
    "input_size_for",
    "limit",
    "load_data",
    "load_trained",
    "normalize",
    "parse_model_args",
]


class CLIError(Exception):
    """A user error: ``main`` prints its message as one line and exits with status 1."""


def has_matplotlib() -> bool:
    """Whether the optional plotting dependency is importable."""
    return importlib.util.find_spec("matplotlib") is not None


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--root`` and ``--limit``."""
    parser.add_argument(
        "--dataset",
        default="sample",
        help="sample (built in, offline), fashion-mnist, mnist, cifar10, cifar100, or the path "
        "of an image folder with one subfolder per class (default: %(default)s)",
    )
    parser.add_argument("--root", help="folder holding the dataset files")
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


def limit(dataset: ImageDataset, max_images: int | None) -> ImageDataset:
    """At most ``max_images`` images of ``dataset``, the same share of every class."""
    if max_images is None or max_images >= len(dataset):
        return dataset
    if max_images < 1:
        raise CLIError(f"--limit must be a positive number of images; got {max_images}.")
    # A class-balanced subset; round(fraction * n_c) per class can overshoot by a few
    # images, which a uniform subset then trims.
    small = subset(dataset, max_images / len(dataset), seed=0)
    if len(small) > max_images:
        small = subset(small, max_images / len(small), stratified=False, seed=0)
    return dataclasses.replace(small, name=f"{dataset.name}[:{len(small)}]")


def load_data(
    name: str, split: str, root: str | None, max_images: int | None = None
) -> ImageDataset:
    """``load_dataset`` plus ``--limit``."""
    return limit(load_dataset(name, split, root=root), max_images)


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
    # Registered builders are exported from visionblocks.models under their own name.
    builder = getattr(models, name, None)
    if builder is None:
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


def load_trained(path: str) -> TrainedModel:
    """Rebuild the model stored in a checkpoint (``model_name`` + ``model_kwargs``)."""
    if not Path(path).is_file():
        raise CLIError(
            f"no checkpoint at {path!r}; `visionblocks train --out DIR` writes DIR/model.pt."
        )
    state = load_checkpoint(path)
    name = state.get("model_name")
    if not name:
        raise CLIError(
            f"{path!r} does not say which model it holds (no model_name); save it with "
            f"save_checkpoint(path, model, model_name=..., model_kwargs=...)."
        )
    model = create_model(str(name), **dict(state.get("model_kwargs") or {}))
    load_checkpoint(path, model)
    model.eval()
    raw = state.get("stats")
    stats = (tuple(raw[0]), tuple(raw[1])) if raw else None
    if stats is not None:
        # evaluate() then normalizes exactly like fit() did during training.
        setattr(model, "visionblocks_stats", stats)  # noqa: B010 - a plain attribute, not a module
    num_classes = int(getattr(model, "num_classes", 0))
    classes = list(state.get("classes") or [str(i) for i in range(num_classes)])
    shape = state.get("image_shape")
    image_shape = (int(shape[0]), int(shape[1]), int(shape[2])) if shape else None
    return TrainedModel(model, str(name), stats, classes, image_shape, state)


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
    x = images.float() / 255
    if stats is None:
        return x
    mean = torch.tensor(stats[0]).view(1, -1, 1, 1)
    std = torch.tensor(stats[1]).view(1, -1, 1, 1)
    return (x - mean) / std
