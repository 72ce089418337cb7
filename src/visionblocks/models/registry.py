"""The model registry: :func:`register_model`, :func:`get_model_builder`, :func:`create_model`.

Every model family registers a generic builder (``resnet_cifar``, ``vgg_cifar``, ...) and
its fixed-depth aliases (``resnet20``, ``vgg11_cifar``, ...). All of them take
``num_classes`` and ``in_channels`` as their first two parameters and everything else by
keyword, so the CLI and the registry-wide tests can build any of them the same way.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from visionblocks.model_file import ModelCard, attach_card, is_plain

__all__ = ["create_model", "get_model_builder", "list_models", "register_model"]

_Builder = TypeVar("_Builder", bound=Callable[..., nn.Module])
_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(builder: _Builder) -> _Builder:
    """Register a builder under its function name (a decorator).

    Registered builders are picked up by :func:`create_model`, the CLI and the
    registry-wide tests. The builder must take ``num_classes`` and ``in_channels`` as its
    first two parameters. Every model it builds carries a
    :class:`~visionblocks.model_file.ModelCard` naming the builder and the arguments it
    was called with, which is what lets a saved model be rebuilt.

    Raises:
        ValueError: A model of the same name is already registered.

    Example:
        >>> from torch import nn
        >>> from visionblocks.model_file import card_of
        >>> @register_model
        ... def tiny_linear(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        ...     return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        >>> get_model_builder("tiny_linear") is tiny_linear
        True
        >>> card_of(tiny_linear(4)).builder_kwargs
        {'num_classes': 4}
        >>> _ = _MODELS.pop("tiny_linear")  # keep the doctest from changing the registry
    """
    name = builder.__name__
    if name in _MODELS:
        raise ValueError(f"a model named {name!r} is already registered.")
    signature = inspect.signature(builder)

    @functools.wraps(builder)
    def build(*args: Any, **kwargs: Any) -> nn.Module:
        model = builder(*args, **kwargs)
        attach_card(model, _card(name, signature, args, kwargs))
        return model

    _MODELS[name] = build
    return build  # type: ignore[return-value]


def _card(
    name: str, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> ModelCard:
    """The card of a model built by ``name(*args, **kwargs)``: the arguments given, by name."""
    given: dict[str, Any] = {}
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:  # a deprecated positional form the builder translated itself
        return ModelCard()
    for key, value in bound.arguments.items():
        kind = signature.parameters[key].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            given.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            given[key] = value
    if not is_plain(given):  # a layer factory or tensor: the model cannot be rebuilt from a file
        return ModelCard()
    try:
        return ModelCard(builder=name, builder_kwargs=given)
    except ValueError:  # arguments the builder took but a card refuses (out of its bounds)
        return ModelCard()


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style ``pattern``, sorted.

    Example:
        >>> "resnet20" in list_models("resnet*")
        True
    """
    return sorted(name for name in _MODELS if fnmatch.fnmatch(name, pattern))


def get_model_builder(name: str) -> Callable[..., nn.Module]:
    """The builder registered under ``name`` (to inspect its signature or call it later).

    Raises:
        ValueError: ``name`` is not registered; the message lists the closest names.

    Example:
        >>> import inspect
        >>> list(inspect.signature(get_model_builder("resnet20")).parameters)[:2]
        ['num_classes', 'in_channels']
    """
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} Available: {', '.join(list_models())}."
        ) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model by name; keyword arguments go to its builder.

    Raises:
        ValueError: ``name`` is not registered; the message lists the closest names.
        TypeError: The builder takes no argument of one of the given names; the message
            lists the ones it takes.

    Example:
        >>> create_model("resnet20", num_classes=5).num_classes
        5
    """
    builder = get_model_builder(name)
    parameters = inspect.signature(builder).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [key for key in kwargs if key not in parameters]
    if unknown and not takes_any:
        raise TypeError(
            f"model {name!r} takes no argument {unknown[0]!r}; its arguments are "
            f"{', '.join(parameters)}."
        )
    return builder(**kwargs)
