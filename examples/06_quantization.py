"""Bonus challenge 5: shrink a trained CNN to INT8 and measure speed and accuracy.

Trains a ResNet-20 briefly, quantizes it with ``visionblocks.quantize_int8``
(post-training static INT8 on its default path: the model is exported to ONNX and
quantized by ONNX Runtime, activation ranges calibrated on training images) and
compares float and INT8 on the test set: accuracy and CPU images/second in the same
run, written to ``results.csv`` in ``--out``. The INT8 model is saved there as
``resnet20.int8.onnx`` (a file ONNX Runtime runs without torch) and loaded back with
``load_int8``. ``benchmarks/int8_paths.py`` is the fuller benchmark (every INT8 path,
batch 1 and 256, three models).

    python examples/06_quantization.py                    # sample data, offline
    python examples/06_quantization.py --epochs 3 --limit 1000 --batch-size 32   # quick
    python examples/06_quantization.py --dataset fashion-mnist --epochs 3

The quick run takes about 15 s on 2 CPU cores: the float model ends well above
chance and INT8 within a point or two of it, several times faster
(``tests/test_examples.py`` checks both; a single epoch on 500 images leaves both at
chance, which shows nothing).
"""

from __future__ import annotations

import csv
import time

import torch
from _common import fit_options, load_data, make_parser, out_dir, pct, print_table

import visionblocks as vb
from visionblocks.quantize import load_int8


def images_per_second(model: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    """CPU inference throughput on the batch ``x`` (best of ``repeats``)."""
    model.eval()
    best = float("inf")
    with torch.no_grad():
        model(x[:8])  # warm-up: kernel selection and weight packing
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - start)
    return len(x) / best


def main() -> None:
    parser = make_parser(__doc__ or "", epochs=5)
    args = parser.parse_args()
    train, test = load_data(args)
    model = vb.resnet20(num_classes=train.num_classes, in_channels=train.image_shape[0])
    vb.fit(model, train, **fit_options(args))
    model = model.cpu().to(memory_format=torch.contiguous_format).float().eval()

    # Calibration and test inputs normalized exactly as during training.
    stats = (train.mean, train.std)
    calibration = next(
        iter(vb.DeviceLoader(train, batch_size=512, shuffle=False, mean=stats[0], std=stats[1]))
    )[0]
    int8 = vb.quantize_int8(model, calibration)  # method="onnxruntime", the default
    # The deployment file: the INT8 ONNX graph with the model's card (classes, normalization).
    int8 = load_int8(int8.save(out_dir(args) / "resnet20.int8.onnx"))
    x = next(
        iter(vb.DeviceLoader(test, batch_size=512, shuffle=False, mean=stats[0], std=stats[1]))
    )[0]

    results = {}  # name -> (test accuracy, CPU images/s)
    for name, net in (("fp32", model), ("INT8", int8)):
        result = vb.evaluate(net, test, device="cpu", precision="fp32", stats=stats)
        results[name] = (result.accuracy, images_per_second(net, x))
    print_table(
        ["model", "test accuracy", "images/s (CPU)"],
        [[name, pct(acc), f"{speed:,.0f}"] for name, (acc, speed) in results.items()],
    )
    print(f"INT8 is {results['INT8'][1] / results['fp32'][1]:.2f}x the fp32 speed")
    path = out_dir(args) / "results.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["model", "test_accuracy", "images_per_second"])
        writer.writerows([name, acc, speed] for name, (acc, speed) in results.items())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
