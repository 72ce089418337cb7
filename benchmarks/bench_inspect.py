"""How long ``inspect_data`` takes: full Fashion-MNIST in memory, and a folder of PNG files.

Two measurements, each the best of ``--repeats`` runs:

* Fashion-MNIST, all 70,000 images (60,000 train + 10,000 test, 1x28x28), from the IDX
  files of ``apt-get install dataset-fashion-mnist``: ``load_dataset`` of both splits,
  ``inspect_data`` on the loaded splits (hashing every image's pixels), and
  ``inspect_data("fashion-mnist")`` (the two together, what ``visionblocks inspect
  fashion-mnist`` runs);
* a folder of ``--images`` Fashion-MNIST PNGs (the training images first, then the test
  images; one folder per class; written by this script): ``inspect_data(folder)``,
  which opens and decodes every file once, in one process, against the bare cost of
  decoding the files with ``decode_image_file`` in one process and in two (a fork
  pool, the files in chunks of 500), the choice ``inspect_data`` makes.

Prints the CPU count and the load average with the times and writes the output, with
the command and the machine, to ``docs/_generated/bench_inspect.txt``, which
``docs/own_data.rst`` includes::

    .venv/bin/python benchmarks/bench_inspect.py                     # about a minute
    .venv/bin/python benchmarks/bench_inspect.py --images 70000      # 70,000 files
    .venv/bin/python benchmarks/bench_inspect.py --images 500 --repeats 1 --out -
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from PIL import Image

import visionblocks as vb
from visionblocks.data import decode_image_file, inspect_data, load_dataset

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "_generated" / "bench_inspect.txt"
CHUNK = 500  # files per task of the two-process pool


def machine() -> str:
    """Versions, CPU model, cores usable by this process, load average."""
    names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ] if Path("/proc/cpuinfo").exists() else []  # fmt: skip
    cpu = names[0] if names else platform.processor() or platform.machine()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"torch {torch.__version__}, visionblocks {vb.__version__}, {os.cpu_count()} CPU cores "
        f"({cpu}), {usable} usable by this process, load average {load:.1f} at the start"
    )


def best(run: Callable[[], object], repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``run``, in seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def write_folder(folder: Path, images: int, root: str | None) -> None:
    """The first ``images`` Fashion-MNIST images (train, then test) as PNGs in class folders."""
    parts = [load_dataset("fashion-mnist", s, root=root, in_memory=True) for s in ("train", "test")]
    available = sum(len(p) for p in parts)
    if images > available:
        raise SystemExit(f"--images {images}: Fashion-MNIST has {available:,} images.")
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    written = 0
    for part in parts:
        for i in range(min(len(part), images - written)):
            name = part.classes[int(part.labels[i])].replace("/", "-")
            (staging / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(part.images[i, 0].numpy()).save(staging / name / f"{written:05d}.png")
            written += 1
    staging.rename(folder)


def decode_all(files: Sequence[Path]) -> int:
    """Decode every file with the loaders' decoder; the number decoded."""
    for path in files:
        decode_image_file(path)
    return len(files)


def decode_in_processes(files: Sequence[Path], processes: int) -> int:
    chunks = [files[i : i + CHUNK] for i in range(0, len(files), CHUNK)]
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(processes, mp_context=context) as pool:
        return sum(pool.map(decode_all, chunks))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", help="folder with the Fashion-MNIST files (default: installed)")
    parser.add_argument("--images", type=int, default=10_000, help="PNG files (default: 10,000)")
    parser.add_argument("--folder", help="keep the PNG folder here (written if absent)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per time (default: 3)")
    parser.add_argument(
        "--out", default=str(OUT), help="file for the output, '-' for none (default: the docs')"
    )
    args = parser.parse_args()
    shown = " ".join(["python", "benchmarks/bench_inspect.py", *sys.argv[1:]])
    lines = [f"$ {shown}", f"# {machine()}"]
    print(lines[1], flush=True)

    def say(line: str = "") -> None:
        print(line, flush=True)
        lines.append(line)

    def row(what: str, seconds: float, extra: str = "") -> None:
        say(f"  {what:<50}{seconds:7.2f} s{extra}")

    say(f"Fashion-MNIST in memory, best of {args.repeats}:")
    splits: dict[str, vb.ImageDataset] = {}

    def load() -> None:
        for split in ("train", "test"):
            splits[split] = load_dataset("fashion-mnist", split, root=args.root, in_memory=True)

    row("load_dataset, train and test", best(load, args.repeats))
    count = sum(len(s) for s in splits.values())
    seconds = best(lambda: inspect_data(dict(splits)), args.repeats)
    row(f"inspect_data on the {count:,} loaded images", seconds, f"  ({count / seconds:,.0f}/s)")
    report = inspect_data("fashion-mnist", root=args.root)
    whole = best(lambda: inspect_data("fashion-mnist", root=args.root), args.repeats)
    row('inspect_data("fashion-mnist"), loading included', whole)
    say(f"  found: {len(report.duplicates)} duplicate groups, {len(report.warnings())} warnings")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp) / "pngs"
        if not folder.is_dir():
            write_folder(folder, args.images, args.root)
        files = sorted(folder.rglob("*.png"))
        say(f"A folder of {len(files):,} Fashion-MNIST PNGs (1x28x28), best of {args.repeats}:")
        seconds = best(lambda: inspect_data(folder), args.repeats)
        row("inspect_data(folder)", seconds, f"  ({len(files) / seconds:,.0f} files/s)")
        seconds = best(lambda: decode_all(files), args.repeats)
        row("decode only, 1 process", seconds, f"  ({len(files) / seconds:,.0f} files/s)")
        seconds = best(lambda: decode_in_processes(files, 2), args.repeats)
        row("decode only, 2 processes", seconds, f"  ({len(files) / seconds:,.0f} files/s)")
    if args.out != "-":
        Path(args.out).write_text("\n".join(lines).rstrip() + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
