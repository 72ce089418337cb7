"""FP32, bf16 and the FX path's INT8 backends (oneDNN, fbgemm) on ResNet-20 and the simple CNN.

The kernel-library study behind ``quantize_int8(method="fx", backend=...)``; the
comparison of the INT8 paths (ONNX Runtime, PT2E, FX) is ``benchmarks/int8_paths.py``.
Each model is trained briefly with :func:`visionblocks.fit` on real Fashion-MNIST
(or loaded from ``--checkpoint-dir`` if a previous run saved it there), quantized
with ``quantize_int8(method="fx")`` on 512 training images (torch warns that this path
is deprecated), and then measured in the same process on the full 10,000-image test set:

* accuracy of the float model and of the INT8 model (and bf16 autocast);
* images/second at batch 256 for every variant. The variants are timed in
  interleaved rounds and the median round is reported, so load from other
  processes hits all of them alike.

Run (about 5 minutes on 2 shared cores, most of it training)::

    .venv/bin/python benchmarks/bench_quantize.py --checkpoint-dir /tmp/vb-ckpt

"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

from visionblocks.data import ImageDataset, load_dataset, subset
from visionblocks.models import Classifier, resnet_cifar, simple_cnn
from visionblocks.quantize import quantize_int8
from visionblocks.train import cpu_supports_bf16, fit

Predict = Callable[[torch.Tensor], torch.Tensor]


def normalize(data: ImageDataset, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (data.images.float() / 255 - m) / s  # (N, C, H, W) float32


def accuracy(predict: Predict, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    correct = 0
    with torch.inference_mode():
        for xb, yb in zip(x.split(batch), y.split(batch), strict=True):
            correct += int((predict(xb).argmax(1) == yb).sum())
    return correct / len(y)


def throughput(
    variants: dict[str, Predict],
    x: torch.Tensor,
    rounds: int,
    batches: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median images per ``clock`` second per variant over interleaved timing rounds."""
    per_round: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        for predict in variants.values():  # warm-up: first-call allocations, oneDNN primitives
            predict(x)
            predict(x)
        for _ in range(rounds):
            for name, predict in variants.items():
                start = clock()
                for _ in range(batches):
                    predict(x)
                per_round[name].append(batches * len(x) / (clock() - start))
    return {name: statistics.median(v) for name, v in per_round.items()}


def train_or_load(
    name: str, model: Classifier, train: ImageDataset, args: argparse.Namespace
) -> Classifier:
    path = Path(args.checkpoint_dir) / f"{name}.pt" if args.checkpoint_dir else None
    if path is not None and path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        print(f"{name}: loaded {path}")
        return model
    start = time.perf_counter()
    history = fit(
        model,
        subset(train, args.train_fraction, seed=0),
        epochs=args.epochs,
        optimizer="adamw",
        augment=None,  # a few epochs only: augmentation would cost more accuracy than it buys
        seed=0,
        progress=False,
    )
    print(
        f"{name}: trained {args.epochs} epochs on {args.train_fraction:.0%} of the training set "
        f"in {time.perf_counter() - start:.0f} s (train acc {history.last['train_acc']:.3f})"
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path)
    return model


def bench_model(
    name: str, model: Classifier, train: ImageDataset, test: ImageDataset, args: argparse.Namespace
) -> None:
    model = train_or_load(name, model, train, args).cpu().eval()
    x_train = normalize(train, train.mean, train.std)
    x_test = normalize(test, train.mean, train.std)
    calibration = x_train[torch.randperm(len(x_train), generator=torch.Generator().manual_seed(0))]
    calibration = calibration[: args.calibration_images]

    start = time.perf_counter()
    int8 = quantize_int8(model, calibration, method="fx", backend="onednn")
    seconds = time.perf_counter() - start
    # fbgemm for comparison: the ``x86`` backend picks oneDNN's kernels on VNNI CPUs, fbgemm's
    # otherwise; these are fbgemm's on this CPU.
    int8_fbgemm = quantize_int8(model, calibration, method="fx", backend="fbgemm")

    bf16 = cpu_supports_bf16()
    # A copy: .to(memory_format=...) converts in place, and the fp32 row must stay NCHW.
    model_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

    def bf16_predict(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            return model_cl(x.contiguous(memory_format=torch.channels_last)).float()

    def fp32_cl(x: torch.Tensor) -> torch.Tensor:
        return model_cl(x.contiguous(memory_format=torch.channels_last))

    def int8_cl(x: torch.Tensor) -> torch.Tensor:
        return int8(x.contiguous(memory_format=torch.channels_last))

    variants: dict[str, Predict] = {
        "fp32": model,
        "fp32 channels_last": fp32_cl,
        "bf16 autocast" if bf16 else "bf16 (not native here)": bf16_predict,
        "int8 onednn": int8,
        "int8 onednn channels_last": int8_cl,
        "int8 fbgemm": int8_fbgemm,
    }
    y = test.labels
    acc = {k: accuracy(v, x_test, y) for k, v in variants.items() if "channels_last" not in k}
    x_batch = x_test[: args.batch_size].contiguous()
    threads = torch.get_num_threads()
    wall = throughput(variants, x_batch, args.rounds, args.batches)
    # One thread timed in CPU seconds: what the kernels cost, whatever else runs on the machine.
    torch.set_num_threads(1)
    cpu = throughput(variants, x_batch, args.rounds, args.batches, clock=time.process_time)
    torch.set_num_threads(threads)

    print(f"\n{name}: quantized in {seconds:.1f} s on {len(calibration)} images")
    print(
        f"{'variant':26s} {'test acc':>8s} {'img/s':>8s} {'ratio':>6s} "
        f"{'img/cpu-s':>9s} {'ratio':>6s}   (batch {len(x_batch)}; img/s: {threads} threads, "
        f"wall clock; img/cpu-s: 1 thread, CPU time)"
    )
    for key in variants:
        acc_text = f"{acc[key]:8.4f}" if key in acc else f"{'':8s}"
        print(
            f"{key:26s} {acc_text} {wall[key]:8.0f} {wall[key] / wall['fp32']:5.2f}x "
            f"{cpu[key]:9.0f} {cpu[key] / cpu['fp32']:5.2f}x"
        )
    for label, speed in (("wall clock", wall), ("CPU time", cpu)):
        best_float = max(v for k, v in speed.items() if not k.startswith("int8"))
        best_int8 = max(v for k, v in speed.items() if k.startswith("int8"))
        print(
            f"{name} ({label}): INT8 onednn / fp32 = {speed['int8 onednn'] / speed['fp32']:.2f}x, "
            f"best INT8 / best float (incl. bf16) = {best_int8 / best_float:.2f}x"
        )
    print(
        f"{name}: accuracy fp32 {acc['fp32']:.4f} -> INT8 {acc['int8 onednn']:.4f} "
        f"({100 * (acc['int8 onednn'] - acc['fp32']):+.2f} points)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-fraction", type=float, default=0.25)
    parser.add_argument("--calibration-images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=4, help="batches per timing round")
    parser.add_argument("--checkpoint-dir", default=None, help="cache trained weights here")
    parser.add_argument("--models", nargs="+", default=["resnet20", "simple_cnn"])
    args = parser.parse_args()

    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
        f"bf16 native: {cpu_supports_bf16()}, quantized engines: "
        f"{torch.backends.quantized.supported_engines}"
    )
    train = load_dataset("fashion-mnist")
    test = load_dataset("fashion-mnist", split="test")
    builders: dict[str, Callable[[], Classifier]] = {
        "resnet20": lambda: resnet_cifar(in_channels=1, depth=20),
        "simple_cnn": lambda: simple_cnn(in_channels=1, image_size=28),
    }
    for name in args.models:
        model: nn.Module = builders[name]()
        assert isinstance(model, Classifier)
        bench_model(name, model, train, test, args)


if __name__ == "__main__":
    main()
