"""Putting a state dict into a model: wrapper prefixes, and one diff of the keys.

Every way weights reach a model (``load_model``, ``fit(resume=...)``, ``load_checkpoint``,
``load_weights``, ``pretrained``) goes through :func:`load_state_checked`, so a file that
does not fit says the same thing whichever door it came in by: which keys are missing,
which are unexpected, which have another shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["LoadReport", "load_state_checked", "strip_wrapper_prefixes", "unwrap_model"]

# Wrappers that prefix every key of a state dict: DistributedDataParallel and torch.compile.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
_SHOWN = 20  # keys listed in an error message before "... and N more"


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain model inside ``DistributedDataParallel`` and ``torch.compile`` wrappers.

    Example:
        >>> net = nn.Linear(2, 2)
        >>> unwrap_model(net) is net
        True
    """
    inner = getattr(model, "_orig_mod", model)
    if isinstance(inner, nn.parallel.DistributedDataParallel):
        inner = getattr(inner.module, "_orig_mod", inner.module)
    return inner


def strip_wrapper_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``module.`` / ``_orig_mod.`` key prefixes that DDP and ``torch.compile`` add.

    Example:
        >>> strip_wrapper_prefixes({"module._orig_mod.fc.weight": 1})
        {'fc.weight': 1}
    """
    state = dict(state_dict)
    changed = True
    while changed and state:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


@dataclass(frozen=True)
class LoadReport:
    """What loading a state dict did with its keys.

    Attributes:
        missing: Model keys the file did not provide (they keep their initial values).
        unexpected: File keys the model has no place for (ignored).
        reinitialized: Head keys whose shape differs from the model's (new number of
            classes): not loaded, the head keeps its fresh initialisation.

    Example:
        >>> report = load_state_checked(nn.Linear(2, 3), {"weight": torch.zeros(3, 2)},
        ...                             strict=False)
        >>> report.missing, report.unexpected, report.reinitialized
        (['bias'], [], [])
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    reinitialized: list[str] = field(default_factory=list)


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def load_state_checked(
    model: nn.Module,
    state_dict: Mapping[str, Any],
    *,
    strict: bool = True,
    head_prefix: str | None = None,
) -> LoadReport:
    """Load ``state_dict`` into ``model``, with one error that lists every key that does not fit.

    Args:
        model: The model, changed in place (DDP/compile wrappers are looked through).
        state_dict: Tensors by name; ``module.``/``_orig_mod.`` prefixes are dropped.
        strict: Raise on missing or unexpected keys. ``False`` loads what matches and
            reports the rest.
        head_prefix: Keys under this module name (``"head"``) whose shape differs are
            skipped and reported as ``reinitialized`` (a new number of classes) instead
            of raising; ``None`` treats every shape difference as an error.

    Returns:
        A :class:`LoadReport` of the keys that were not loaded.

    Raises:
        ValueError: Shapes that differ (outside ``head_prefix``), or with ``strict``
            missing or unexpected keys; the message lists them.

    Example:
        >>> load_state_checked(nn.Linear(2, 3), {"weight": torch.zeros(4, 2)})
        Traceback (most recent call last):
            ...
        ValueError: the weights do not fit Linear: shape mismatch for 1 keys: weight: file (4, 2) vs model (3, 2); missing from the file (1): bias. Check that the architecture matches, or pass strict=False to load the matching keys only.
    """  # noqa: E501  (the doctest's expected error is one long line)
    model = unwrap_model(model)
    state = strip_wrapper_prefixes(state_dict)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reinitialized, mismatched = [], []
    head = None if head_prefix is None else head_prefix.rstrip(".") + "."
    for key in own:
        if key in state and tuple(state[key].shape) != tuple(own[key].shape):
            if head is not None and key.startswith(head):
                reinitialized.append(key)
            else:
                shapes = f"file {tuple(state[key].shape)} vs model {tuple(own[key].shape)}"
                mismatched.append(f"{key}: {shapes}")
    parts = []
    if mismatched:
        parts.append(f"shape mismatch for {len(mismatched)} keys: {_listing(mismatched)}")
    if strict and missing:
        parts.append(f"missing from the file ({len(missing)}): {_listing(missing)}")
    if strict and unexpected:
        parts.append(f"unexpected in the file ({len(unexpected)}): {_listing(unexpected)}")
    if parts:
        raise ValueError(
            f"the weights do not fit {type(model).__name__}: " + "; ".join(parts) + ". Check "
            "that the architecture matches, or pass strict=False to load the matching keys only."
        )
    skip = set(reinitialized) | set(unexpected)
    with torch.no_grad():
        model.load_state_dict({k: v for k, v in state.items() if k not in skip}, strict=False)
    return LoadReport(missing=missing, unexpected=unexpected, reinitialized=reinitialized)
