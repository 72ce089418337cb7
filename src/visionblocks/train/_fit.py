"""``fit``: train a classifier, with device/precision, callbacks, checkpoints, resume and DDP.

``fit`` reads as the paragraph a person would write about training: check the
arguments, place the run on a device (and in a process group), wrap the data in
batches, check that model and data fit, set up optimization, restore a saved run
if asked, then run epochs, checkpointing after each. The chores live in the
modules it calls: ``_checks``, ``_distributed``, ``_data``, ``_optim``, ``_loss``,
``_ema``, ``_checkpoint``, ``_seeding``, ``_state`` and ``_epoch``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from visionblocks.data import BatchAugmentFn, DataLike, LoaderOptions, dataset_labels, stats_of
from visionblocks.model_file import attach_card, card_of
from visionblocks.train._callbacks import Callback
from visionblocks.train._card import StatsChoice, card_for_data, input_stats
from visionblocks.train._checkpoint import (
    read_training_state,
    restore_training_state,
    rewind_to_saved,
    save_training_state,
)
from visionblocks.train._checks import check_data, check_fit_arguments, check_model_fits_data
from visionblocks.train._data import AUTO, make_batches
from visionblocks.train._defaults import FIT_DEFAULTS
from visionblocks.train._distributed import convert_sync_batchnorm, place_run, wrap_model
from visionblocks.train._ema import EMA, apply_average, make_ema, one_average
from visionblocks.train._epoch import epoch_modes, make_mixers, run_epoch
from visionblocks.train._history import History
from visionblocks.train._loss import Criterion, make_criterion
from visionblocks.train._metrics import check_metrics, resolve_metrics
from visionblocks.train._multilabel import check_task
from visionblocks.train._optim import default_lr, make_optimizer, make_schedule
from visionblocks.train._seeding import fresh_seed, seed_everything
from visionblocks.train._state import RunState

__all__ = ["LAST_CHECKPOINT", "fit"]

LAST_CHECKPOINT = "last.pt"
"""The file ``fit(checkpoint_dir=...)`` writes after every epoch."""
D = FIT_DEFAULTS


def fit(
    model: nn.Module,
    train: DataLike,
    val: DataLike | None = None,
    *,
    epochs: int,
    batch_size: int = D.batch_size,
    optimizer: str | torch.optim.Optimizer = D.optimizer,
    lr: float | None = None,
    momentum: float = D.momentum,
    weight_decay: float = D.weight_decay,
    schedule: str | None = D.schedule,
    warmup: float = D.warmup,
    label_smoothing: float = D.label_smoothing,
    loss: Criterion | str | None = None,
    class_weight: str | torch.Tensor | None = None,
    task: str | None = None,
    sampler: str | None = None,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    augment: str | BatchAugmentFn | None = AUTO,
    stats: StatsChoice = "auto",
    val_tta: bool = False,
    val_every: int = 1,
    metrics: str | Sequence[object] | None = None,
    ema: float | EMA | None = None,
    accumulate: int = 1,
    grad_clip: float | None = None,
    param_groups: Iterable[dict[str, Any]] | None = None,
    device: str | torch.device = "auto",
    precision: str = "auto",
    channels_last: bool | Literal["auto"] = "auto",
    compile: bool = False,
    sync_batchnorm: bool = False,
    callbacks: Sequence[Callback] = (),
    progress: bool | Literal["lines"] = True,
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
        label_smoothing: Cross-entropy label smoothing (of the built-in loss).
        loss: ``"focal"``, the focal loss (:class:`FocalLoss`, gamma 2, with
            ``label_smoothing`` and ``class_weight``), or a criterion ``loss(logits, targets)``
            to minimize instead of the built-in label-smoothed cross-entropy; it gets float32
            ``(B, K)`` logits and class indices ``(B,)`` (class probabilities ``(B, K)`` with
            MixUp/CutMix). ``FocalLoss(gamma=...)`` sets another gamma.
        class_weight: Per-class weights of the built-in loss (cross-entropy or focal) for
            imbalanced data: ``"balanced"`` (``n / (K * n_c)``, from the training labels) or
            a ``(K,)`` tensor. Multi-label: the weight of each label's positive term
            (``BCEWithLogitsLoss``'s ``pos_weight``); ``"balanced"`` is negatives /
            positives of each label.
        task: ``"multiclass"`` (one class per image: softmax cross-entropy) or
            ``"multilabel"`` (any set of labels per image: a sigmoid per output, binary
            cross-entropy summed over the labels, label smoothing ``e`` training on
            ``y (1 - e) + e / 2``);
            ``None`` infers it from the targets: ``(N, K)`` multi-hot labels (float or
            bool, e.g. :func:`~visionblocks.data.multi_hot`, or a labels file with a
            ``tags`` column) are multi-label, class indices multi-class. A multi-label run
            validates exact-match ``val_acc`` and mean average precision ``val_map``
            (``metrics`` adds ``"macro_f1"``, ``"per_label_ap"``, ``"per_label_f1"``), and
            its card records ``task`` and each label's threshold (0.5) for ``predict``;
            ``loss="focal"`` and ``sampler`` are for multi-class targets only.
        sampler: ``"balanced"``: draw each training epoch class-balanced (every class
            equally likely, images with replacement, as many as the data has; seeded, so
            resume replays it): see :class:`~visionblocks.data.LoaderOptions`. ``None``:
            every image once per epoch.
        mixup: MixUp Beta(alpha, alpha) parameter; 0 disables it.
        cutmix: CutMix Beta(alpha, alpha) parameter; 0 disables it.
        augment: Augmentation preset (see :func:`~visionblocks.data.augmentation`) or a
            batch-augment callable, applied where ``fit`` builds the batches (in-memory
            data, image folders); ``"auto"``: ``FIT_DEFAULTS.augment`` there, and nothing
            for a ``Dataset`` or ``DataLoader``, which brings its own transforms (any other
            value with one is an error); ``None``: no augmentation.
        stats: Whose ``(mean, std)`` normalize the inputs: ``"weights"``, the model
            card's (the statistics pretrained weights were trained with, which
            :func:`~visionblocks.transfer.pretrained` records); ``"data"``, the training
            data's; ``"auto"``, the card's for a model from pretrained weights (its card
            names a ``source`` and has statistics), else the data's. The card keeps the
            ones used, so ``evaluate``, ``predict`` and ``export`` normalize the same way.
            A ``Dataset`` or ``DataLoader`` brings its own normalization.
        val_tta: Validate with flip test-time augmentation (the logits of each image and
            its mirror averaged), as ``evaluate(..., tta=True)`` does.
        val_every: Validate after every ``val_every``-th epoch and after the last of
            ``epochs`` only; a validation is part of the run's time, and a short run can
            skip the intermediate ones. The other epochs' rows have no ``val_`` metrics.
        metrics: What validation measures besides ``val_loss`` and ``val_acc``, each
            recorded as ``val_<name>`` (history, loggers, ``EarlyStopping`` and
            ``BestCheckpoint`` monitors): built-in names (``"top5_accuracy"``,
            ``"macro_f1"``, ``"balanced_accuracy"``, ``"per_class_recall"`` as
            ``val_recall_<class index>``, ``"min_recall"``; see ``BUILTIN_METRICS``), a
            function ``fn(logits, targets)`` returning one number (named by its
            ``__name__``), a ``torchmetrics.Metric``, or a ``(name, metric)`` pair.
            Computed as ``evaluate(metrics=...)`` computes them, each image counted once
            under DDP.
        ema: Keep an exponential moving average of the weights: a per-step decay in
            (0, 1), e.g. 0.99, or an :class:`EMA` (update every k steps, warm-up);
            validation measures the average, checkpoints save it, and at the end the
            averaged weights are left in ``model``. The one average of a run: with a
            (deprecated) ``WeightAveraging`` callback as well it is an error.
        accumulate: Micro-batches per optimizer step: gradients of ``accumulate``
            batches of ``batch_size`` are summed before each step (the effective batch is
            ``accumulate * batch_size``; ``lr``'s default scales with it).
        grad_clip: Clip the global gradient norm to this value.
        param_groups: Optimizer parameter groups (e.g. :func:`~visionblocks.transfer.param_groups`
            for discriminative learning rates); each group's ``lr`` is its peak.
        device: ``"auto"`` (CUDA > MPS > CPU) or a device.
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        channels_last: ``"auto"``, ``True`` or ``False``.
        compile: Run the model through ``torch.compile``.
        sync_batchnorm: Under DDP, compute BatchNorm statistics over all processes'
            batches (``nn.SyncBatchNorm``); a no-op in a single process.
        callbacks: :class:`Callback` objects.
        progress: ``True``: progress bars, the run's plan and a line per epoch;
            ``"lines"``: the lines without bars (for logs); ``False``: quiet, except a
            line when the run is interrupted.
        seed: Seed of everything random inside ``fit``: the order of the data,
            augmentation, MixUp/CutMix and dropout; ``None`` picks one (saved in
            checkpoints, so a resumed run continues the same streams). It does not cover
            the model's initial weights, which exist before ``fit`` is called: call
            :func:`~visionblocks.train.seed_everything` before building the model for that.
        checkpoint_dir: Write ``last.pt`` there (atomically) after every completed epoch.
            A run interrupted mid-epoch keeps the checkpoint of the last completed epoch,
            and the model returns to that epoch's weights (without a checkpoint of it, the
            half-trained weights stay and the card records ``partial_epoch``).
        resume: A checkpoint written by ``fit`` (or ``True``: ``checkpoint_dir/last.pt``) to
            continue from; with the same arguments the run replays from the start of the
            first epoch it had not completed, and on the CPU in fp32 ends with exactly the
            weights of the uninterrupted run.

    Returns:
        The :class:`History` of the run (``history.interrupted`` after Ctrl-C, with the
        epochs completed before it).

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
        grad_clip=grad_clip, ema=ema, accumulate=accumulate, val_every=val_every, loss=loss,
        class_weight=class_weight, callbacks=callbacks, task=task, optimizer=optimizer,
        schedule=schedule,
    )  # fmt: skip
    averaging = one_average(ema, callbacks)
    check_metrics(metrics, task)  # names of the task, or of either before the targets are seen
    check_data(train, "training data")
    if val is not None:
        check_data(val, "validation data")
    plan, dist = place_run(device, precision, channels_last)
    saved = read_training_state(_resume_path(resume, checkpoint_dir)) if resume else None
    seed = int(saved["seed"]) if saved is not None else fresh_seed() if seed is None else seed
    seed_everything(seed)

    normalization = input_stats(model, train, stats)
    mean, std = normalization or (None, None)
    loading = LoaderOptions(
        batch_size=batch_size, augment=augment, device=plan.device, seed=seed, mean=mean,
        std=std, channels_last=plan.channels_last, rank=dist.rank, world_size=dist.world_size,
        sampler=sampler,
    )  # fmt: skip
    train_batches = make_batches(train, loading, train=True)
    val_batches = None
    if val is not None:
        mean, std = normalization or stats_of(val) or (None, None)
        val_loading = replace(loading, batch_size=max(batch_size, 512), mean=mean, std=std)
        val_batches = make_batches(val, val_loading, train=False)
    num_classes, found = check_model_fits_data(
        model, train, train_batches, val=val, task=check_task(task)
    )
    measured = resolve_metrics(metrics, always=True, task=found)
    measured.check(num_classes)
    name = optimizer.lower() if isinstance(optimizer, str) else "custom"
    peak_lr = lr if lr is not None else default_lr(name, batch_size * accumulate)
    card_for_data(model, train, num_classes=num_classes, training={
        "epochs": epochs, "batch_size": batch_size * accumulate, "optimizer": name,
        "lr": peak_lr, "seed": seed, "data": getattr(train, "name", type(train).__name__),
    }, stats=normalization, task=found)  # fmt: skip
    notes: list[str] = []
    if sync_batchnorm:
        model, note = convert_sync_batchnorm(model, dist)
        notes += [note] if note else []
    plan.prepare(model)

    opt = make_optimizer(
        optimizer, model, momentum=momentum, weight_decay=weight_decay, param_groups=param_groups,
        lr=peak_lr,
    )  # fmt: skip
    steps_per_epoch = math.ceil(len(train_batches) / accumulate)
    sched = make_schedule(schedule, opt, total_steps=epochs * steps_per_epoch, warmup=warmup)
    scaler = torch.amp.GradScaler(plan.device.type, enabled=plan.needs_grad_scaler)
    run = RunState(
        model, opt, sched, scaler, plan, dist,
        callbacks=callbacks, seed=seed, num_classes=num_classes, task=found, progress=progress,
        ema=make_ema(model, averaging) if averaging is not None else None,
    )  # fmt: skip
    if saved is not None:
        restore_training_state(run, saved)
    run.history.modes = epoch_modes(measured, num_classes, validating=val_batches is not None)
    run.net = wrap_model(model, plan, dist, compile=compile)
    criterion = make_criterion(
        loss, label_smoothing=label_smoothing, class_weight=class_weight,
        labels=dataset_labels(train) if isinstance(class_weight, str) else None,
        num_classes=num_classes, device=plan.device, task=found,
    )  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    run.log(
        f"fit: {type(model).__name__} ({n_params:,} parameters) on {plan.describe()}; "
        f"{epochs} epochs x {steps_per_epoch} steps of {batch_size * accumulate}; seed {seed}"
    )
    for note in notes:
        run.log(note)
    checkpoint = Path(checkpoint_dir) / LAST_CHECKPOINT if checkpoint_dir is not None else None
    saved_epoch = run.epoch if saved is not None else None
    mixers = make_mixers(mixup, cutmix)
    partial: int | None = None  # the epoch whose weights are returned half-trained
    run.emit("on_fit_check")  # every callback may refuse the run before any writes a file
    run.emit("on_fit_start")
    try:
        while run.epoch < epochs and not run.should_stop:
            run.epoch += 1
            validate = run.epoch % val_every == 0 or run.epoch == epochs
            run.validation_skipped = val_batches is not None and not validate
            run_epoch(
                run, train_batches, val_batches if validate else None, epochs=epochs,
                criterion=criterion, mixers=mixers, accumulate=accumulate, grad_clip=grad_clip,
                val_tta=val_tta, metrics=measured,
            )  # fmt: skip
            if checkpoint is not None and dist.is_main:
                save_training_state(checkpoint, run)
                saved_epoch = run.epoch
    except BaseException as err:
        run.emit("on_exception", err)
        if not isinstance(err, KeyboardInterrupt):
            raise
        run.history.interrupted = True
        partial = _after_interruption(run, checkpoint, saved_epoch)
    finally:
        run.emit("on_fit_end")
        dist.close()
    if run.ema is not None:
        apply_average(run.ema, model)
    card = card_of(model)
    if card is not None:  # the epochs this model has now trained, after an interruption too
        training = {**card.training, "epochs": len(run.history)}
        training.pop("partial_epoch", None)
        if partial is not None:
            training["partial_epoch"] = partial
        attach_card(model, card.replace(training=training))
    return run.history


def _resume_path(resume: str | Path | bool, checkpoint_dir: str | Path | None) -> Path:
    if resume is not True:
        return Path(resume)  # type: ignore[arg-type]
    if checkpoint_dir is None:
        raise ValueError("resume=True reads checkpoint_dir/last.pt: pass checkpoint_dir too.")
    return Path(checkpoint_dir) / LAST_CHECKPOINT


def _after_interruption(
    run: RunState, checkpoint: Path | None, saved_epoch: int | None
) -> int | None:
    """Return the model to the last completed epoch, if saved; else the epoch it stopped in.

    Interrupted mid-epoch, the model holds weights that no epoch of the history describes:
    they are replaced by ``last.pt``'s, so the model, its history and the checkpoint agree.
    Without a checkpoint of that epoch the half-trained weights stay, and the number of
    the epoch they stopped in is returned (recorded as ``partial_epoch`` in the card).
    """
    done = len(run.history)
    mid_epoch = run.epoch > done
    rewound = mid_epoch and checkpoint is not None and saved_epoch == done and checkpoint.is_file()
    if rewound:
        assert checkpoint is not None
        rewind_to_saved(run, checkpoint)
    if checkpoint is not None and saved_epoch:
        where = f"; {checkpoint} holds epoch {saved_epoch}: resume=True continues from there"
    else:
        where = ""
    weights = (
        f"the weights of epoch {done} (from {checkpoint})"
        if rewound
        else f"the half-trained weights of epoch {run.epoch}"
        if mid_epoch
        else f"the weights of epoch {done}"
    )
    run.log(
        f"interrupted during epoch {run.epoch}: returning the history of {done} completed "
        f"epochs and {weights}{where}",
        always=True,
    )
    return run.epoch if mid_epoch and not rewound else None
