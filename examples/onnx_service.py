"""Classify images with an exported ONNX model, using onnxruntime, numpy and Pillow only.

No visionblocks and no torch: everything this needs is in the two files
``visionblocks export`` writes, ``model.onnx`` and its JSON card ``model.onnx.json``
(the class names, the graph's input and output names, and the preprocessing
``visionblocks predict`` applies: Pillow mode, resize rule and size, mean and std).
Copy this file into a service and it labels images as ``visionblocks predict`` does:
the same classes, and probabilities equal to within a few 1e-3 (Pillow's bilinear resize
and torchvision's, which predict uses, differ by at most 1 of 255 in a few pixels).
``examples/10_serve_onnx.py`` shows it end to end, and ``tests/test_bundle.py`` runs it
in a Python where ``import visionblocks`` and ``import torch`` fail.

Usage::

    python examples/onnx_service.py runs/model.onnx photo.png more_photos/ [--json]

Not covered: 16-bit grayscale files (predict keeps their high byte; Pillow's ``"L"``
clips them) and models with other than 1 or 3 input channels.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


class OnnxClassifier:
    """``model.onnx`` and its card ``model.onnx.json``, ready to classify image files."""

    def __init__(self, model_path: str | Path) -> None:
        model_path = Path(model_path)
        self.card: dict[str, Any] = json.loads(Path(f"{model_path}.json").read_text())
        self.session = onnxruntime.InferenceSession(
            str(model_path), providers=["CPUExecutionProvider"]
        )
        self.input_name = self.card["input"]["name"]
        self.output_name = self.card["output"]["name"]
        self.labels: list[str] = self.card["labels"]

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """One image as the model's float32 input ``(C, H, W)``, as ``predict`` prepares it."""
        steps = self.card["preprocessing"]
        image = ImageOps.exif_transpose(image)  # the picture a viewer shows
        gray = image.mode in ("1", "L", "LA", "La")
        if image.mode in ("P", "PA"):
            image = image.convert("RGBA")  # a palette's colours, with its transparency
        # Decoded as grayscale or RGB first, then converted: what predict does, pixel for pixel.
        image = image.convert("L" if gray else "RGB").convert(steps["mode"])
        image = resize(image, steps["size"], steps["resize"])
        pixels = np.asarray(image, dtype=np.float32) / 255  # (H, W) or (H, W, 3)
        pixels = pixels.reshape(image.height, image.width, -1).transpose(2, 0, 1)  # (C, H, W)
        mean = np.asarray(steps["mean"], dtype=np.float32).reshape(-1, 1, 1)
        std = np.asarray(steps["std"], dtype=np.float32).reshape(-1, 1, 1)
        return (pixels - mean) / std

    def predict(self, files: Sequence[str | Path]) -> list[dict[str, Any]]:
        """``{"file", "index", "label", "probability", "probabilities", "indices", "labels"}``.

        One dict per file. ``index``, ``label`` and ``probability`` are the most probable
        class; ``indices`` and ``labels`` the predicted ones: that class, or for a
        multi-label model (``output.activation`` ``"sigmoid"``) every label at or above its
        threshold, most probable first.
        """
        batch = []
        for file in files:
            with Image.open(file) as image:
                batch.append(self.preprocess(image))
        (logits,) = self.session.run([self.output_name], {self.input_name: np.stack(batch)})
        logits = logits.astype(np.float64)  # (N, num_classes)
        output = self.card["output"]
        if output["activation"] == "sigmoid":  # multi-label: each label on its own
            probabilities = 1 / (1 + np.exp(-logits))
        else:
            exp = np.exp(logits - logits.max(axis=1, keepdims=True))
            probabilities = exp / exp.sum(axis=1, keepdims=True)
        results = []
        for file, row in zip(files, probabilities, strict=True):
            index = int(row.argmax())
            if output["activation"] == "sigmoid":
                above = np.flatnonzero(row >= np.asarray(output["thresholds"]))
                chosen = above[np.argsort(-row[above], kind="stable")].tolist()
            else:
                chosen = [index]
            results.append({
                "file": str(file), "index": index, "label": self.labels[index],
                "probability": float(row[index]), "probabilities": row.tolist(),
                "indices": chosen, "labels": [self.labels[k] for k in chosen],
            })  # fmt: skip
        return results


def resize(image: Image.Image, size: Sequence[int], rule: str) -> Image.Image:
    """``image`` brought to ``size`` ``[H, W]`` by the card's ``rule``, with Pillow's bilinear."""
    height, width = size
    if image.size == (width, height):
        return image
    if rule == "squash":  # both sides to the target; the aspect ratio is not kept
        return image.resize((width, height), Image.Resampling.BILINEAR)
    if rule != "shorter-side+center-crop":
        raise ValueError(f"unknown resize rule {rule!r} in the model's card.")
    # Scale until both sides cover the target (torchvision's Resize(int) for a square
    # target: sides truncated to ints), then cut the centre (CenterCrop: offsets rounded).
    if height / image.height >= width / image.width:
        scaled = (height, max(width, int(height * image.width / image.height)))
    else:
        scaled = (max(height, int(width * image.height / image.width)), width)
    image = image.resize((scaled[1], scaled[0]), Image.Resampling.BILINEAR)
    top, left = round((scaled[0] - height) / 2), round((scaled[1] - width) / 2)
    return image.crop((left, top, left + width, top + height))


def image_files(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given; folders as their image files, recursively, in sorted order."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(f for f in item.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(item)
    return files


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("model", help="the .onnx file written by `visionblocks export`")
    parser.add_argument("inputs", nargs="+", help="image files or folders of them")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = OnnxClassifier(args.model).predict(image_files(args.inputs))
    if args.json:
        json.dump(results, sys.stdout, indent=1)
        print()
        return
    width = max(len(r["file"]) for r in results)
    for r in results:  # "cat 90.0%"; a multi-label model's every label at its threshold
        shown = ", ".join(f"{r['labels'][j]} {r['probabilities'][k]:.1%}"
                          for j, k in enumerate(r["indices"]))  # fmt: skip
        shown = shown or f"no label (most probable {r['label']} {r['probability']:.1%})"
        print(f"{r['file']:<{width}}  {shown}")


if __name__ == "__main__":
    main()
