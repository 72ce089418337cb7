"""fit() vs a minimal hand-written loop: same model, data, batches, precision and optimizer.

Target (issue 4): fit() at most 3% slower. Runs alternate (hand, fit, hand, fit, ...)
so that machine noise hits both sides alike; the medians are compared.

    .venv/bin/python benchmarks/fit_overhead.py            # full Fashion-MNIST subset
    .venv/bin/python benchmarks/fit_overhead.py --dataset sample --repeats 2
"""

from __future__ import annotations

import argparse
import statistics
import time

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


def with_fit(train: vb.ImageDataset, epochs: int, batch_size: int) -> float:
    torch.manual_seed(0)
    model = vb.resnet20(in_channels=train.image_shape[0])
    start = time.perf_counter()
    vb.fit(model, train, epochs=epochs, batch_size=batch_size, seed=0, progress=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--images", type=int, default=10_000, help="training images used")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    full = vb.load_dataset(args.dataset)
    train = vb.subset(full, min(1.0, args.images / len(full)), seed=0)
    print(f"{train}; {args.epochs} epochs, batch {args.batch_size}; "
          f"{resolve_plan().describe()}")  # fmt: skip
    hand_loop(train, 1, args.batch_size)  # warm-up: oneDNN primitive caches, allocator
    hand, ours = [], []
    for _ in range(args.repeats):
        hand.append(hand_loop(train, args.epochs, args.batch_size))
        ours.append(with_fit(train, args.epochs, args.batch_size))
        print(f"  hand loop {hand[-1]:.2f}s   fit() {ours[-1]:.2f}s")
    h, f = statistics.median(hand), statistics.median(ours)
    print(f"median: hand loop {h:.2f}s, fit() {f:.2f}s -> fit() overhead {100 * (f / h - 1):+.1f}% "
          f"(ratio {f / h:.3f}; target <= 1.03)")  # fmt: skip


if __name__ == "__main__":
    main()
