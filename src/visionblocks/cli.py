"""The ``visionblocks`` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from visionblocks.models import create_model, list_models

__all__ = ["main"]


def _cmd_models(args: argparse.Namespace) -> int:
    print(f"{'model':<18} {'parameters':>12}")
    for name in list_models(args.pattern):
        model = create_model(name)
        print(f"{name:<18} {sum(p.numel() for p in model.parameters()):>12,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per task."""
    parser = argparse.ArgumentParser(prog="visionblocks", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    models = sub.add_parser("models", help="list the registered models and their sizes")
    models.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'resnet*'")
    models.set_defaults(func=_cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))
