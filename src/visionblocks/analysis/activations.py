"""Capture intermediate feature maps with forward hooks that never outlive the call.

A hook left on a model keeps every batch's feature maps alive and silently slows
training down, so hooks here live in a context manager: they are removed when the
``with`` block ends, even if the forward pass raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["activations", "capture_activations", "resolve_layer"]

LayerRef = str | nn.Module
"""A layer given by its dotted name in ``model.named_modules()`` or as the module itself."""


def resolve_layer(model: nn.Module, layer: LayerRef) -> tuple[str, nn.Module]:
    """Turn a layer name or module into ``(name, module)``.

    Raises:
        ValueError: ``layer`` is not a submodule of ``model``; the message lists close names.
        TypeError: ``layer`` is neither a string nor a module.

    Example:
        >>> from visionblocks import resnet20
        >>> resolve_layer(resnet20(), "stages.2")[1].__class__.__name__
        'Sequential'
    """
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            import difflib

            close = difflib.get_close_matches(layer, list(modules), n=3)
            raise ValueError(
                f"{type(model).__name__} has no layer named {layer!r}"
                + (f"; did you mean {', '.join(map(repr, close))}?" if close else ".")
                + " Names come from model.named_modules()."
            )
        return layer, modules[layer]
    if isinstance(layer, nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError(
            f"the {type(layer).__name__} passed as a layer is not part of "
            f"{type(model).__name__}; pass one of its submodules or a name."
        )
    raise TypeError(f"a layer must be a str name or an nn.Module; got {type(layer).__name__}.")


@contextmanager
def capture_activations(
    model: nn.Module, layers: Sequence[LayerRef] | LayerRef, *, detach: bool = True
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` during forward passes inside the ``with`` block.

    The yielded dict maps each layer name to its latest output; it is filled as
    the model runs, so a module called several times (a shared activation) keeps
    the output of its last call. With ``detach=False`` the tensors stay in the autograd graph
    (what Grad-CAM needs).

    Args:
        model: The model to watch.
        layers: Names (as in ``model.named_modules()``) or modules to record.
        detach: Store detached tensors so no graph is kept alive.

    Yields:
        ``{layer name: output tensor}``.

    Example:
        >>> from visionblocks import simple_cnn
        >>> model = simple_cnn()
        >>> with capture_activations(model, ["features.0", "features.2"]) as maps:
        ...     _ = model(torch.zeros(1, 3, 32, 32))
        >>> {name: tuple(t.shape) for name, t in maps.items()}
        {'features.0': (1, 32, 16, 16), 'features.2': (1, 128, 4, 4)}
        >>> model._forward_hooks, model.features[0]._forward_hooks  # nothing left behind
        (OrderedDict(), OrderedDict())
    """
    refs = [layers] if isinstance(layers, str | nn.Module) else list(layers)
    if not refs:
        raise ValueError("layers is empty; name at least one layer, e.g. ['features.0'].")
    resolved = [resolve_layer(model, ref) for ref in refs]
    captured: dict[str, torch.Tensor] = {}

    def make_hook(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(module: nn.Module, args: object, output: object) -> None:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {name!r} ({type(module).__name__}) returned "
                    f"{type(output).__name__}, not a tensor; pick a layer with a tensor output."
                )
            captured[name] = output.detach() if detach else output

        return hook

    handles = [module.register_forward_hook(make_hook(name)) for name, module in resolved]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def activations(
    model: nn.Module, x: torch.Tensor, layers: Sequence[LayerRef] | LayerRef
) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``x`` without gradients and return the feature maps of ``layers``.

    The model runs in eval mode (dropout off, BatchNorm running statistics) and is
    put back in its previous mode afterwards; all hooks are removed.

    Args:
        model: The model.
        x: An input batch, e.g. ``(B, C, H, W)`` images.
        layers: Names or modules whose outputs to return.

    Returns:
        ``{layer name: detached output}`` in the order the layers were given.

    Example:
        >>> from visionblocks import resnet20
        >>> maps = activations(resnet20(), torch.zeros(2, 3, 32, 32), ["stem", "stages.1"])
        >>> [tuple(t.shape) for t in maps.values()]
        [(2, 16, 32, 32), (2, 32, 16, 16)]
    """
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), capture_activations(model, layers) as captured:
            model(x)
    finally:
        model.train(was_training)
    refs = [layers] if isinstance(layers, str | nn.Module) else list(layers)
    names = [resolve_layer(model, ref)[0] for ref in refs]
    missing = [name for name in names if name not in captured]
    if missing:
        raise ValueError(f"layers {missing} did not run in the forward pass; nothing to return.")
    return {name: captured[name] for name in names}
