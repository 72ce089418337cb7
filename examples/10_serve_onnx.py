"""Serve a trained model without visionblocks: ONNX + its JSON card -> onnxruntime, numpy, Pillow.

What a service needs from a trained model is two files: the network and how to feed
it. ``export`` writes both, ``model.onnx`` and ``model.onnx.json`` (the model card:
class names, the ONNX graph's input and output names, and the preprocessing that
``predict`` applies). ``examples/onnx_service.py`` classifies image files from those two
files with onnxruntime, numpy and Pillow alone; this script shows that it agrees with
``visionblocks predict``:

1. Train ResNet-20 on the Fashion-MNIST sample built into the package (28x28
   grayscale, offline) and save ``OUT/model.pt``: its card holds the class names, the
   training statistics and the input shape.
2. Write image files as a service receives them, from test images the model never saw:
   ``OUT/images/gray/*.png`` as they are, ``OUT/images/color/*.png`` tinted RGB at
   twice the size (converted to grayscale and resized by both sides) and
   ``OUT/images/wide/*.jpg`` stretched to 42x28 JPEGs (squashed back to 28x28).
3. ``export`` ``model.pt`` to ``OUT/model.onnx``; the card goes beside it.
4. The service: ``OnnxClassifier("OUT/model.onnx").predict(files)``, nothing imported
   from visionblocks or torch (``tests/test_bundle.py`` runs it where both imports fail).
5. ``visionblocks predict OUT/model.pt OUT/images --csv OUT/predict.csv`` on the same
   files; every file must get the same class from both, and the probabilities must agree
   to within ``5e-3`` (the script fails otherwise).

Usage::

    python examples/10_serve_onnx.py                     # about a minute on 2 CPU cores
    python examples/10_serve_onnx.py --epochs 1 --limit 200   # quick

    python examples/onnx_service.py OUT/model.onnx OUT/images   # the service on its own

Needs ``pip install 'visionblocks[export]'`` (onnx, onnxscript, onnxruntime). Explained in
``docs/deployment.rst``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from _common import load_data, make_parser, out_dir, print_table
from onnx_service import OnnxClassifier
from PIL import Image

import visionblocks as vb
from visionblocks.cli import main as visionblocks_cli

PER_CLASS = 2  # test images per class in each of the three forms
TOLERANCE = 5e-3  # largest difference of a probability allowed between service and predict
SHOWN_EVERY = 5  # files shown in the comparison table: one in this many
TINT = (1.0, 0.8, 0.55)  # R, G, B factors of the color files: gray becomes a warm brown


def write_images(folder: Path, test: vb.ImageDataset) -> list[Path]:
    """``PER_CLASS`` test images of each class in three forms; returns the files."""
    files = []
    for form in ("gray", "color", "wide"):
        (folder / form).mkdir(parents=True, exist_ok=True)
    for label, name in enumerate(test.classes):
        images = test.images[test.labels == label][:PER_CLASS, 0].numpy()  # (N, 28, 28) uint8
        for i, pixels in enumerate(images):
            stem = f"{name.replace('/', '-').replace(' ', '_')}_{i}"
            gray = Image.fromarray(pixels, mode="L")
            gray.save(folder / "gray" / f"{stem}.png")
            tinted = (pixels[..., None] * np.array(TINT)).round().astype(np.uint8)
            color = Image.fromarray(tinted, mode="RGB").resize((56, 56), Image.Resampling.BICUBIC)
            color.save(folder / "color" / f"{stem}.png")
            wide = gray.resize((42, 28), Image.Resampling.BICUBIC)
            wide.save(folder / "wide" / f"{stem}.jpg", quality=95)
            files += [folder / form / f"{stem}{suffix}" for form, suffix in
                      (("gray", ".png"), ("color", ".png"), ("wide", ".jpg"))]  # fmt: skip
    return sorted(files)


def read_predict_csv(path: Path, classes: list[str]) -> dict[str, tuple[str, list[float]]]:
    """``{file: (class, probabilities)}`` from the CSV ``visionblocks predict --csv`` writes."""
    with path.open(newline="") as f:
        return {
            row["image"]: (row["class"], [float(row[c]) for c in classes])
            for row in csv.DictReader(f)
        }


def main() -> None:
    parser = make_parser(__doc__ or "", epochs=2)
    parser.set_defaults(batch_size=64)
    args = parser.parse_args()
    torch.set_num_threads(2)  # a shared machine; remove on your own
    out = out_dir(args)
    started = time.perf_counter()

    # 1. A trained model, saved with its card.
    train, test = load_data(args)
    model = vb.resnet20(num_classes=train.num_classes, in_channels=1)
    vb.fit(
        model, train, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        device=args.device, precision=args.precision, progress=not args.no_progress,
    )  # fmt: skip
    model_path = vb.save_checkpoint(out / "model.pt", model)
    print(f"saved {model_path}")

    # 2. Files as a service receives them.
    files = write_images(out / "images", test)
    print(f"wrote {len(files)} image files to {out / 'images'}: gray/, color/, wide/")

    # 3. The ONNX file and its card.
    exported = vb.export(model_path, out / "model.onnx")
    print(exported)
    card = json.loads(exported.card_path.read_text()) if exported.card_path else {}
    shown = {k: card[k] for k in ("input", "output", "preprocessing")}
    shown["preprocessing"] = {k: v for k, v in shown["preprocessing"].items() if k != "steps"}
    print(f"{exported.card_path}, what a service reads:")
    for key, value in shown.items():
        print(f"  {key}: {json.dumps(value)}")
    print(f"  labels: {card['labels']}")

    # 4. The service: onnxruntime, numpy and Pillow only.
    served = OnnxClassifier(exported.path).predict(files)

    # 5. The same files through `visionblocks predict`.
    command = ["predict", str(model_path), str(out / "images"), "--csv", str(out / "predict.csv")]
    print(f"\n$ visionblocks {' '.join(command)}")
    with contextlib.redirect_stdout(io.StringIO()) as table:  # a row per file: shown below
        code = visionblocks_cli(command)
    if code != 0:
        raise SystemExit(f"visionblocks predict failed with status {code}")
    print(table.getvalue().splitlines()[-1])
    predicted = read_predict_csv(out / "predict.csv", card["labels"])
    rows, worst, disagree = [], 0.0, []
    for k, result in enumerate(served):
        label, probabilities = predicted[result["file"]]
        difference = float(np.abs(np.array(result["probabilities"]) - probabilities).max())
        worst = max(worst, difference)
        if label != result["label"]:
            disagree.append(result["file"])
        if k % SHOWN_EVERY:
            continue
        rows.append([
            str(Path(result["file"]).relative_to(out / "images")),
            f"{result['label']} {result['probability']:.1%}",
            f"{label} {probabilities[card['labels'].index(label)]:.1%}", f"{difference:.1e}",
        ])  # fmt: skip
    print(
        f"\nthe service (onnxruntime + numpy + Pillow) and `visionblocks predict`, every "
        f"{SHOWN_EVERY}th file:"
    )
    print_table(["file", "service", "predict", "largest difference"], rows)
    print(
        f"\n{len(served) - len(disagree)} of {len(served)} files get the same class; the "
        f"probabilities differ by at most {worst:.1e} (allowed: {TOLERANCE:g})"
    )
    if disagree or worst > TOLERANCE:
        raise SystemExit(f"the service disagrees with visionblocks predict: {disagree or worst}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s; outputs in {out}")


if __name__ == "__main__":
    main()
