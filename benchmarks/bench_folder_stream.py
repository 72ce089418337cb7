"""Images per second from a PNG folder: StreamLoader vs ImageFolder + per-image PIL transforms.

Both sides read the same folder of real Fashion-MNIST PNGs (written by this script from
``load_dataset("fashion-mnist")``, 1x28x28, one subfolder per class), apply the same
augmentation and yield the same thing, normalized float32 ``(B, 1, 28, 28)`` batches with
labels on ``--device``, with the same number of DataLoader workers:

* baseline: ``torchvision.datasets.ImageFolder`` (Pillow, opened as grayscale like ours)
  with ``RandomCrop(28, padding=4)``, ``RandomHorizontalFlip()``, ``ToTensor()``,
  ``Normalize(mean, std)`` per image in the workers, ``DataLoader(shuffle=True)``;
* visionblocks: ``load_dataset(folder, in_memory=False)`` and
  :class:`~visionblocks.data.StreamLoader`: workers only decode (Pillow,
  ``decode_image_file``) and collate uint8; crop, flip and normalization run on the whole
  batch on ``--device``.

Each side runs ``--epochs`` full epochs, timed end to end, worker start-up included.

Usage::

    .venv/bin/python benchmarks/bench_folder_stream.py [--folder PATH] [--images 20000]
        [--workers N] [--batch-size 256] [--epochs 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torchvision.transforms as T
from bench_loader import images_per_second  # the same timing as the in-memory benchmark
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.io import write_png

from visionblocks.data import StreamLoader, default_num_workers, load_dataset


def cpu_flags() -> str:
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return ", ".join(f"{f}={'yes' if f in flags else 'no'}" for f in wanted)


def write_folder(folder: Path, images: int) -> None:
    """The first ``images`` Fashion-MNIST training images as PNGs in class folders."""
    data = load_dataset("fashion-mnist")
    if images > len(data):
        raise SystemExit(f"--images {images}: Fashion-MNIST has {len(data)} training images.")
    staging = folder.with_name(folder.name + ".partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io's encoders
        for name in data.classes:
            (staging / name.replace("/", "-")).mkdir(parents=True, exist_ok=True)
        for i in range(images):
            name = data.classes[int(data.labels[i])].replace("/", "-")
            write_png(data.images[i], str(staging / name / f"{i:05d}.png"))
    staging.rename(folder)


def gray_loader(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("L")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="PNG folder (written if absent)")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=default_num_workers())
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    folder = args.folder or Path(tempfile.gettempdir()) / f"visionblocks-fashion-png-{args.images}"
    if not folder.is_dir():
        start = time.perf_counter()
        write_folder(folder, args.images)
        print(f"wrote {args.images} PNGs to {folder} in {time.perf_counter() - start:.1f} s")
    load1, load5, _ = os.getloadavg()
    print(
        f"torch {torch.__version__}, device {device}, {os.cpu_count()} CPUs ({cpu_flags()}), "
        f"load average {load1:.1f}/{load5:.1f}, {args.workers} workers, batch "
        f"{args.batch_size}, {args.epochs} epochs"
    )

    start = time.perf_counter()
    stream = load_dataset(folder, in_memory=False)
    indexed = time.perf_counter() - start
    mean, std = stream.mean, stream.std
    print(
        f"load_dataset(in_memory=False): {len(stream)} files indexed in {indexed:.2f} s, "
        f"stats from a sample in {time.perf_counter() - start - indexed:.2f} s; "
        f"mean {mean[0]:.4f}, std {std[0]:.4f}"
    )
    side = stream.image_size[0]
    baseline = DataLoader(
        ImageFolder(
            str(folder),
            transform=T.Compose(
                [
                    T.RandomCrop(side, padding=4),
                    T.RandomHorizontalFlip(),
                    T.ToTensor(),
                    T.Normalize(mean, std),
                ]
            ),
            loader=gray_loader,
        ),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    ours = StreamLoader(
        stream, batch_size=args.batch_size, augment="standard", device=device,
        num_workers=args.workers,
    )  # fmt: skip
    pil_rate = images_per_second(baseline, args.epochs, device)
    ours_rate = images_per_second(ours, args.epochs, device)
    print(f"ImageFolder + PIL transforms: {pil_rate:9,.0f} img/s")
    print(f"StreamLoader (batched aug.):  {ours_rate:9,.0f} img/s")
    print(f"ratio: {ours_rate / pil_rate:.2f}x")


if __name__ == "__main__":
    main()
