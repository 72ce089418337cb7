"""``fine_tune()``: train a new head on a frozen backbone, then all of it, backbone slower.

This is fastai's ``fine_tune`` recipe (Howard & Gugger 2020,
https://arxiv.org/abs/2002.04688): while the head is random its gradients are
large and noisy, and letting them flow into the pretrained backbone destroys
features before the head has learned to use them. So the head is trained
alone first; then the whole network is trained at a tenth of that learning
rate, with the backbone at a further fraction of the head's.

Two defaults were set by measurement (``benchmarks/transfer_experiment.py
imagenet --fractions 0.01``, see ``docs/transfer.rst``): EfficientNet-Lite0
(ImageNet) on 600 Fashion-MNIST images at 32 px, batch 32, stage-1 lr 0.1, was
at 53.0% test accuracy after the frozen epoch. One unfrozen epoch at the same
learning rate with BatchNorm in training mode took it down to 12.3%; at a
tenth of it, to 38.4%; at a tenth with the BatchNorm statistics kept fixed
(:func:`freeze_batchnorm_stats`), up to 66.5%. Hence ``unfrozen_lr_mult=0.1``
and ``train_bn=False``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from visionblocks.train import History, fit
from visionblocks.transfer._freeze import freeze, freeze_batchnorm_stats, param_groups, unfreeze

__all__ = ["fine_tune"]


def fine_tune(
    model: nn.Module,
    train: Any,
    val: Any = None,
    *,
    frozen_epochs: int = 1,
    epochs: int = 3,
    until: str | None = None,
    lr: float | None = None,
    unfrozen_lr_mult: float = 0.1,
    backbone_lr_mult: float = 0.1,
    train_bn: bool = False,
    optimizer: str = "sgd",
    batch_size: int = 256,
    **fit_kwargs: Any,
) -> History:
    """Fine-tune a pretrained model: head only with the backbone frozen, then all of it.

    Stage 1 runs ``fit`` for ``frozen_epochs`` with everything but the head (or
    everything before ``until``) frozen; frozen BatchNorm layers keep their
    statistics, see :func:`freeze`.
    Stage 2 unfreezes the model and runs ``fit`` for ``epochs`` more with
    :func:`param_groups`: the head at ``lr * unfrozen_lr_mult``, the backbone at
    ``lr * unfrozen_lr_mult * backbone_lr_mult``. Each stage has its own
    learning-rate schedule.

    Args:
        model: A model with a new head (e.g. from :func:`pretrained`), changed in place.
        train: Training data, anything :func:`visionblocks.train.fit` accepts.
        val: Validation data, evaluated after every epoch of both stages.
        frozen_epochs: Epochs of stage 1 (0 skips it).
        epochs: Epochs of stage 2 (0 stops after stage 1 and leaves the backbone frozen:
            a linear probe).
        until: Stage 1 trains this submodule and everything after it, not just the
            head (see :func:`freeze`); e.g. ``"pre_logits"`` for a model whose hidden
            fully connected layers are as task-specific as its last layer.
        lr: Peak learning rate of the head in stage 1; default the trainer's (0.2 per
            256 images for SGD, 2e-3 for Adam/AdamW).
        unfrozen_lr_mult: Head learning rate of stage 2 as a fraction of ``lr``.
        backbone_lr_mult: Backbone learning rate as a fraction of the head's in stage 2.
        train_bn: Let BatchNorm layers use batch statistics and update their running
            ones in stage 2; by default they stay in eval mode (their scale and shift
            still train), which is what small target sets need (see the module notes).
        optimizer: ``"sgd"``, ``"adam"`` or ``"adamw"``.
        batch_size: Images per step.
        **fit_kwargs: Passed to both ``fit`` calls (``schedule``, ``augment``,
            ``weight_decay``, ``seed``, ``progress``, ``callbacks``, ``device``, ...).

    Returns:
        The :class:`~visionblocks.train.History` of both stages, epochs numbered
        ``1 .. frozen_epochs + epochs``; each record's ``frozen`` is 1.0 in stage 1.

    Raises:
        ValueError: Negative epochs, both zero, a non-positive learning rate, or
            ``param_groups`` in ``fit_kwargs`` (the stages build their own).

    Example:
        >>> from visionblocks.data import load_dataset, subset
        >>> from visionblocks.models import simple_cnn_bn
        >>> data = subset(load_dataset("sample"), 0.25)
        >>> model = simple_cnn_bn(num_classes=10, in_channels=1, image_size=28)
        >>> history = fine_tune(model, data, frozen_epochs=1, epochs=1, progress=False, seed=0)
        >>> history["epoch"], history["frozen"]
        ([1.0, 2.0], [1.0, 0.0])
    """
    for name, value in (("frozen_epochs", frozen_epochs), ("epochs", epochs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an int >= 0; got {value!r}.")
    if frozen_epochs + epochs == 0:
        raise ValueError("frozen_epochs and epochs are both 0: there is nothing to train.")
    if "param_groups" in fit_kwargs:
        raise ValueError(
            "fine_tune builds the parameter groups of each stage itself; set lr, "
            "unfrozen_lr_mult and backbone_lr_mult instead of param_groups."
        )
    if lr is None:
        # The trainer's default peak (visionblocks.train.fit): linear scaling for SGD.
        lr = 0.2 * batch_size / 256 if optimizer == "sgd" else 2e-3
    if not lr > 0 or not unfrozen_lr_mult > 0:
        raise ValueError(f"lr and unfrozen_lr_mult must be > 0; got {lr!r}, {unfrozen_lr_mult!r}.")
    common = {"optimizer": optimizer, "batch_size": batch_size, **fit_kwargs}
    history = History()
    if frozen_epochs:
        freeze(model, except_head=True, until=until)
        stage = fit(model, train, val, epochs=frozen_epochs, lr=lr, **common)
        _extend(history, stage, frozen=True)
        if stage.interrupted:
            history.interrupted = True
            return history
    if epochs:
        unfreeze(model)
        freeze_batchnorm_stats(model, enabled=not train_bn)
        head_lr = lr * unfrozen_lr_mult
        groups = param_groups(model, head_lr, backbone_lr_mult)
        try:
            stage = fit(model, train, val, epochs=epochs, lr=head_lr, param_groups=groups, **common)
        finally:
            freeze_batchnorm_stats(model, enabled=False)  # a normal model again afterwards
        _extend(history, stage, frozen=False)
        history.interrupted = stage.interrupted
    return history


def _extend(history: History, stage: History, *, frozen: bool) -> None:
    """Append a stage's records, numbering epochs on from the previous stage."""
    offset = len(history)
    for record in stage.records:
        history.append(
            {**record, "epoch": float(record["epoch"]) + offset, "frozen": float(frozen)}
        )
