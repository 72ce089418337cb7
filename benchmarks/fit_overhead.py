"""fit() vs a minimal hand-written loop: same model, data, batches, precision and optimizer.

Target: fit() at most 3% slower. Also reported: the cost of watching the run, fit() with
a CSVLogger (a row per epoch and every 10 steps) and with a TensorBoardLogger (scalars every
50 steps), against fit() without them. Runs alternate (hand, fit, fit+CSV, fit+TensorBoard,
hand, ...) so that machine noise hits every side alike; the medians are compared.

    .venv/bin/python benchmarks/fit_overhead.py            # full Fashion-MNIST subset
    .venv/bin/python benchmarks/fit_overhead.py --dataset sample --repeats 2 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

import visionblocks as vb
from visionblocks.train import resolve_plan
from visionblocks.train._optim import make_optimizer, make_schedule


def hand_loop(train: vb.ImageDataset, epochs: int, batch_size: int) -> float:
    plan = resolve_plan("auto", "auto")
    torch.manual_seed(0)
    model = plan.prepare(vb.resnet20(in_channels=train.image_shape[0]))
    loader = vb.DeviceLoader(
        train, batch_size=batch_size, augment="standard", seed=0, drop_last=True,
        device=plan.device, channels_last=plan.channels_last,
    )  # fmt: skip
    opt = make_optimizer("sgd", model, lr=0.2 * batch_size / 256, momentum=0.9, weight_decay=5e-4)
    sched = make_schedule("onecycle", opt, total_steps=epochs * len(loader), warmup=0.2)
    assert sched is not None
    start = time.perf_counter()
    model.train()
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        for x, y in loader:
            with plan.autocast():
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return time.perf_counter() - start


def with_fit(
    train: vb.ImageDataset, epochs: int, batch_size: int, callbacks: Sequence[vb.Callback] = ()
) -> float:
    torch.manual_seed(0)
    model = vb.resnet20(in_channels=train.image_shape[0])
    start = time.perf_counter()
    vb.fit(
        model, train, epochs=epochs, batch_size=batch_size, seed=0, progress=False,
        callbacks=callbacks,
    )  # fmt: skip
    return time.perf_counter() - start


def csv_logger(folder: str) -> list[vb.Callback]:
    return [vb.CSVLogger(f"{folder}/metrics.csv", every_n_steps=10)]


def tensorboard_logger(folder: str) -> list[vb.Callback]:
    return [vb.TensorBoardLogger(f"{folder}/tb", every_n_steps=50)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--images", type=int, default=10_000, help="training images used")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-loggers", action="store_true", help="skip the fit()+logger runs")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    full = vb.load_dataset(args.dataset)
    train = vb.subset(full, min(1.0, args.images / len(full)), seed=0)
    print(f"{train}; {args.epochs} epochs, batch {args.batch_size}; "
          f"{resolve_plan().describe()}")  # fmt: skip
    hand_loop(train, 1, args.batch_size)  # warm-up: oneDNN primitive caches, allocator
    sides: dict[str, Callable[[str], list[vb.Callback]]] = {
        "fit()": lambda folder: [],
        "fit()+CSV": csv_logger,
        "fit()+TensorBoard": tensorboard_logger,
    }
    if args.no_loggers:
        del sides["fit()+CSV"], sides["fit()+TensorBoard"]
    times: dict[str, list[float]] = {"hand loop": [], **{name: [] for name in sides}}
    for _ in range(args.repeats):
        times["hand loop"].append(hand_loop(train, args.epochs, args.batch_size))
        for name, make in sides.items():
            with tempfile.TemporaryDirectory() as folder:
                times[name].append(with_fit(train, args.epochs, args.batch_size, make(folder)))
        print("  " + "   ".join(f"{name} {t[-1]:.2f}s" for name, t in times.items()))
    median = {name: statistics.median(t) for name, t in times.items()}
    h, f = median["hand loop"], median["fit()"]
    print(f"median: hand loop {h:.2f}s, fit() {f:.2f}s -> fit() overhead {100 * (f / h - 1):+.1f}% "
          f"(ratio {f / h:.3f}; target <= 1.03)")  # fmt: skip
    for name in sides:
        if name != "fit()":
            m = median[name]
            print(f"median: {name} {m:.2f}s vs fit() {f:.2f}s -> logger cost "
                  f"{100 * (m / f - 1):+.1f}% (ratio {m / f:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
