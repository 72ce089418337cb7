"""Compare parameters, FLOPs, CPU speed and accuracy of every CNN family on Fashion-MNIST.

The lab's "compare parameters, accuracy, speed" as one table: each model gets the
same short training budget (``--fraction`` of the real Fashion-MNIST training
set for ``--epochs`` epochs, AdamW, one-cycle, no augmentation), then it is
measured on the first ``--test-images`` test images in fp32 and after INT8
post-training quantization (:func:`visionblocks.quantize.quantize_int8`).

* FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` for one 1x28x28 image
  (multiply and add counted separately: FLOPs = 2 x MACs).
* img/s: fp32 inference at batch 256, median of 5 rounds, all threads, wall clock.
* img/cpu-s: the same with one thread, in CPU seconds (robust on a shared machine).

Run (about 15 minutes on 2 shared cores)::

    .venv/bin/python examples/compare_architectures.py

The measured table is in docs/architectures.rst.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from visionblocks.data import load_dataset, subset
from visionblocks.models import (
    densenet_cifar,
    mobilenetv2_cifar,
    resnet_cifar,
    simple_cnn,
    vgg_cifar,
)
from visionblocks.quantize import quantize_int8
from visionblocks.train import fit

BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "simple_cnn": lambda: simple_cnn(in_channels=1, image_size=28),
    "resnet20": lambda: resnet_cifar(in_channels=1, depth=20),
    "vgg11_cifar": lambda: vgg_cifar(in_channels=1, depth=11),
    "densenet_cifar(40)": lambda: densenet_cifar(in_channels=1, depth=40),
    "mobilenetv2_cifar": lambda: mobilenetv2_cifar(in_channels=1),
}


def flops(model: nn.Module) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    return int(counter.get_total_flops())


def images_per_second(model: nn.Module, x: torch.Tensor, clock: Callable[[], float]) -> float:
    rates = []
    with torch.inference_mode():
        model(x)
        for _ in range(5):
            start = clock()
            model(x)
            rates.append(len(x) / (clock() - start))
    return statistics.median(rates)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        predictions = torch.cat([model(xb).argmax(1) for xb in x.split(500)])
    return float((predictions == y).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--models", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    args = parser.parse_args()

    train = load_dataset("fashion-mnist")
    test = load_dataset("fashion-mnist", split="test")
    train_part = subset(train, args.fraction, seed=0)
    mean = torch.tensor(train.mean).view(1, -1, 1, 1)
    std = torch.tensor(train.std).view(1, -1, 1, 1)
    x_test = (test.images[: args.test_images].float() / 255 - mean) / std
    y_test = test.labels[: args.test_images]
    calibration = (train.images[:512].float() / 255 - mean) / std
    threads = torch.get_num_threads()
    print(
        f"Fashion-MNIST: train on {len(train_part)} images x {args.epochs} epochs, "
        f"test on {len(y_test)}; {threads} threads"
    )

    rows = []
    for name in args.models:
        torch.manual_seed(0)
        model = BUILDERS[name]()
        params = sum(p.numel() for p in model.parameters())
        start = time.perf_counter()
        fit(
            model, train_part, epochs=args.epochs, optimizer="adamw", augment=None, seed=0,
            progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        model = model.cpu().eval()
        fp32_acc = accuracy(model, x_test, y_test)
        int8_acc = accuracy(quantize_int8(model, calibration), x_test, y_test)
        batch = x_test[:256].contiguous()
        wall = images_per_second(model, batch, time.perf_counter)
        torch.set_num_threads(1)
        cpu = images_per_second(model, batch, time.process_time)
        torch.set_num_threads(threads)
        rows.append((name, params, flops(model), seconds, fp32_acc, int8_acc, wall, cpu))
        print(f"  {name}: trained in {seconds:.0f} s, test acc {fp32_acc:.4f}", flush=True)

    header = (
        f"{'model':20s} {'params':>10s} {'MFLOPs':>7s} {'train s':>8s} {'acc fp32':>9s} "
        f"{'acc int8':>9s} {'img/s':>7s} {'img/cpu-s':>9s}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for name, params, n_flops, seconds, fp32_acc, int8_acc, wall, cpu in rows:
        print(
            f"{name:20s} {params:10,d} {n_flops / 1e6:7.1f} {seconds:8.0f} {fp32_acc:9.4f} "
            f"{int8_acc:9.4f} {wall:7.0f} {cpu:9.0f}"
        )


if __name__ == "__main__":
    main()
