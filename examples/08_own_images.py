"""Your own images, end to end: a folder of PNGs -> fine-tune -> evaluate -> predict -> ONNX.

The path a project with its own photos takes, offline, on real images:

1. Write an image folder ``OUT/images/<class>/<i>.png`` (no ``train/``/``val/``
   subfolders) from real Fashion-MNIST test images of five classes: Sandal, Shirt,
   Sneaker, Bag (deliberately half as many: an imbalanced folder) and Ankle boot.
   Every third image is saved upscaled to 36x36, as folders collected from several
   sources are, so the folder only loads with ``image_size=32``.
2. Pretrain a ResNet-20 backbone on *training* images of all ten Fashion-MNIST
   classes (the folder holds test images, which it never sees) and save it with
   ``save_checkpoint``. This is the stand-in for downloaded pretrained weights, since
   nothing can be downloaded here: a network trained on a larger, broader set that
   includes things like yours, as ImageNet's thousand classes include sandals, running
   shoes and bags. With internet, ``pretrained("resnet18", 5, weights="DEFAULT",
   in_channels=1)`` (torchvision's ImageNet weights) is the usual start.
3. Load the folder with ``val_fraction=0.2, image_size=32`` (a stratified, seeded,
   disjoint train/val split), fine-tune from the checkpoint (the new head alone for one
   epoch, then everything at half that learning rate, the backbone at half the
   head's, BatchNorm statistics updated since the source images are of the same kind;
   these settings were chosen on this validation split), with
   ``class_weight="balanced"`` for the imbalance, and evaluate on the validation split:
   per-class precision, recall, F1 and macro F1.
4. The control experiment: the same network trained from random weights for the same
   epochs, with the same settings.
5. Save ``model.pt`` as ``visionblocks train`` does (builder, classes, statistics, image
   shape), check the validation accuracy again from the files streamed
   (``in_memory=False``), predict on a few PNG files with ``predict(path, files,
   top_k=2)`` and export to ONNX, checked against PyTorch with onnxruntime.

Uses the full Fashion-MNIST when it is installed (``apt-get install
dataset-fashion-mnist``), else the sample shipped with the package.

Usage::

    python examples/08_own_images.py                        # about 45 s on 2 CPU cores
    python examples/08_own_images.py --per-class 40 --epochs 3 --pretrain-epochs 2  # quick

The quick run (about 25 s) fine-tunes on 180 images for 3 epochs: the pretrained start
ends far ahead of the same network from scratch (with seeds 0, 1 and 2 alike;
``tests/test_examples.py`` checks it), the point of starting from pretrained weights
when there are few images and little time. Both runs' output: ``docs/own_data.rst``.

The same run from the command line: ``docs/own_data.rst``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _common import export_onnx_and_finish, make_parser, out_dir, pct, print_table
from PIL import Image
from torch import nn

import visionblocks as vb
from visionblocks.data import DatasetNotFoundError, StreamingDataset
from visionblocks.transfer import fine_tune, pretrained

TARGET = ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SMALLER = "Bag"  # this class gets half as many images
UPSCALED = 36  # every third image is saved at this size


def source_data(choice: str, root: str | None) -> tuple[str, vb.ImageDataset, vb.ImageDataset]:
    """``(name, train split, test split)`` of Fashion-MNIST, or of the sample if it is missing."""
    names = ["fashion-mnist", "sample"] if choice == "auto" else [choice]
    for name in names:
        try:
            train = vb.load_dataset(name, "train", root=root)
            return name, train, vb.load_dataset(name, "test", root=root)
        except DatasetNotFoundError:
            if name == names[-1]:
                raise
            print(f"{name} is not installed here: using the package's sample instead")
    raise AssertionError("unreachable")


def pick(data: vb.ImageDataset, class_name: str, count: int) -> torch.Tensor:
    """The first ``count`` images of one class, ``(count, 1, 28, 28)`` uint8."""
    label = data.classes.index(class_name)
    return data.images[data.labels == label][:count]


def write_folder(folder: Path, data: vb.ImageDataset, per_class: int) -> dict[str, int]:
    """One subfolder of PNGs per class; every third image upscaled. Returns the counts."""
    counts = {}
    for name in TARGET:
        images = pick(data, name, per_class // 2 if name == SMALLER else per_class)
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            png = Image.fromarray(image[0].numpy(), mode="L")
            if i % 3 == 2:
                png = png.resize((UPSCALED, UPSCALED), Image.Resampling.BICUBIC)
            png.save(folder / name / f"{i:04d}.png")
        counts[name] = len(images)
    return counts


def resized(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized as the folder reader resizes (bilinear, antialiased)."""
    x = nn.functional.interpolate(
        images.float(), size=(size, size), mode="bilinear", antialias=True
    )
    return x.round().clamp(0, 255).to(torch.uint8)


def pretrain(data: vb.ImageDataset, args: argparse.Namespace, path: Path) -> Path:
    """Train ResNet-20 on every class of ``data`` and save it: the "pretrained weights"."""
    per_class = max(1, args.pretrain_images // data.num_classes)
    parts = [pick(data, name, per_class) for name in data.classes]
    labels = torch.cat([torch.full((len(x),), k) for k, x in enumerate(parts)])
    images = resized(torch.cat(parts), args.image_size)
    source = vb.ImageDataset(images, labels, list(data.classes), "source")
    model = vb.resnet20(num_classes=data.num_classes, in_channels=1)
    started = time.perf_counter()
    vb.fit(
        model, source, epochs=args.pretrain_epochs, batch_size=args.batch_size, seed=args.seed,
        device=args.device, precision=args.precision, progress=False,
    )  # fmt: skip
    print(
        f"pretrained resnet20 on {len(source):,} training images of all "
        f"{data.num_classes} classes "
        f"({args.pretrain_epochs} epochs, {time.perf_counter() - started:.0f} s)"
    )
    return vb.save_checkpoint(
        path, model, model_name="resnet20",
        model_kwargs={"num_classes": data.num_classes, "in_channels": 1},
    )  # fmt: skip


def one_per_class(data: StreamingDataset) -> list[Path]:
    """A file of each class, an upscaled one for every other class."""
    files = []
    for k in range(data.num_classes):
        mine = [f for f, y in zip(data.files, data.labels.tolist(), strict=True) if y == k]
        sizes = [Image.open(f).size[0] for f in mine]
        wanted = UPSCALED if k % 2 == 0 else 28
        files.append(next((f for f, s in zip(mine, sizes, strict=True) if s == wanted), mine[0]))
    return files


def main() -> None:
    parser = make_parser(__doc__ or "", epochs=6)
    parser.set_defaults(dataset="auto", batch_size=32)
    parser.add_argument(
        "--per-class", type=int, default=100, help="images per class in the folder "
        f"({SMALLER}: half as many; default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--pretrain-images", type=int, default=3000, help="images of the source classes "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--pretrain-epochs", type=int, default=4, help="default: %(default)s")
    parser.add_argument("--image-size", type=int, default=32, help="default: %(default)s")
    parser.add_argument(
        "--lr", type=float, default=0.1, help="peak learning rate (default: %(default)s)"
    )
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: one epoch for the new head, then the whole network")
    if args.limit is not None:  # --limit N: at most N images in the folder and in pretraining
        args.per_class = min(args.per_class, max(6, args.limit // len(TARGET)))
        args.pretrain_images = min(args.pretrain_images, args.limit)
    torch.set_num_threads(1)  # a shared machine; remove on your own
    out = out_dir(args)
    fit_kw = {
        "batch_size": args.batch_size, "seed": args.seed, "device": args.device,
        "precision": args.precision, "progress": "lines" if args.no_progress else True,
        "class_weight": "balanced", "lr": args.lr,
    }  # fmt: skip
    run_started = time.perf_counter()

    # 1. A folder of real images, of two sizes, no split subfolders.
    name, source_train, source_test = source_data(args.dataset, args.root)
    folder = out / "images"
    counts = write_folder(folder, source_test, args.per_class)
    print(
        f"wrote {sum(counts.values())} PNGs of {name} to {folder}/<class>/: "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f"; every third one {UPSCALED}x{UPSCALED}, the others 28x28"
    )
    for attempt in ({"split": "train"}, {"split": "test"}):
        try:
            vb.load_dataset(folder, **attempt)
        except (ValueError, DatasetNotFoundError) as err:
            print(f"  load_dataset(folder, split={attempt['split']!r}) -> {err}")

    # 2. The stand-in for downloaded weights.
    checkpoint = pretrain(source_train, args, out / "backbone.pt")

    # 3. The folder, split honestly, and fine-tuning.
    split = {"val_fraction": 0.2, "image_size": args.image_size, "seed": args.seed}
    train = vb.load_dataset(folder, "train", in_memory=True, **split)
    val = vb.load_dataset(folder, "val", in_memory=True, **split)
    print(f"train: {train}\nval:   {val}")
    frozen, unfrozen = 1, args.epochs - 1
    print(f"\n== fine-tuned from {checkpoint.name}: {frozen} epoch head only, {unfrozen} all ==")
    model = pretrained("resnet20", train.num_classes, weights=checkpoint, in_channels=1)
    started = time.perf_counter()
    fine_tune(
        model, train, val, frozen_epochs=frozen, epochs=unfrozen, train_bn=True,
        unfrozen_lr_mult=0.5, backbone_lr_mult=0.5, **fit_kw,
    )  # fmt: skip
    tuned_seconds = time.perf_counter() - started
    tuned = vb.evaluate(model, val, device=args.device)
    print(tuned)

    # 4. The control: the same network from random weights, same epochs and settings.
    print(f"\n== from scratch: {args.epochs} epochs ==")
    scratch_model = pretrained("resnet20", train.num_classes, weights=None, in_channels=1)
    started = time.perf_counter()
    vb.fit(scratch_model, train, val, epochs=args.epochs, **fit_kw)
    scratch_seconds = time.perf_counter() - started
    scratch = vb.evaluate(scratch_model, val, device=args.device)
    print(f"\n{len(train)} training images, {len(val)} validation images, {args.epochs} epochs:")
    print_table(
        ["start", "val accuracy", "macro F1", "seconds"],
        [
            ["pretrained", pct(tuned.accuracy), tuned.macro_f1, f"{tuned_seconds:.0f}"],
            ["scratch", pct(scratch.accuracy), scratch.macro_f1, f"{scratch_seconds:.0f}"],
        ],
    )

    # 5. A model file that knows how to be used, then predict and export.
    model_path = vb.save_checkpoint(
        out / "model.pt", model, model_name="resnet20",
        model_kwargs={"num_classes": train.num_classes, "in_channels": 1},
        extra={
            "stats": [list(train.mean), list(train.std)], "classes": list(train.classes),
            "image_shape": list(train.image_shape), "dataset": str(folder),
            "eval_split": "val", "val_accuracy": tuned.accuracy,
        },
    )  # fmt: skip
    streamed = vb.load_dataset(folder, "val", in_memory=False, **split)
    again = vb.evaluate(vb.load_model(model_path), streamed, device=args.device)
    print(f"\nload_model({model_path.name}) on the val files, streamed: {pct(again.accuracy)}")
    files = one_per_class(streamed)
    rows = []
    for p in vb.predict(model_path, files, top_k=2):
        second = f"{p.top_labels[1]} {p.top_probabilities[1]:.1%}"
        with Image.open(p.source) as image:
            size = "x".join(map(str, image.size))
        source = str(Path(p.source).relative_to(folder))
        rows.append([source, size, f"{p.label} {p.probability:.1%}", second])
    print_table(["file", "size", "prediction", "runner-up"], rows)
    export_onnx_and_finish(model_path, out, run_started)


if __name__ == "__main__":
    main()
