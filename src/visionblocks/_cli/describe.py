"""``visionblocks models``, ``summary`` and ``receptive-field``: look at architectures."""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

from visionblocks._cli._common import (
    CLIError,
    build_model,
    check_model_name,
    input_size_for,
    load_trained,
    parse_model_args,
)
from visionblocks.analysis import receptive_field, summary
from visionblocks.models import create_model, list_models

__all__ = ["add_describe_parsers"]


def _models(args: argparse.Namespace) -> int:
    names = list_models(args.pattern)
    if not names:
        raise CLIError(f"no model matches {args.pattern!r}; `visionblocks models` lists them all.")
    print(f"{'model':<18} {'parameters':>12}")
    for name in names:
        model = create_model(name)
        print(f"{name:<18} {sum(p.numel() for p in model.parameters()):>12,}")
    return 0


def _model_for(args: argparse.Namespace) -> tuple[nn.Module, tuple[int, int, int]]:
    """A checkpoint (``*.pt`` path) or a registry name, and the input size to trace it with."""
    if args.model.endswith(".pt") or Path(args.model).is_file():
        trained = load_trained(args.model)
        channels = int(getattr(trained.model, "in_channels", 3))
        shape = trained.image_shape or input_size_for(None, channels)
        if args.input_size:
            shape = input_size_for(args.input_size, channels)
        return trained.model, shape
    check_model_name(args.model)
    in_channels = args.input_size[0] if args.input_size else args.in_channels
    shape = input_size_for(args.input_size, in_channels)
    model, _ = build_model(args.model, args.num_classes, shape, parse_model_args(args.model_arg))
    return model, shape


def _summary(args: argparse.Namespace) -> int:
    model, shape = _model_for(args)
    print(summary(model, shape, max_depth=args.depth))
    return 0


def _receptive_field(args: argparse.Namespace) -> int:
    model, shape = _model_for(args)
    report = receptive_field(model, shape)
    print(report)
    last = report.layers[-1]
    print(
        f"\nthe last feature map ({last.name}) sees {last.size[0]}x{last.size[1]} input pixels "
        f"per unit, on a {shape[1]}x{shape[2]} input"
    )
    return 0


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registry name (e.g. resnet20) or a checkpoint file (model.pt)")
    p.add_argument(
        "--input-size",
        type=int,
        nargs=3,
        metavar=("C", "H", "W"),
        help="input shape (default: the checkpoint's, else 3 32 32, or 1 28 28 with "
        "--in-channels 1)",
    )
    p.add_argument("--in-channels", type=int, default=3, help="default: %(default)s")
    p.add_argument("--num-classes", type=int, default=10, help="default: %(default)s")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="builder argument")


def add_describe_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``models``, ``summary`` and ``receptive-field``."""
    p = sub.add_parser("models", help="list the registered models and their sizes")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    p.set_defaults(func=_models)

    p = sub.add_parser("summary", help="per-layer output shapes, parameters and FLOPs")
    _add_model_arguments(p)
    p.add_argument("--depth", type=int, help="deepest nesting level shown (default: all)")
    p.set_defaults(func=_summary)

    p = sub.add_parser("receptive-field", help="receptive field, jump and start of every layer")
    _add_model_arguments(p)
    p.set_defaults(func=_receptive_field)
