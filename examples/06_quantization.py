"""Bonus challenge 5: shrink a trained CNN to INT8 and measure speed and accuracy.

Trains a ResNet-20 briefly, quantizes it with ``visionblocks.quantize_int8``
(post-training static INT8: fuse Conv+BN+ReLU, calibrate on training images,
convert) and compares float and INT8 on the test set: accuracy and CPU
images/second in the same run. ``benchmarks/bench_quantize.py`` is the fuller
benchmark (fp32, bf16 and INT8, several backends).

    python examples/06_quantization.py                    # sample data, offline
    python examples/06_quantization.py --dataset fashion-mnist --epochs 3
"""

from __future__ import annotations

import time

import torch
from _common import fit_options, load_data, make_parser, pct, print_table

import visionblocks as vb


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
    int8 = vb.quantize_int8(model, calibration)
    x = next(
        iter(vb.DeviceLoader(test, batch_size=512, shuffle=False, mean=stats[0], std=stats[1]))
    )[0]

    rows = []
    for name, net in (("fp32", model), ("INT8", int8)):
        result = vb.evaluate(net, test, device="cpu", precision="fp32", stats=stats)
        rows.append([name, pct(result.accuracy), f"{images_per_second(net, x):,.0f}"])
    print_table(["model", "test accuracy", "images/s (CPU)"], rows)
    fp32_speed = float(rows[0][2].replace(",", ""))
    int8_speed = float(rows[1][2].replace(",", ""))
    print(f"INT8 is {int8_speed / fp32_speed:.2f}x the fp32 speed")


if __name__ == "__main__":
    main()
