"""INT8 with torch's FX graph mode (``torch.ao.quantization.quantize_fx``), deprecated by torch.

The model is traced with torch.fx, Conv+BN(+ReLU) and Linear+ReLU are fused, observers
record activation ranges on the calibration batches, and the convs/linears are swapped
for eager INT8 modules (fbgemm or oneDNN kernels) with per-channel weights. torch marks
``torch.ao.quantization`` and its quantized tensors as deprecated in favour of torchao
and says so with a :class:`DeprecationWarning` on each call; those warnings are
torch's, and are left for the caller to see.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import fx, nn

__all__ = ["check_layers", "quantize_fx"]

# Layers that hold no weights and run on quantized tensors as they are.
_PASS_THROUGH: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Identity,
    nn.Hardtanh,
)

# Element-wise activations with no INT8 kernel: each runs in float between a dequantize and
# a quantize. The float op and the two conversions are cheap next to the INT8 convs around
# them (docs/quantization.rst has the measured cost on fast_cnn, whose GELUs run this way).
_FLOAT_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.GELU, nn.SiLU)


class _NamingTracer(fx.Tracer):
    """An FX tracer that reports which submodule a tracing failure happened in."""

    def call_module(
        self,
        m: nn.Module,
        forward: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        from visionblocks.quantize import UnsupportedLayerError

        try:
            return super().call_module(m, forward, args, kwargs)
        except UnsupportedLayerError:
            raise  # already names the innermost module
        except Exception as error:
            name = self.path_of_module(m).removeprefix("model.")
            raise UnsupportedLayerError(
                name,
                f"method='fx' cannot trace layer {name!r} ({type(m).__name__}): {error}. "
                f"Graph-mode quantization needs a forward without Python control flow on "
                f"tensor values; move that logic out of the forward or into a plain torch.nn "
                f"module.",
            ) from error


def check_layers(model: nn.Module) -> None:
    """Raise :class:`UnsupportedLayerError` for the first leaf layer with no FX INT8 kernel."""
    from torch.ao.quantization.quantization_mappings import (
        get_default_static_quant_module_mappings,
    )

    from visionblocks.quantize import UnsupportedLayerError

    quantizable = tuple(
        k for k in get_default_static_quant_module_mappings() if isinstance(k, type)
    )
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue  # containers are traced through; only leaves run as one kernel
        if not type(module).__module__.startswith("torch.nn"):
            continue  # user modules are traced through as well
        if not isinstance(module, quantizable + _PASS_THROUGH + _FLOAT_ACTIVATIONS):
            raise UnsupportedLayerError(
                name,
                f"method='fx' cannot quantize layer {name!r} ({type(module).__name__}): it "
                f"has no FX INT8 kernel; method='onnxruntime' runs such layers in float "
                f"between INT8 ones.",
            )


@contextmanager
def _quantized_engine(backend: str) -> Iterator[None]:
    # Weights are packed for the engine active at conversion time; restore the user's after.
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = backend
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def quantize_fx(
    root: nn.Module, first: torch.Tensor, batches: Iterable[torch.Tensor], backend: str
) -> fx.GraphModule:
    """Trace, fuse, calibrate on ``first`` and ``batches``, and convert ``root`` (float, eval)."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    # Trace ourselves first so a failure names the layer; prepare_fx re-traces the result.
    traced = fx.GraphModule(root, _NamingTracer().trace(root))
    with _quantized_engine(backend):
        prepared = prepare_fx(traced, get_default_qconfig_mapping(backend), (first,))
        with torch.no_grad():
            prepared(first)
            for x in batches:
                prepared(x)
        return convert_fx(prepared)
