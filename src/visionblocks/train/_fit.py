"""``fit``: the training loop, with device/precision, callbacks, checkpoints, resume and DDP."""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from visionblocks.data import CutMix, MixUp
from visionblocks.data._batch_augment import BatchAugmentFn
from visionblocks.data._loader import epoch_seed
from visionblocks.train._callbacks import Callback
from visionblocks.train._checkpoint import atomic_save, load_state, unwrap
from visionblocks.train._data import Batches, DataLike, make_batches, stats_of
from visionblocks.train._device import ExecutionPlan, resolve_plan
from visionblocks.train._distributed import DistContext, all_reduce_sum, setup_distributed
from visionblocks.train._evaluate import STATS_ATTR, run_eval
from visionblocks.train._history import History
from visionblocks.train._optim import default_lr, make_optimizer, make_schedule
from visionblocks.train._validate import check_fit_arguments, check_model_fits_data

__all__ = ["Trainer", "TrainingDivergedError", "fit"]

LAST_CHECKPOINT = "last.pt"


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class Trainer:
    """The state of a running :func:`fit`, as callbacks see it.

    Attributes:
        model: The model being trained (unwrapped from DDP/compile).
        optimizer: The optimizer.
        plan: Device, precision and memory format in use.
        history: Metrics of the completed epochs.
        epoch: The current epoch (1-based).
        step: Optimizer steps taken so far.
        should_stop: Set to ``True`` to stop after the current epoch.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        plan: ExecutionPlan,
        dist: DistContext,
        history: History,
        *,
        progress: bool,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.plan = plan
        self.dist = dist
        self.history = history
        self.progress = progress and dist.is_main
        self.epoch = 0
        self.step = 0
        self.should_stop = False

    @property
    def is_main_process(self) -> bool:
        """Whether this process prints and writes files (rank 0)."""
        return self.dist.is_main

    def log(self, message: str) -> None:
        """Print a line from the main process, without breaking a progress bar."""
        if self.progress:
            tqdm.write(message)


def fit(
    model: nn.Module,
    train: DataLike,
    val: DataLike | None = None,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: str | torch.optim.Optimizer = "sgd",
    lr: float | None = None,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    schedule: str | None = "onecycle",
    warmup: float = 0.2,
    label_smoothing: float = 0.1,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    augment: str | BatchAugmentFn | None = "standard",
    val_tta: bool = False,
    grad_clip: float | None = None,
    param_groups: Iterable[dict[str, Any]] | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    channels_last: bool | Literal["auto"] = "auto",
    compile: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    seed: int | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | bool | None = None,
) -> History:
    """Train ``model`` on ``train`` and return its per-epoch :class:`History`.

    The defaults are a fast, robust recipe: SGD with Nesterov momentum, a
    one-cycle schedule, label smoothing 0.1, pad-and-crop + flip augmentation
    done a batch at a time on the device, bf16 autocast and channels-last where
    the hardware has fast kernels for them (see :func:`resolve_plan`).

    Args:
        model: Any ``nn.Module`` classifier returning ``(B, num_classes)`` logits.
        train: Training data: an :class:`~visionblocks.data.ImageDataset`, an
            ``(images, labels)`` tensor pair, a torch ``Dataset`` or a ``DataLoader``.
        val: Validation data (same kinds), evaluated after every epoch.
        epochs: Number of passes over ``train``.
        batch_size: Images per optimizer step (per process under DDP).
        optimizer: ``"sgd"``, ``"adamw"``, ``"adam"``, or a ready ``torch.optim.Optimizer``.
        lr: Peak learning rate; default 0.2 per 256 images for SGD, 2e-3 for Adam(W).
        momentum: SGD momentum (Nesterov).
        weight_decay: L2 penalty on weights (not on biases and norm scales).
        schedule: ``"onecycle"``, ``"cosine"``, ``"step"``, ``"plateau"`` or ``None``.
        warmup: Fraction of the run spent warming up (one-cycle and cosine).
        label_smoothing: Cross-entropy label smoothing.
        mixup: MixUp Beta(alpha, alpha) parameter; 0 disables it.
        cutmix: CutMix Beta(alpha, alpha) parameter; 0 disables it.
        augment: Augmentation preset for in-memory data (see
            :func:`~visionblocks.data.augmentation`), a batch-augment callable, or ``None``.
        val_tta: Validate with flip test-time augmentation (the logits of each image and
            its mirror averaged), as ``evaluate(..., tta=True)`` does.
        grad_clip: Clip the global gradient norm to this value.
        param_groups: Optimizer parameter groups (e.g. :func:`~visionblocks.transfer.param_groups`
            for discriminative learning rates); each group's ``lr`` is its peak.
        device: ``"auto"`` (CUDA > MPS > CPU) or a device.
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        channels_last: ``"auto"``, ``True`` or ``False``.
        compile: Run the model through ``torch.compile``.
        callbacks: :class:`Callback` objects.
        progress: Show progress bars and a line per epoch.
        seed: Seed for initialization order, shuffling and augmentation; ``None`` picks one
            (saved in checkpoints, so a resumed run continues the same stream).
        checkpoint_dir: Write ``last.pt`` there after every epoch and on Ctrl-C (atomically).
        resume: A checkpoint written by ``fit`` (or ``True``: ``checkpoint_dir/last.pt``) to
            continue from; with the same arguments and a fixed seed on the CPU the result
            equals the uninterrupted run.

    Returns:
        The :class:`History` of the run (``history.interrupted`` after Ctrl-C).

    Raises:
        ValueError: A bad argument, or model and data that do not fit together
            (checked before any training step).
        TrainingDivergedError: The loss became NaN or infinite.

    Example:
        >>> import visionblocks as vb
        >>> train = vb.load_dataset("sample")
        >>> model = vb.simple_cnn(in_channels=1, image_size=28)
        >>> history = fit(model, train, epochs=1, progress=False, seed=0)
        >>> len(history), sorted(history.last)[:3]
        (1, ['epoch', 'images_per_second', 'lr'])
    """
    check_fit_arguments(
        epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
        warmup=warmup, label_smoothing=label_smoothing, mixup=mixup, cutmix=cutmix,
        grad_clip=grad_clip,
    )  # fmt: skip
    plan = resolve_plan(device, precision, channels_last)
    dist = setup_distributed(plan.device.type)
    if dist.enabled and plan.device.type == "cuda":
        plan = dataclasses.replace(plan, device=torch.device("cuda", dist.local_rank))
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("resume=True reads checkpoint_dir/last.pt: pass checkpoint_dir too.")
        resume = Path(checkpoint_dir) / LAST_CHECKPOINT
    state = _read_training_state(Path(resume)) if resume else None
    if state is not None:
        seed = int(state["seed"])
    elif seed is None:
        seed = int.from_bytes(os.urandom(4), "little") >> 1
    torch.manual_seed(seed)
    random.seed(seed)

    stats = stats_of(train)
    train_batches = make_batches(
        train, batch_size=batch_size, train=True, device=plan.device,
        channels_last=plan.channels_last, augment=augment, seed=seed, rank=dist.rank,
        world_size=dist.world_size,
    )  # fmt: skip
    val_batches = None
    if val is not None:
        val_batches = make_batches(
            val, batch_size=max(batch_size, 512), train=False, device=plan.device,
            channels_last=plan.channels_last, stats=stats or stats_of(val), rank=dist.rank,
            world_size=dist.world_size,
        )  # fmt: skip
    num_classes = check_model_fits_data(model, train, train_batches)
    plan.prepare(model)

    name = optimizer.lower() if isinstance(optimizer, str) else "custom"
    opt = make_optimizer(
        optimizer, model, lr=lr if lr is not None else default_lr(name, batch_size),
        momentum=momentum, weight_decay=weight_decay, param_groups=param_groups,
    )  # fmt: skip
    steps_per_epoch = len(train_batches)
    sched = make_schedule(schedule, opt, total_steps=epochs * steps_per_epoch, warmup=warmup)
    scaler = torch.amp.GradScaler(plan.device.type, enabled=plan.needs_grad_scaler)
    history = History()
    start_epoch = 0
    if state is not None:
        load_state(model, state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None and state.get("schedule") is not None:
            sched.load_state_dict(state["schedule"])
        scaler.load_state_dict(state["scaler"])
        history = History.from_state_dict(state["history"])
        start_epoch = int(state["epoch"])
        torch.set_rng_state(state["rng"]["torch"])
        random.setstate(state["rng"]["python"])

    net: nn.Module = torch.compile(model) if compile else model  # type: ignore[assignment]
    if dist.enabled:
        ids = [plan.device.index] if plan.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    mixers: list[MixUp | CutMix] = []
    if mixup > 0:
        mixers.append(MixUp(mixup))
    if cutmix > 0:
        mixers.append(CutMix(cutmix))

    trainer = Trainer(model, opt, plan, dist, history, progress=progress)
    trainer.step = start_epoch * steps_per_epoch
    n_params = sum(p.numel() for p in model.parameters())
    trainer.log(
        f"fit: {type(model).__name__} ({n_params:,} parameters) on {plan.describe()}; "
        f"{epochs} epochs x {steps_per_epoch} steps of {batch_size}; seed {seed}"
    )
    for cb in callbacks:
        cb.on_fit_start(trainer)

    def save_state(completed: int, *, interrupted: bool = False) -> Path | None:
        if checkpoint_dir is None or not dist.is_main:
            return None
        return atomic_save(
            {
                "format": "visionblocks-checkpoint", "version": 1,
                "model": unwrap(model).state_dict(), "model_name": None, "model_kwargs": {},
                "optimizer": opt.state_dict(),
                "schedule": sched.state_dict() if sched is not None else None,
                "scaler": scaler.state_dict(), "history": history.state_dict(), "epoch": completed,
                "seed": seed, "stats": [list(s) for s in stats] if stats else None,
                "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
                "interrupted": interrupted,
            },
            Path(checkpoint_dir) / LAST_CHECKPOINT,
        )  # fmt: skip

    completed = start_epoch
    try:
        for epoch in range(start_epoch + 1, epochs + 1):
            trainer.epoch = epoch
            for cb in callbacks:
                cb.on_epoch_start(trainer, epoch)
            mix_gen = torch.Generator().manual_seed(epoch_seed(seed, epoch, 2))
            started = time.perf_counter()
            metrics = _train_epoch(
                trainer, net, train_batches, sched, scaler, mixers, mix_gen, num_classes,
                label_smoothing=label_smoothing, grad_clip=grad_clip, callbacks=callbacks,
                total_epochs=epochs,
            )  # fmt: skip
            train_seconds = time.perf_counter() - started
            for cb in callbacks:
                cb.on_validation_start(trainer, epoch)
            if val_batches is not None:
                metrics.update(_validate(net, val_batches, plan, dist, tta=val_tta))
            for cb in callbacks:
                cb.on_validation_end(trainer, epoch, metrics)
            if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                sched.step(metrics.get("val_loss", metrics["train_loss"]))
            metrics.update(
                epoch=epoch,
                lr=opt.param_groups[0]["lr"],
                seconds=time.perf_counter() - started,
                images_per_second=metrics.pop("_images") / train_seconds,
            )
            history.append(metrics)
            completed = epoch
            trainer.log(_epoch_line(metrics, epochs))
            for cb in callbacks:
                cb.on_epoch_end(trainer, epoch, metrics)
            save_state(epoch)
            if trainer.should_stop:
                break
    except KeyboardInterrupt:
        history.interrupted = True
        path = save_state(completed, interrupted=True)
        where = f"; checkpoint {path} (continue with resume=True)" if path else ""
        trainer.log(f"interrupted during epoch {completed + 1}: returning the history{where}")
    finally:
        for cb in callbacks:
            cb.on_fit_end(trainer)
        dist.close()
    if stats is not None:
        setattr(model, STATS_ATTR, stats)
    return history


def _train_epoch(
    trainer: Trainer,
    net: nn.Module,
    batches: Batches,
    sched: Any,
    scaler: torch.amp.GradScaler,
    mixers: list[MixUp | CutMix],
    mix_gen: torch.Generator,
    num_classes: int,
    *,
    label_smoothing: float,
    grad_clip: float | None,
    callbacks: Sequence[Callback],
    total_epochs: int,
) -> dict[str, float]:
    """One pass over the training data; returns train_loss, train_acc and the image count."""
    plan, opt, epoch = trainer.plan, trainer.optimizer, trainer.epoch
    per_step = sched is not None and not isinstance(
        sched, torch.optim.lr_scheduler.ReduceLROnPlateau
    )
    # The loss is checked for NaN every step on the CPU (free) but only every 25 steps on
    # accelerators, where reading it back would stall the queue of launched kernels.
    check_every = 1 if plan.device.type == "cpu" else 25
    batches.set_epoch(epoch)
    net.train()
    loss_sum = torch.zeros((), device=plan.device)
    correct = torch.zeros((), dtype=torch.int64, device=plan.device)
    seen = 0
    bar = tqdm(
        batches, desc=f"epoch {epoch}/{total_epochs}", leave=False, disable=not trainer.progress,
        unit="batch", dynamic_ncols=True,
    )  # fmt: skip
    for i, (x, y) in enumerate(bar):
        target: torch.Tensor = y
        if mixers:
            mixer = mixers[int(torch.randint(len(mixers), (1,), generator=mix_gen))]
            x, target = mixer(x, y, num_classes, generator=mix_gen)
        with plan.autocast():
            logits = net(x)
        loss = F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        for cb in callbacks:
            cb.on_after_backward(trainer, trainer.step)
        if grad_clip is not None:
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_(trainer.model.parameters(), grad_clip)
        scaler.step(opt)
        scaler.update()
        if per_step:
            sched.step()
        trainer.step += 1
        for cb in callbacks:
            cb.on_step_end(trainer, trainer.step)
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(dim=1) == y).sum()
        seen += len(y)
        if i % check_every == 0 and not math.isfinite(loss.item()):
            raise TrainingDivergedError(
                f"the training loss became {loss.item()} at step {trainer.step} (epoch {epoch}, "
                f"batch {i + 1}) with lr {opt.param_groups[0]['lr']:.3g}. Likely causes: a "
                f"learning rate too high (try lr / 10 or grad_clip=1.0), or inputs/labels "
                f"containing NaN. No checkpoint was written for this epoch."
            )
        if trainer.progress and i % 20 == 0:
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}")
    totals = all_reduce_sum(
        torch.stack(
            [loss_sum.float(), correct.float(), torch.tensor(float(seen), device=plan.device)]
        ),
        trainer.dist,
    ).tolist()
    return {
        "train_loss": totals[0] / totals[2],
        "train_acc": totals[1] / totals[2],
        "_images": totals[2],
    }


def _validate(
    net: nn.Module, batches: Batches, plan: ExecutionPlan, dist: DistContext, *, tta: bool
) -> dict[str, float]:
    loss_sum, confusion, _, _ = run_eval(net, batches, plan, tta=tta)
    totals = all_reduce_sum(
        torch.stack(
            [loss_sum.float(), confusion.diagonal().sum().float(), confusion.sum().float()]
        ),
        dist,
    ).tolist()
    return {"val_loss": totals[0] / totals[2], "val_acc": totals[1] / totals[2]}


def _epoch_line(metrics: dict[str, float], epochs: int) -> str:
    line = (
        f"epoch {int(metrics['epoch']):>3}/{epochs}  train loss {metrics['train_loss']:.4f} "
        f"acc {metrics['train_acc']:.2%}"
    )
    if "val_acc" in metrics:
        line += f"  val loss {metrics['val_loss']:.4f} acc {metrics['val_acc']:.2%}"
    return line + f"  {metrics['seconds']:.1f}s ({metrics['images_per_second']:.0f} img/s)"


def _read_training_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"resume={str(path)!r}: no such checkpoint.")
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"optimizer", "epoch", "seed", "rng", "history"} - set(state)
    if missing:
        raise ValueError(
            f"{str(path)!r} is a model checkpoint, not a training state (missing "
            f"{sorted(missing)}); load it with load_checkpoint() and start a new fit()."
        )
    return state  # type: ignore[no-any-return]
