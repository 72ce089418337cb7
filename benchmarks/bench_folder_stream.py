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

``--size N`` (e.g. 224) measures photos instead: ``--images`` RGB JPEGs of ``8N/7 x 10N/7``
pixels (256 x 320 for 224; the sample's Fashion-MNIST pictures, upscaled and tinted per
class, written by this script), made ``(B, 3, N, N)`` batches for training:

* baseline: ``ImageFolder`` (Pillow, RGB) with ``RandomResizedCrop(N, scale=(0.35, 1),
  ratio=(3/4, 4/3))``, ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize`` per image;
* visionblocks: ``load_dataset(folder, image_size=N, resize="shorter-side+center-crop",
  in_memory=False)`` and ``StreamLoader(augment="photo")``: workers decode, take the same
  random resized crop straight from each decoded file to ``N x N`` and flip it, and collate
  uint8; normalization runs on the whole batch on ``--device``.

Usage::

    .venv/bin/python benchmarks/bench_folder_stream.py [--folder PATH] [--images 20000]
        [--workers N] [--batch-size 256] [--epochs 2] [--device cpu] [--size 224]
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

from visionblocks._device import cpu_flags as present_cpu_flags
from visionblocks.data import StreamLoader, default_num_workers, load_dataset

# The "photo" preset's random resized crop: share of the area, aspect ratio (width / height).
PHOTO_SCALE, PHOTO_RATIO = (0.35, 1.0), (3 / 4, 4 / 3)


def cpu_flags() -> str:
    present = set(present_cpu_flags())
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return ", ".join(f"{f}={'yes' if f in present else 'no'}" for f in wanted)


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


def write_photos(folder: Path, images: int, side: int) -> None:
    """``images`` RGB JPEGs, ``(8 side / 7) x (10 side / 7)``, in class folders, from the sample."""
    data = load_dataset("sample")
    if images > len(data):
        raise SystemExit(f"--images {images} with --size: the sample has {len(data)} images.")
    height, width = round(side * 8 / 7), round(side * 10 / 7)
    staging = folder.with_name(folder.name + ".partial")
    tints = torch.rand(len(data.classes), 3, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.4
    for i in range(images):
        label = int(data.labels[i])
        name = data.classes[label].replace("/", "-")
        (staging / name).mkdir(parents=True, exist_ok=True)
        gray = Image.fromarray(data.images[i, 0].numpy(), "L").resize(
            (width, height), Image.Resampling.BICUBIC
        )
        rgb = Image.merge("RGB", [gray.point(lambda v, t=t: int(v * t)) for t in tints[label]])
        rgb.save(staging / name / f"{i:05d}.jpg", quality=90)
    staging.rename(folder)


def gray_loader(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("L")


def rgb_loader(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None, help="PNG folder (written if absent)")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=default_num_workers())
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--size", type=int, default=None, help="photos: RGB JPEGs trained at N x N (e.g. 224)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    kind = "fashion-png" if args.size is None else f"photo-jpg-{args.size}"
    folder = args.folder or Path(tempfile.gettempdir()) / f"visionblocks-{kind}-{args.images}"
    if not folder.is_dir():
        start = time.perf_counter()
        if args.size is None:
            write_folder(folder, args.images)
        else:
            write_photos(folder, args.images, args.size)
        print(f"wrote {args.images} images to {folder} in {time.perf_counter() - start:.1f} s")
    load1, load5, _ = os.getloadavg()
    print(
        f"torch {torch.__version__}, device {device}, {os.cpu_count()} CPUs ({cpu_flags()}), "
        f"load average {load1:.1f}/{load5:.1f}, {args.workers} workers, batch "
        f"{args.batch_size}, {args.epochs} epochs"
    )

    start = time.perf_counter()
    if args.size is None:
        stream = load_dataset(folder, in_memory=False)
    else:
        stream = load_dataset(
            folder, image_size=args.size, resize="shorter-side+center-crop", in_memory=False
        )
    indexed = time.perf_counter() - start
    mean, std = stream.mean, stream.std
    print(
        f"load_dataset(in_memory=False): {len(stream)} files indexed in {indexed:.2f} s, "
        f"stats from a sample in {time.perf_counter() - start - indexed:.2f} s; "
        f"mean {[round(m, 4) for m in mean]}, std {[round(s, 4) for s in std]}"
    )
    side = stream.image_size[0]
    crop: list[object] = (
        [T.RandomCrop(side, padding=4)]
        if args.size is None
        else [T.RandomResizedCrop(side, scale=PHOTO_SCALE, ratio=PHOTO_RATIO)]
    )
    baseline = DataLoader(
        ImageFolder(
            str(folder),
            transform=T.Compose(
                [*crop, T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
            ),
            loader=gray_loader if args.size is None else rgb_loader,
        ),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=args.workers,
        pin_memory=device.type == "cuda",
    )
    ours = StreamLoader(
        stream, batch_size=args.batch_size, augment="standard" if args.size is None else "photo",
        device=device, num_workers=args.workers,
    )  # fmt: skip
    pil_rate = images_per_second(baseline, args.epochs, device)
    ours_rate = images_per_second(ours, args.epochs, device)
    print(f"ImageFolder + PIL transforms: {pil_rate:9,.0f} img/s")
    print(f"StreamLoader (batched aug.):  {ours_rate:9,.0f} img/s")
    print(f"ratio: {ours_rate / pil_rate:.2f}x")


if __name__ == "__main__":
    main()
