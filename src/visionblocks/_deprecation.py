"""Every deprecated name and call form of visionblocks, in one table, and the one way they warn.

A deprecated name keeps working for a release with a :class:`DeprecationWarning` that
says what to use instead (``DeprecationWarning``, not ``FutureWarning``: the audience
is the developer who wrote the call, not the end user of their program). A package
that keeps deprecated names sets ``__getattr__ = deprecated_names(__name__)``; a call
form (0.1's positional order, a renamed keyword) is translated by a decorator here.
The table is also what the CHANGELOG's "Deprecated" list is tested against.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "DEPRECATIONS",
    "REMOVED_IN",
    "Deprecation",
    "deprecated_names",
    "depth_first_positional",
    "renamed_keywords",
    "warn_deprecated",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

REMOVED_IN = "0.4"
"""The release that removes everything in :data:`DEPRECATIONS`."""


@dataclass(frozen=True)
class Deprecation:
    """One deprecated name or call form.

    Attributes:
        old: What code wrote (``"visionblocks.data.PRESETS"``, ``"resnet_cifar(20, ...)"``).
        use: What to write instead, as the warning says it.
        target: For a deprecated module attribute, ``"module:attribute"`` of the object
            the old name still gives; ``None`` for a call form (a decorator translates it).
    """

    old: str
    use: str
    target: str | None = None


DEPRECATIONS: tuple[Deprecation, ...] = (
    Deprecation("visionblocks.data.PRESETS", "visionblocks.data.AUGMENT_PRESETS",
                "visionblocks.data:AUGMENT_PRESETS"),
    Deprecation("visionblocks.recipes.PRESETS", "visionblocks.recipes.RECIPE_PRESETS",
                "visionblocks.recipes:RECIPE_PRESETS"),
    Deprecation("visionblocks.train.Trainer", "visionblocks.train.RunState",
                "visionblocks.train:RunState"),
    Deprecation("visionblocks.analysis.first_conv", "visionblocks.models.first_conv(model)[1]",
                "visionblocks.analysis.filters:_first_conv_layer"),
    Deprecation("positional (depth, num_classes, in_channels) of resnet_cifar and vgg_cifar",
                "(num_classes, in_channels, *, depth=...)"),
    Deprecation("DenseNet(block_sizes=...)", "DenseNet(depths=...)"),
    Deprecation("WeightAveraging(decay, every=...)", "fit(ema=EMA(decay, every=...))"),
    Deprecation("the visionblocks_stats attribute of a model",
                "its card: attach_card(model, card.replace(mean=..., std=...))"),
)  # fmt: skip


def warn_deprecated(old: str, use: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated: one message shape for every deprecation.

    ``stacklevel`` 3 points at the caller of the function that calls this one.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_deprecated("old()", "new()", stacklevel=2)
        >>> str(caught[0].message)
        'old() is deprecated and will be removed in 0.4; use new().'
    """
    warnings.warn(
        f"{old} is deprecated and will be removed in {REMOVED_IN}; use {use}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def deprecated_names(module: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves ``module``'s deprecated names from the table.

    The object is imported only when the old name is used, so a package may name its
    own members (or a lower package's) without an import cycle.

    Example:
        >>> import warnings
        >>> getattr_ = deprecated_names("visionblocks.data")
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     "standard" in getattr_("PRESETS")
        True
    """
    prefix = module + "."
    served = {
        entry.old.removeprefix(prefix): entry
        for entry in DEPRECATIONS
        if entry.target is not None and entry.old.startswith(prefix)
    }

    def resolve(name: str) -> Any:
        entry = served.get(name)
        if entry is None or entry.target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warn_deprecated(entry.old, entry.use)
        owner, _, attribute = entry.target.partition(":")
        return getattr(importlib.import_module(owner), attribute)

    return resolve


def depth_first_positional(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Read positional arguments of ``func`` in the 0.1 order ``(depth, num_classes, in_channels)``.

    A positional call without ``depth=`` (``resnet_cifar(20)``, ``vgg_cifar(11, 100)``)
    means what it meant in 0.1 and warns. A call that passes ``depth`` by keyword cannot
    be a 0.1 call, so its positional arguments are read in the 0.2 order
    ``(num_classes, in_channels)``, as are keyword-only calls.
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
            warn_deprecated(
                f"positional arguments to {func.__name__}() read as (depth, num_classes, "
                f"in_channels)",
                f"(num_classes, in_channels, *, depth): write {func.__name__}({form}, ...)",
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
                warn_deprecated(f"{name}({old}=...)", f"{new}=... (the same value)")
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper

    return decorate
