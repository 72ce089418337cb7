"""Freeze and unfreeze parts of a model, and build discriminative learning-rate groups.

Frozen BatchNorm layers stay in eval mode
----------------------------------------
Freezing a BatchNorm's weights is not enough: in training mode it still
normalises with the batch statistics and updates ``running_mean`` /
``running_var``, so a "frozen" backbone would drift towards the new data and
stop matching the weights it was trained with. The trainer calls
``model.train()`` at the start of every epoch, which sets ``training=True`` on
every submodule, so switching the layers to eval once is undone at the next
epoch. Each frozen BatchNorm therefore gets a forward pre-hook that puts it back
in eval mode right before it runs, whatever ``train()`` did in between. The hook
is a module-level function switched by a plain boolean attribute, so a frozen
model still pickles, deep-copies and exports, and :func:`unfreeze` turns it off
without touching hook handles.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from torch import nn

from visionblocks.transfer._heads import get_head

__all__ = ["freeze", "freeze_batchnorm_stats", "frozen_batchnorms", "param_groups", "unfreeze"]

_ModelT = TypeVar("_ModelT", bound=nn.Module)

_FROZEN = "_visionblocks_frozen"  # bool attribute on BatchNorm modules
_HOOKED = "_visionblocks_freeze_hook"  # set once the pre-hook is registered


def _keep_eval(module: nn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: run a frozen BatchNorm in eval mode (batch stats unused, not updated)."""
    if getattr(module, _FROZEN, False):
        module.train(False)


def _set_bn_frozen(module: nn.Module, frozen: bool, training: bool) -> None:
    if not getattr(module, _HOOKED, False):
        module.register_forward_pre_hook(_keep_eval)
        setattr(module, _HOOKED, True)
    setattr(module, _FROZEN, frozen)
    module.train(training and not frozen)


def _split(model: nn.Module, boundary: str | None) -> Iterator[tuple[str, nn.Module, bool]]:
    """Yield ``(name, module, before)`` for every module; ``before``: it precedes ``boundary``.

    Modules come in :meth:`torch.nn.Module.named_modules` pre-order, which is the
    order layers are registered in: stem first, head last, for all the models
    this package targets. ``boundary=None`` puts every module before it.
    """
    names = [name for name, _ in model.named_modules()]
    if boundary is not None and boundary not in names:
        children = ", ".join(repr(n) for n, _ in model.named_children())
        raise ValueError(
            f"{type(model).__name__} has no submodule named {boundary!r}; use a name from "
            f"model.named_modules(), e.g. one of its children: {children}."
        )
    before = True
    for name, module in model.named_modules():
        if name == boundary:
            before = False
        yield name, module, before


def freeze(model: _ModelT, *, except_head: bool = True, until: str | None = None) -> _ModelT:
    """Stop training the model's parameters, up to a given submodule.

    Frozen parameters get ``requires_grad=False`` (no gradient, no update, no
    optimizer state) and the BatchNorm layers among them are kept in eval mode
    during training so their running statistics do not change (see the module
    docstring for how this survives ``model.train()``).

    Args:
        model: The model, changed in place.
        except_head: Leave the classification head (:func:`get_head`) trainable.
        until: Name of a submodule (as in ``model.named_modules()``, e.g.
            ``"layer4"`` or ``"stages.2"``): freeze everything registered before
            it, leaving it and everything after it as it was. ``None`` freezes
            the whole model.

    Returns:
        The same ``model``, for chaining.

    Raises:
        ValueError: ``until`` is not a submodule name.

    Example:
        >>> from visionblocks import resnet20
        >>> model = freeze(resnet20())
        >>> [n for n, p in model.named_parameters() if p.requires_grad]
        ['head.weight', 'head.bias']
        >>> model = freeze(unfreeze(model), until="stages.2")
        >>> sorted({n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad})
        ['head', 'stages']
    """
    head_name = get_head(model)[0] if except_head else None
    for name, module, before in _split(model, until):
        in_head = head_name is not None and (name == head_name or name.startswith(head_name + "."))
        if not before or in_head:
            continue
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(False)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            _set_bn_frozen(module, True, training=False)
    return model


def unfreeze(model: _ModelT, *, start: str | None = None) -> _ModelT:
    """Make parameters trainable again, from a given submodule to the end.

    BatchNorm layers in the unfrozen part go back to following ``model.train()``
    / ``model.eval()``. Unfreezing from the top down, one stage at a time, is
    ULMFiT's gradual unfreezing (https://arxiv.org/abs/1801.06146).

    Args:
        model: The model, changed in place.
        start: Name of a submodule: unfreeze it and everything registered after
            it. ``None`` unfreezes the whole model.

    Returns:
        The same ``model``, for chaining.

    Raises:
        ValueError: ``start`` is not a submodule name.

    Example:
        >>> from visionblocks import resnet20
        >>> model = unfreeze(freeze(resnet20()), start="stages.2")
        >>> sorted({n[:8] for n, p in model.named_parameters() if p.requires_grad})
        ['head.bia', 'head.wei', 'stages.2']
    """
    # The root module is named "": starting there unfreezes everything.
    for _, module, before in _split(model, "" if start is None else start):
        if before:
            continue
        for parameter in module.parameters(recurse=False):
            parameter.requires_grad_(True)
        if getattr(module, _FROZEN, False):
            _set_bn_frozen(module, False, training=model.training)
    return model


def freeze_batchnorm_stats(model: _ModelT, *, enabled: bool = True) -> _ModelT:
    """Keep every BatchNorm in eval mode during training, without freezing its parameters.

    The layers then normalise with their (pretrained) running statistics and never
    update them, while their scale and shift still train. Keras recommends this
    for fine-tuning: with a small target set, batch statistics differ from the
    pretrained ones, and slow running averages (EfficientNet's BatchNorm momentum
    is 0.01) cannot catch up in a few hundred steps, so a model trained on batch
    statistics but evaluated on running ones collapses at test time.

    Args:
        model: The model, changed in place.
        enabled: ``False`` lets the BatchNorm layers follow ``train()``/``eval()`` again
            (except those of parts frozen by :func:`freeze`).

    Returns:
        The same ``model``, for chaining.

    Example:
        >>> import torch
        >>> from visionblocks import resnet20
        >>> model = freeze_batchnorm_stats(resnet20()).train()
        >>> _ = model(torch.zeros(2, 3, 32, 32))
        >>> model.stem[1].training, model.stem[1].weight.requires_grad
        (False, True)
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen_params = any(not p.requires_grad for p in module.parameters(recurse=False))
            _set_bn_frozen(module, enabled or frozen_params, training=model.training)
    return model


def frozen_batchnorms(model: nn.Module) -> list[str]:
    """Names of the BatchNorm layers that :func:`freeze` keeps in eval mode.

    Example:
        >>> from visionblocks import resnet20
        >>> len(frozen_batchnorms(freeze(resnet20(), until="stages.1")))
        7
    """
    return [name for name, m in model.named_modules() if getattr(m, _FROZEN, False)]


def param_groups(
    model: nn.Module, lr: float, backbone_lr_mult: float = 0.1
) -> list[dict[str, Any]]:
    """Split the trainable parameters into a head group and a slower backbone group.

    Pretrained features need only small corrections while the new head starts
    from random, so the backbone gets ``lr * backbone_lr_mult`` ("discriminative
    learning rates", Howard & Ruder 2018, https://arxiv.org/abs/1801.06146).
    Like :func:`visionblocks.train.fit`'s own grouping, biases and norm scales
    (1-d parameters) get ``weight_decay=0``; the other groups use the optimizer's
    weight decay. Frozen parameters are left out; empty groups are dropped.

    Args:
        model: The model.
        lr: Learning rate of the head.
        backbone_lr_mult: Factor applied to ``lr`` for every other parameter.

    Returns:
        Up to four groups, backbone first, each ``{"params": [...], "lr": ...}`` for the
        weights followed by ``{"params": [...], "lr": ..., "weight_decay": 0.0}`` for the
        biases and norm scales; ready for ``fit(param_groups=...)`` or any
        :class:`torch.optim.Optimizer`.

    Raises:
        ValueError: ``lr`` is not positive, ``backbone_lr_mult`` is negative, or no
            parameter is trainable.

    Example:
        >>> from visionblocks import resnet20
        >>> groups = param_groups(resnet20(), lr=0.1)
        >>> [(len(g["params"]), round(g["lr"], 6), g.get("weight_decay")) for g in groups]
        [(21, 0.01, None), (42, 0.01, 0.0), (1, 0.1, None), (1, 0.1, 0.0)]
    """
    if not lr > 0:
        raise ValueError(f"lr must be > 0; got {lr!r}.")
    if not backbone_lr_mult >= 0:
        raise ValueError(f"backbone_lr_mult must be >= 0; got {backbone_lr_mult!r}.")
    head_name = get_head(model)[0] + "."
    # (is head, has decay) -> parameters
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {
        (False, True): [],
        (False, False): [],
        (True, True): [],
        (True, False): [],
    }
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            buckets[(name.startswith(head_name), parameter.dim() > 1)].append(parameter)
    groups: list[dict[str, Any]] = []
    for (is_head, decay), params in buckets.items():
        if params:
            group: dict[str, Any] = {
                "params": params,
                "lr": lr if is_head else lr * backbone_lr_mult,
            }
            if not decay:
                group["weight_decay"] = 0.0
            groups.append(group)
    if not groups:
        raise ValueError(
            f"{type(model).__name__} has no trainable parameter; call unfreeze(model) or "
            f"freeze(model, except_head=True) first."
        )
    return groups
