"""What the INT8 paths share: the model without its input checks, and its graph capture."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from visionblocks.models import Classifier

__all__ = ["FeaturesAndHead", "capture", "innermost_layer", "root_of"]


class FeaturesAndHead(nn.Module):
    """``forward_head(forward_features(x))``: a Classifier without its input checks.

    The checks branch on tensor shapes, which graph capture would record as guards or
    (FX tracing) cannot follow; the calibration data was checked instead.
    """

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x))


def root_of(model: nn.Module) -> nn.Module:
    """The module to capture: a Classifier's features and head, any other model as it is."""
    return FeaturesAndHead(model) if isinstance(model, Classifier) else model


@contextmanager
def innermost_layer(model: nn.Module) -> Iterator[list[str]]:
    """Yield the stack of ``model``'s submodules being run, innermost last."""
    stack: list[str] = []

    def enter(name: str) -> Any:
        return lambda module, args: stack.append(name)

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        stack.pop()

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


def capture(root: nn.Module, example: torch.Tensor, method: str) -> torch.export.ExportedProgram:
    """``torch.export`` ``root`` with a dynamic batch; a failure names the innermost layer.

    Raises:
        UnsupportedLayerError: ``root`` cannot be captured (Python control flow on
            tensor values, an op torch.export does not know).
    """
    from visionblocks.quantize import UnsupportedLayerError

    # torch.export specializes batch sizes 0 and 1, so the example has at least 2 images.
    example = example[:2] if len(example) >= 2 else example.expand(2, *example.shape[1:])
    batch = torch.export.Dim("batch", min=1)
    try:
        with innermost_layer(root) as running:
            return torch.export.export(root, (example,), dynamic_shapes=({0: batch},))
    except Exception as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        where = running[-1] if running else ""
        layer = type(root.get_submodule(where)).__name__
        if isinstance(root, FeaturesAndHead):  # name the layer as the user's model does
            where = "" if where in ("", "model") else where.removeprefix("model.")
        raise UnsupportedLayerError(
            where,
            f"method={method!r} cannot capture layer {where!r} ({layer}) with torch.export: "
            f"{type(error).__name__}: {reason} Make its forward free of Python control flow "
            f"on tensor values.",
        ) from error
