"""The ``visionblocks`` command line: train, eval, summary, models, gradcam, receptive-field.

``visionblocks train`` with no arguments trains ResNet-20 on the Fashion-MNIST sample
built into the package, offline, in about a minute on 2 CPU cores. Every error is one
line on stderr and a non-zero exit status; ``--debug`` shows the traceback instead.

Example:
    >>> main(["models", "resnet2*"])
    model                parameters
    resnet20                272,474
    0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from visionblocks import __version__
from visionblocks._cli._common import CLIError
from visionblocks._cli.bench import add_bench_parser
from visionblocks._cli.describe import add_describe_parsers
from visionblocks._cli.evaluate import add_eval_parsers
from visionblocks._cli.export import add_export_parser
from visionblocks._cli.inspect import add_inspect_parser
from visionblocks._cli.predict import add_predict_parser
from visionblocks._cli.train import add_train_parser
from visionblocks.data import DatasetNotFoundError

__all__ = ["CLIError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per task.

    Example:
        >>> args = build_parser().parse_args(["train", "--model", "resnet20", "--epochs", "2"])
        >>> args.command, args.model, args.epochs, args.debug
        ('train', 'resnet20', 2, False)
    """
    parser = argparse.ArgumentParser(
        prog="visionblocks",
        description="Reusable CNN components for PyTorch. Start with `visionblocks train`.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(sub)
    add_eval_parsers(sub)
    add_describe_parsers(sub)
    add_predict_parser(sub)
    add_export_parser(sub)
    add_inspect_parser(sub)
    add_bench_parser(sub)
    for child in sub.choices.values():
        # Also accept --debug after the command; SUPPRESS keeps the top-level value otherwise.
        child.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Returns:
        0 on success, 1 after an error (reported as one line on stderr), 2 for bad usage
        (argparse's convention), 130 after Ctrl-C.

    Example:
        >>> main(["models", "vgg1*"])
        model                parameters
        vgg11_cifar           9,228,362
        vgg13_cifar           9,413,066
        vgg16_cifar          14,724,042
        0
        >>> main(["eval", "no-such-model.pt"])  # the error is one line on stderr
        1
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("visionblocks: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"visionblocks {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 1


def _one_line(err: Exception) -> str:
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, DatasetNotFoundError):
        return f"{message} On the command line, point at the files with --root DIR."
    if isinstance(err, (CLIError, ValueError, FileNotFoundError, ImportError)):
        return message
    # Anything else is unexpected: name its type and point at the traceback.
    return f"{type(err).__name__}: {message} (rerun with --debug for the traceback)"
