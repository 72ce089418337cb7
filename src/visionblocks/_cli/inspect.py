"""``visionblocks inspect``: what would go wrong in training on a dataset, before training.

Prints :func:`~visionblocks.data.inspect_data`'s report of the splits that ``visionblocks
train`` would use: class counts and imbalance, sizes and modes, unreadable files, exact
duplicates within and across splits. ``train`` itself warns about the worst of these
(:func:`split_warnings`) when its data is in memory, where checking costs a fraction of
a second.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from visionblocks._cli._common import (
    DEFAULT_VAL_FRACTION,
    CLIError,
    Splits,
    has_matplotlib,
    is_named,
)
from visionblocks._paths import check_output_file
from visionblocks.data import ImageDataset, inspect_data
from visionblocks.model_file import atomic_write_text

__all__ = ["add_inspect_parser", "split_warnings"]


def add_inspect_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``inspect`` sub-command."""
    p = sub.add_parser(
        "inspect",
        help="look at a dataset before training: class balance, sizes, unreadable files, "
        "duplicates and train/test leakage",
        description="Report images per class and split with the imbalance ratio, image sizes "
        "and modes, files that cannot be decoded, and exact duplicates (identical decoded "
        "pixels) within a split and across train, val and test. The splits are those "
        "`visionblocks train` uses: a folder's train/, val/, test/, or a --val-fraction of "
        "its images held out; a built-in dataset's train and test.",
    )
    p.add_argument(
        "data", nargs="?", default="sample", metavar="DATA",
        help="sample (built in), fashion-mnist, mnist, cifar10, cifar100, an image folder or a "
        "labels file (.csv) (default: sample)",
    )  # fmt: skip
    p.add_argument(
        "--root", help="folder holding the dataset files (for a labels file: its images)"
    )
    p.add_argument(
        "--val-fraction", type=float, metavar="F",
        help=f"image folders without val/ and labels files: report the validation part that "
        f"train holds out (default: {DEFAULT_VAL_FRACTION}, as train; 0 reports the images "
        f"as one split)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of that split (default: 0, as train)")
    p.add_argument("--image-suffix", metavar=".EXT", help="labels files: added to every image path")
    p.add_argument(
        "--max-imbalance", type=float, default=10.0, metavar="R",
        help="warn when the largest class of train has more than R times the images of the "
        "smallest (default: 10)",
    )  # fmt: skip
    p.add_argument("--plot", metavar="FILE", help="also draw the report to FILE (needs matplotlib)")
    p.add_argument("--json", metavar="FILE", help="also write the report to FILE as JSON")
    p.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    plot = None if args.plot is None else check_output_file(args.plot, "--plot")
    out = None if args.json is None else check_output_file(args.json, "--json")
    if plot is not None and not has_matplotlib():
        raise CLIError("--plot draws with matplotlib: pip install visionblocks[viz]")
    started = time.perf_counter()
    report = inspect_data(
        args.data, root=args.root, val_fraction=_val_fraction(args), seed=args.seed,
        image_suffix=args.image_suffix, max_imbalance=args.max_imbalance,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    print(report)
    written = []
    if out is not None:
        atomic_write_text(json.dumps(report.to_dict(), indent=2) + "\n", out)
        written.append(str(out))
    if plot is not None:
        report.plot(save=plot)
        written.append(str(plot))
    wrote = f"; wrote {', '.join(written)}" if written else ""
    print(f"inspected {report.images:,} images in {seconds:.1f} s{wrote}")
    return 0


def _val_fraction(args: argparse.Namespace) -> float | None:
    """The fraction ``inspect_data`` gets: train's default for a folder without val/."""
    fraction: float | None = args.val_fraction
    if is_named(args.data):
        if fraction is not None:
            raise CLIError(
                f"--val-fraction applies to image folders and labels files; {args.data!r} is "
                f"a built-in dataset, inspected as its train and test splits."
            )
        return None
    if fraction is not None and not 0 <= fraction < 1:  # NaN fails both comparisons
        raise CLIError(f"--val-fraction must be in [0, 1), e.g. 0.2; got {fraction}.")
    if (Path(args.data) / "val").is_dir():
        if fraction:
            raise CLIError(
                f"--val-fraction splits the training images, but {args.data!r} has its own "
                f"val/ subfolder; drop --val-fraction."
            )
        return None
    if fraction is None:
        return DEFAULT_VAL_FRACTION
    return fraction or None


def split_warnings(splits: Splits) -> list[str]:
    """``train``'s one-line warnings about its splits: imbalance, leakage, clashing labels.

    Only for single-label splits held in memory, where hashing every image takes a
    fraction of a second (``benchmarks/bench_inspect.py``); streamed splits are not read
    twice, and get no warning.

    Example:
        >>> from visionblocks._cli._common import load_splits
        >>> split_warnings(load_splits("sample", None))
        []
    """
    parts = {"train": splits.train, "val": splits.val}
    if splits.eval_split == "test":
        parts["test"] = splits.test
    if not all(isinstance(part, ImageDataset) for part in parts.values()):
        return []
    if any(part.labels.dim() == 2 for part in parts.values()):
        return []  # multi-label: inspect_data counts one class per image
    return [
        f"warning: {line} (`visionblocks inspect` shows more)"
        for line in inspect_data(parts).warnings()
    ]
