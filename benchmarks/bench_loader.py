"""Images per second: DeviceLoader versus the lab's per-sample PIL pipeline in a DataLoader.

Both sides apply the same augmentation to the same images in the same run and
yield the same thing, normalized float32 ``(B, C, H, W)`` batches with labels:

* baseline (the lab's way): a Dataset that turns each uint8 HWC array into a PIL
  image (as ``torchvision.datasets.CIFAR10`` does), then ``RandomCrop(S, padding=4)``,
  ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)`` in a
  ``DataLoader(shuffle=True, num_workers=2)``; with ``--preset lab`` also
  ``ColorJitter(0.2, 0.2, 0.2)`` and ``RandomRotation(15)``;
* :class:`visionblocks.data.DeviceLoader` with the matching preset, on ``--device``.

Each side runs ``--epochs`` full epochs, timed end to end (the DataLoader's
worker start-up each epoch is part of the lab's way; ``--persistent-workers``
leaves it out). Data: Fashion-MNIST
(1x28x28; the full training set from the Debian package if installed, else the
packaged sample) and CIFAR-shaped 3x32x32 uint8 images (random pixels: CIFAR
cannot be downloaded here, and these augmentations cost the same whatever the
pixels are).

Usage::

    .venv/bin/python benchmarks/bench_loader.py [--images 20000] [--epochs 2] [--preset standard]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable

import numpy as np
import torch
import torchvision.transforms as T
from _lab_baseline import PilDataset  # the same per-image PIL pipeline as the other benchmarks
from torch.utils.data import DataLoader

from visionblocks.data import DeviceLoader, ImageDataset, load_dataset
from visionblocks.data._errors import DatasetNotFoundError


def lab_transform(ds: ImageDataset, preset: str) -> T.Compose:
    steps: list[object] = [T.RandomCrop(ds.images.shape[-1], padding=4), T.RandomHorizontalFlip()]
    if preset == "lab":
        steps += [T.ColorJitter(0.2, 0.2, 0.2), T.RandomRotation(15)]
    return T.Compose([*steps, T.ToTensor(), T.Normalize(ds.mean, ds.std)])


def images_per_second(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], epochs: int, device: torch.device
) -> float:
    seen = 0
    start = time.perf_counter()
    for _ in range(epochs):
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            seen += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def datasets(n: int) -> dict[str, ImageDataset]:
    try:
        fashion = load_dataset("fashion-mnist")
    except DatasetNotFoundError:
        fashion = load_dataset("sample")
    fashion.images, fashion.labels = fashion.images[:n], fashion.labels[:n]
    rng = np.random.default_rng(0)
    cifar_like = ImageDataset(
        torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)),
        torch.from_numpy(rng.integers(0, 10, n)),
        [str(c) for c in range(10)],
        "random 3x32x32",
    )
    return {f"{fashion.name} 1x28x28": fashion, "CIFAR-shaped 3x32x32": cifar_like}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="images per dataset")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (baseline)")
    parser.add_argument("--preset", choices=["standard", "lab"], default="standard")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--persistent-workers",
        action="store_true",
        help="keep the baseline's workers alive between epochs (not the lab's way)",
    )
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}, "
        f"preset {args.preset!r}, batch {args.batch_size}, {args.epochs} epochs"
    )
    for label, ds in datasets(args.images).items():
        baseline = DataLoader(
            PilDataset(ds, lab_transform(ds, args.preset)),
            batch_size=args.batch_size,
            shuffle=True,
            num_workers=args.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=args.persistent_workers and args.workers > 0,
        )
        ours = DeviceLoader(ds, batch_size=args.batch_size, augment=args.preset, device=device)
        next(iter(ours))  # first-touch costs (CUDA context, allocator) are not per-epoch costs
        pil_rate = images_per_second(baseline, args.epochs, device)
        ours_rate = images_per_second(ours, args.epochs, device)
        print(
            f"{label:>34}: PIL DataLoader ({args.workers} workers) {pil_rate:9,.0f} img/s | "
            f"DeviceLoader {ours_rate:9,.0f} img/s | ratio {ours_rate / pil_rate:5.1f}x"
        )


if __name__ == "__main__":
    main()
