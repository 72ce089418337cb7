"""One epoch of :func:`~visionblocks.train.fit`: a training pass, then a validation pass."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn
from tqdm.auto import tqdm

from visionblocks.data import CutMix, MixUp, epoch_seed
from visionblocks.train._data import Batches
from visionblocks.train._distributed import all_reduce_sum
from visionblocks.train._ema import update_ema
from visionblocks.train._evaluate import reduce_sums, run_eval
from visionblocks.train._loss import check_loss_value
from visionblocks.train._metrics import MetricMode, MetricSet, resolve_metrics
from visionblocks.train._seeding import Stream
from visionblocks.train._state import RunState, TrainingDivergedError

__all__ = [
    "Criterion",
    "epoch_modes",
    "make_mixers",
    "run_epoch",
    "train_pass",
    "validation_pass",
]

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A loss: ``criterion(logits (B, K) float32, targets (B,) class indices or (B, K) soft or
multi-hot)``."""


def make_mixers(mixup: float, cutmix: float) -> list[MixUp | CutMix]:
    """The batch mixers a run uses (one is picked at random per batch when both are on)."""
    mixers: list[MixUp | CutMix] = []
    if mixup > 0:
        mixers.append(MixUp(mixup))
    if cutmix > 0:
        mixers.append(CutMix(cutmix))
    return mixers


def run_epoch(
    run: RunState,
    train: Batches,
    val: Batches | None,
    *,
    epochs: int,
    criterion: Criterion,
    mixers: Sequence[MixUp | CutMix] = (),
    accumulate: int = 1,
    grad_clip: float | None = None,
    val_tta: bool = False,
    metrics: MetricSet | None = None,
) -> dict[str, float]:
    """Train one epoch, validate, step a plateau schedule, record and print the metrics.

    ``metrics``: what validation measures (default: loss and accuracy).
    """
    metrics = metrics if metrics is not None else resolve_metrics(None, always=True)
    epoch = run.epoch
    run.emit("on_epoch_start", epoch)
    started = time.perf_counter()
    values = train_pass(
        run, train, criterion=criterion, mixers=mixers, accumulate=accumulate,
        grad_clip=grad_clip, epochs=epochs,
    )  # fmt: skip
    train_seconds = time.perf_counter() - started
    run.emit("on_validation_start", epoch)
    if val is not None:
        values.update(validation_pass(run, val, tta=val_tta, metrics=metrics))
    run.emit("on_validation_end", epoch, values)
    plateau = isinstance(run.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if plateau and not run.validation_skipped:
        run.scheduler.step(values.get("val_loss", values["train_loss"]))
    values.update(
        epoch=epoch,
        lr=run.optimizer.param_groups[0]["lr"],
        seconds=time.perf_counter() - started,
        images_per_second=values.pop("_images") / train_seconds,
    )
    run.history.append(values)
    shown = [f"val_{k}" for k in metrics.shown(run.num_classes) if k not in ("loss", "acc")]
    run.log(epoch_line(values, epochs, shown))
    run.emit("on_epoch_end", epoch, values)
    return values


def train_pass(
    run: RunState,
    batches: Batches,
    *,
    criterion: Criterion,
    mixers: Sequence[MixUp | CutMix],
    accumulate: int,
    grad_clip: float | None,
    epochs: int,
) -> dict[str, float]:
    """One pass over the training data; returns train_loss, train_acc and the image count.

    ``train_acc`` of multi-label targets is the exact-match ratio at threshold 0.5.

    With ``accumulate=N`` the gradients of N micro-batches are summed (each loss divided
    by the group's size) before one optimizer step; under DDP the inner micro-batches
    skip the all-reduce (``no_sync``), which only the group's last one does.
    """
    plan, opt, epoch = run.plan, run.optimizer, run.epoch
    per_step = run.scheduler is not None and not isinstance(
        run.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau
    )
    # The loss is checked for NaN every step on the CPU (free) but only every 25 steps on
    # accelerators, where reading it back would stall the queue of launched kernels.
    check_every = 1 if plan.device.type == "cpu" else 25
    mix_gen = torch.Generator().manual_seed(epoch_seed(run.seed, epoch, Stream.MIX))
    batches.set_epoch(epoch)
    run.net.train()
    loss_sum = torch.zeros((), device=plan.device)
    correct = torch.zeros((), dtype=torch.int64, device=plan.device)
    seen = 0
    total = len(batches)
    bar = tqdm(
        batches, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not run.progress,
        unit="batch", dynamic_ncols=True,
    )  # fmt: skip
    opt.zero_grad(set_to_none=True)
    for i, (x, y) in enumerate(bar):
        group_start = i - i % accumulate
        group_size = min(accumulate, total - group_start)
        last_in_group = i == group_start + group_size - 1
        target: torch.Tensor = y
        if mixers:
            mixer = mixers[int(torch.randint(len(mixers), (1,), generator=mix_gen))]
            x, target = mixer(x, y, run.num_classes, generator=mix_gen)
        sync = nullcontext() if last_in_group or not run.dist.enabled else _no_sync(run.net)
        with sync:
            with plan.autocast():
                logits = run.net(x)
            loss = criterion(logits.float(), target)
            if i == 0:
                check_loss_value(loss, criterion, logits)
            run.scaler.scale(loss / group_size).backward()  # type: ignore[no-untyped-call]
        run.step_loss = loss.detach()
        loss_sum += run.step_loss * len(y)
        if y.dim() == 2:  # multi-label: every label right at 0.5 (logit 0)
            correct += ((logits >= 0) == (y >= 0.5)).all(dim=1).sum()
        else:
            correct += (logits.argmax(dim=1) == y).sum()
        seen += len(y)
        if i % check_every == 0 and not math.isfinite(loss.item()):
            raise TrainingDivergedError(
                f"the training loss became {loss.item()} at step {run.step + 1} (epoch {epoch}, "
                f"batch {i + 1}) with lr {opt.param_groups[0]['lr']:.3g}. Likely causes: a "
                f"learning rate too high (try lr / 10 or grad_clip=1.0), or inputs/labels "
                f"containing NaN. No checkpoint was written for this epoch."
            )
        if not last_in_group:
            continue
        run.emit("on_after_backward", run.step + 1)
        _optimizer_step(run, grad_clip)
        if per_step:
            run.scheduler.step()
        run.step += 1
        run.emit("on_step_end", run.step)
        if run.progress and i % 20 == 0:
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}")
    totals = all_reduce_sum(
        torch.stack(
            [loss_sum.float(), correct.float(), torch.tensor(float(seen), device=plan.device)]
        ),
        run.dist,
    ).tolist()
    return {
        "train_loss": totals[0] / totals[2],
        "train_acc": totals[1] / totals[2],
        "_images": totals[2],
    }


def _optimizer_step(run: RunState, grad_clip: float | None) -> None:
    """Clip, step (through the fp16 scaler), clear the gradients, update the average."""
    if grad_clip is not None:
        run.scaler.unscale_(run.optimizer)
        nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    if run.ema is not None:
        update_ema(run.ema, run.model, run.step + 1)


def _no_sync(net: nn.Module) -> AbstractContextManager[None]:
    """DDP's context that skips the gradient all-reduce (for inner micro-batches)."""
    assert isinstance(net, nn.parallel.DistributedDataParallel)  # only called under DDP
    return net.no_sync()


def validation_pass(
    run: RunState, batches: Batches, *, tta: bool, metrics: MetricSet
) -> dict[str, float]:
    """``val_<key>`` of every metric for the validated weights (:attr:`RunState.validated_model`).

    The pass is ``evaluate``'s: counts summed over the DDP processes (each image once),
    logits gathered in the data's order only when a metric reads them.
    """
    net = run.net if run.ema is None else run.ema.module
    sums = run_eval(net, batches, run.plan, tta=tta, metrics=metrics)
    sums = reduce_sums(sums, run.dist, per_example=metrics.needs_outputs)
    return {f"val_{key}": value for key, value in metrics.compute(sums).items()}


def epoch_modes(
    metrics: MetricSet, num_classes: int, *, validating: bool
) -> dict[str, MetricMode | None]:
    """Every key with a direction that a run's history records (``History.modes``).

    Example:
        >>> list(epoch_modes(resolve_metrics("macro_f1", always=True), 10, validating=True))
        ['train_loss', 'train_acc', 'val_loss', 'val_acc', 'val_macro_f1']
    """
    modes: dict[str, MetricMode | None] = {"train_loss": "min", "train_acc": "max"}
    if validating:
        modes.update({f"val_{k}": mode for k, mode in metrics.modes(num_classes).items()})
    return modes


def epoch_line(metrics: dict[str, float], epochs: int, extra: Sequence[str] = ()) -> str:
    """The line printed after each epoch; ``extra``: more ``val_`` keys to show."""
    line = (
        f"epoch {int(metrics['epoch']):>3}/{epochs}  train loss {metrics['train_loss']:.4f} "
        f"acc {metrics['train_acc']:.2%}"
    )
    if "val_acc" in metrics:
        line += f"  val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.2%}"
        line += "".join(f" {k[4:]} {metrics[k]:.4f}" for k in extra if k in metrics)
    return line + f"  {metrics['seconds']:.1f}s ({metrics['images_per_second']:.0f} img/s)"
