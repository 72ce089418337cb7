"""What tests/train/test_ddp.py runs under torchrun: ``python ddp_worker.py OUT MODE``.

MODE ``basic`` (run on one host and on two "nodes"): fit on a tagged Dataset through a
user DataLoader, recording which images each rank trains on, then evaluate. MODE
``more`` adds: SyncBatchNorm, an interrupted and resumed run, fine_tune, bad input.
Each rank writes ``OUT/<name>_rank<R>.{pt,json}``; the test reads them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import visionblocks as vb
from visionblocks.train import Callback, RunState

TRAIN_SIZE, VAL_SIZE, NUM_CLASSES = 200, 101, 4
COLLATE_MARK = 0.5


def tagged_data(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(size, 1, 8, 8)`` images whose pixel (0, 0) is ``index / 256``; learnable labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(NUM_CLASSES, (size,), generator=generator)
    images = torch.rand(size, 1, 8, 8, generator=generator) * 0.25
    images += labels.view(-1, 1, 1, 1).float() / NUM_CLASSES  # a class is a brightness
    images[:, 0, 0, 0] = torch.arange(size, dtype=torch.float32) / 256
    return images, labels


def tiny_model(width: int = 4) -> nn.Sequential:
    torch.manual_seed(0)  # the same initial weights on every rank and in every run
    return nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(width, NUM_CLASSES),
    )


class Recorder(nn.Module):
    """Records the tag and the collate mark of every training image it sees."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.tags: list[int] = []
        self.marks: list[float] = []
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.tags += (x[:, 0, 0, 0] * 256).round().long().tolist()
            self.marks += x[:, 0, 0, 1].tolist()
            self.batch_sizes.append(len(x))
        return self.net(x)  # type: ignore[no-any-return]


def marking_collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    x = torch.stack([item[0] for item in items])
    x[:, 0, 0, 1] = COLLATE_MARK
    return [x, torch.stack([item[1] for item in items])]


class InterruptAt(Callback):
    """Ctrl-C at the start of an epoch (after the previous epoch's checkpoint)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer: RunState, epoch: int) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


def save(out: Path, name: str, rank: int, state: dict[str, Any], info: dict[str, Any]) -> None:
    torch.save(state, out / f"{name}_rank{rank}.pt")
    (out / f"{name}_rank{rank}.json").write_text(json.dumps(info))


def history_of(history: vb.train.History) -> dict[str, Any]:
    timing = ("seconds", "images_per_second")
    return {k: v for k, v in history.to_dict().items() if k not in timing}


def basic(out: Path, rank: int) -> None:
    """Train through a user DataLoader, then evaluate in-memory and DataLoader data."""
    x, y = tagged_data(TRAIN_SIZE, seed=0)
    loader = DataLoader(
        TensorDataset(x, y), batch_size=10, shuffle=True, collate_fn=marking_collate
    )
    val = tagged_data(VAL_SIZE, seed=1)
    model = Recorder(tiny_model())
    history = vb.fit(
        model, loader, val, epochs=2, seed=1, precision="fp32", augment=None,
        progress="lines", checkpoint_dir=out / f"ckpt_rank{rank}",
    )  # fmt: skip
    on_pair = vb.evaluate(model, val, precision="fp32")
    on_loader = vb.evaluate(model, DataLoader(TensorDataset(*val), batch_size=8), precision="fp32")
    save(out, "basic", rank, model.net.state_dict(), {
        "history": history_of(history),
        "tags": model.tags,
        "marks": sorted(set(model.marks)),
        "batch_sizes": sorted(set(model.batch_sizes)),
        "eval_pair": [on_pair.accuracy, on_pair.confusion.tolist(), on_pair.predictions.tolist()],
        "eval_loader": [on_loader.accuracy, on_loader.confusion.tolist()],
    })  # fmt: skip


def sync_batchnorm(out: Path, rank: int) -> None:
    """BatchNorm running stats after training on a Dataset, with and without sync."""
    x, y = tagged_data(TRAIN_SIZE, seed=0)
    stats = {}
    for sync in (True, False):
        model = tiny_model()
        vb.fit(
            model, TensorDataset(x, y), epochs=1, batch_size=16, seed=1, precision="fp32",
            augment=None, progress=False, sync_batchnorm=sync,
        )  # fmt: skip
        norm = model[1]
        stats[f"sync{int(sync)}"] = torch.stack([norm.running_mean, norm.running_var])
        stats[f"class{int(sync)}"] = torch.tensor(type(norm).__name__ == "GlooSyncBatchNorm")
    torch.save(stats, out / f"syncbn_rank{rank}.pt")


def sync_batchnorm_arithmetic(out: Path, rank: int) -> None:
    """One converted BatchNorm on each rank's half of a batch, to compare with the whole."""
    generator = torch.Generator().manual_seed(3)
    batch = torch.randn(8, 3, 4, 4, generator=generator) * 2 + 1
    upstream = torch.randn(8, 3, 4, 4, generator=generator)  # d(loss)/d(output)
    norm = nn.Sequential(nn.BatchNorm2d(3))
    from visionblocks.train._distributed import convert_sync_batchnorm, current_context

    norm, _ = convert_sync_batchnorm(norm, current_context())
    x = batch[rank * 4 : (rank + 1) * 4].clone().requires_grad_(True)
    y = norm(x)
    (y * upstream[rank * 4 : (rank + 1) * 4]).sum().backward()
    layer = norm[0]
    assert layer.weight.grad is not None
    grads = torch.cat([layer.weight.grad, layer.bias.grad])  # type: ignore[list-item]
    dist.all_reduce(grads)  # what DDP does (before dividing by the world size)
    torch.save(
        {"y": y.detach(), "x_grad": x.grad, "param_grads": grads,
         "running": torch.stack([layer.running_mean, layer.running_var])},
        out / f"syncbn_math_rank{rank}.pt",
    )  # fmt: skip


def resume(out: Path, rank: int) -> None:
    """An uninterrupted run, and one interrupted after epoch 1's checkpoint and resumed."""
    data = tagged_data(TRAIN_SIZE, seed=0)
    args: dict[str, Any] = {"epochs": 2, "seed": 5, "precision": "fp32", "progress": False}
    whole = tiny_model()
    vb.fit(whole, data, **args)
    ckpt = out / "ckpt_resume"
    first = tiny_model()
    history = vb.fit(first, data, checkpoint_dir=ckpt, callbacks=[InterruptAt(2)], **args)
    dist.barrier()  # rank 1 reads the checkpoint rank 0 wrote
    resumed = tiny_model()
    vb.fit(resumed, data, checkpoint_dir=ckpt, resume=True, **args)
    state = {f"whole.{k}": v for k, v in whole.state_dict().items()}
    state |= {f"resumed.{k}": v for k, v in resumed.state_dict().items()}
    save(out, "resume", rank, state, {"interrupted": history.interrupted, "done": len(history)})


def fine_tune(out: Path, rank: int) -> None:
    """fine_tune's two fits, each with its own DDP wrapper, in one process group."""
    data = vb.subset(vb.load_dataset("sample"), 0.1, seed=0)
    model = vb.models.simple_cnn_bn(num_classes=10, in_channels=1, image_size=28)
    history = vb.fine_tune(
        model, data, data, frozen_epochs=1, epochs=1, batch_size=32, seed=2,
        precision="fp32", progress=False,
    )  # fmt: skip
    save(out, "fine_tune", rank, model.state_dict(), {"history": history_of(history)})


class CountAllReduces(Callback):
    """Counts DDP's gradient all-reduces (a comm hook that records, then all-reduces)."""

    def __init__(self) -> None:
        self.calls = 0
        self.steps = 0

    def on_fit_start(self, trainer: RunState) -> None:
        from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

        # No annotations: DDP checks them at runtime, and this module's are strings.
        def counting_hook(state, bucket):  # type: ignore[no-untyped-def]
            self.calls += 1
            return allreduce_hook(state, bucket)

        assert isinstance(trainer.net, nn.parallel.DistributedDataParallel)
        trainer.net.register_comm_hook(None, counting_hook)

    def on_step_end(self, trainer: RunState, step: int) -> None:
        self.steps = step


def accumulate(out: Path, rank: int) -> None:
    """accumulate=4: one all-reduce per optimizer step, none on the inner micro-batches."""
    data = tagged_data(TRAIN_SIZE, seed=0)
    counter = CountAllReduces()
    model = tiny_model()
    vb.fit(
        model, data, epochs=1, batch_size=10, accumulate=4, augment=None, precision="fp32",
        progress=False, seed=3, callbacks=[counter],
    )  # fmt: skip
    info = {"calls": counter.calls, "steps": counter.steps}
    save(out, "accumulate", rank, model.state_dict(), info)


def bad_input(out: Path, rank: int) -> None:
    """Errors that every rank must raise alike (one rank raising alone would hang the other)."""
    x, y = tagged_data(TRAIN_SIZE, seed=0)
    messages = {}
    cases = {
        "too_few_images": lambda: vb.fit(tiny_model(), (x[:1], y[:1]), epochs=1, progress=False),
        "mismatched_models": lambda: vb.fit(
            tiny_model(width=4 + rank), (x, y), epochs=1, progress=False
        ),
    }
    for name, case in cases.items():
        try:
            case()
        except ValueError as err:
            messages[name] = str(err)
    (out / f"bad_rank{rank}.json").write_text(json.dumps(messages))


if __name__ == "__main__":
    torch.set_num_threads(1)
    out_dir, mode = Path(sys.argv[1]), sys.argv[2]
    this_rank = int(os.environ["RANK"])
    basic(out_dir, this_rank)
    if mode == "more":
        scenarios = (
            sync_batchnorm,
            sync_batchnorm_arithmetic,
            resume,
            fine_tune,
            accumulate,
            bad_input,
        )
        for scenario in scenarios:
            scenario(out_dir, this_rank)
