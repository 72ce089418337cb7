"""One registry for every model builder: :func:`create_model` and :func:`list_models`."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

__all__ = ["create_model", "list_models", "register_model"]

_Builder = TypeVar("_Builder", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: _Builder) -> _Builder:
    """Register a builder under its function name (a decorator).

    Registered builders are picked up by :func:`create_model`, the CLI and the
    registry-wide tests. The builder must accept ``num_classes`` and ``in_channels``.
    """
    name = builder.__name__
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is already registered.")
    _MODELS[name] = builder
    return builder


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style ``pattern``, sorted.

    Example:
        >>> "resnet20" in list_models("resnet*")
        True
    """
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name; keyword arguments go to its builder.

    Raises:
        ValueError: ``name`` is not registered; the message lists the closest names.

    Example:
        >>> create_model("resnet20", num_classes=5).num_classes
        5
    """
    try:
        builder = _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}."
        ) from None
    return builder(**kwargs)
