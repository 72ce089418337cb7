"""Deprecated call forms of the model builders, accepted with a warning for one release.

0.1 builders took the depth first (``resnet_cifar(20, num_classes=10)``) and some
per-stage arguments had family-specific names (``block_sizes``); 0.2 puts
``num_classes, in_channels`` first in every builder and names per-stage block counts
``depths`` everywhere. These wrappers keep 0.1 code running until 0.3 while saying
what to write instead. ``DeprecationWarning`` (not ``FutureWarning``): the audience is
the developer who wrote the call, not the end user of their program.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

__all__ = ["depth_first_positional", "renamed_keywords"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_REMOVAL = "0.3"


def depth_first_positional(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Read positional arguments of ``func`` in the 0.1 order ``(depth, num_classes, in_channels)``.

    Until 0.3 a positional call without ``depth=`` (``resnet_cifar(20)``,
    ``vgg_cifar(11, 100)``) means what it meant in 0.1 and warns. A call that passes
    ``depth`` by keyword cannot be a 0.1 call, so its positional arguments are read in
    the 0.2 order ``(num_classes, in_channels)``, as are keyword-only calls.
    """
    legacy_order = ("depth", "num_classes", "in_channels")
    call: Callable[..., _R] = func

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> _R:
        if args and "depth" not in kwargs:
            if len(args) > len(legacy_order):
                raise TypeError(
                    f"{func.__name__}() takes at most {len(legacy_order)} positional "
                    f"arguments; got {len(args)}. Pass options by keyword."
                )
            named = dict(zip(legacy_order, args, strict=False))
            clash = sorted(set(named) & set(kwargs))
            if clash:
                raise TypeError(f"{func.__name__}() got multiple values for {clash}.")
            form = ", ".join(f"{k}={v!r}" for k, v in named.items())
            warnings.warn(
                f"positional arguments to {func.__name__}() are read as (depth, num_classes, "
                f"in_channels), which is deprecated; from {_REMOVAL} the order is "
                f"(num_classes, in_channels, *, depth). Write {func.__name__}({form}, ...).",
                DeprecationWarning,
                stacklevel=2,
            )
            kwargs = {**named, **kwargs}
            args = ()
        return call(*args, **kwargs)

    return wrapper


def renamed_keywords(**renames: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Accept ``old=value`` keyword arguments as ``renames[old]=value``, with a warning."""

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        name = func.__qualname__.removesuffix(".__init__")

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> _R:
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(f"pass {new}= only; {old}= is its deprecated name.")
                warnings.warn(
                    f"{name}({old}=...) is deprecated and will be removed in "
                    f"{_REMOVAL}; use {new}=... (the same value).",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper

    return decorate
