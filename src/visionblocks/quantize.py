"""Post-training static INT8 quantization for CPU inference: :func:`quantize_int8`.

The model is traced with torch.fx, Conv+BN(+ReLU) and Linear+ReLU are fused,
observers record activation ranges on a few calibration batches, and the
convs/linears are swapped for INT8 kernels with per-channel weights.

Why this path: ``benchmarks/bench_quantize.py`` on the development machine (AMD
EPYC, AVX-512 VNNI and BF16, no AMX) measured oneDNN's INT8 kernels 1.9-2.1x
faster per CPU-second than fbgemm's for ResNet-20 and the lab CNN (PyTorch's
``"x86"`` backend picks oneDNN's kernels on VNNI CPUs, fbgemm's otherwise).
torchao's PT2E flow (``X86InductorQuantizer``) reached about the same speed in
a quick check, but only through ``torch.compile``: an extra package, ~20 s of
compilation per model and input shape and a C++ toolchain at run time, whereas
FX graph mode runs eagerly with torch alone. torch marks ``torch.ao.quantization``
as deprecated in favour of torchao; its warnings are silenced here and the
choice is revisited when the FX flow is removed (see docs/quantization.rst).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import torch
from torch import fx, nn

from visionblocks._calibration import calibration_batches, check_count, check_fits
from visionblocks.models import Classifier

__all__ = ["Int8Classifier", "QuantizationBackend", "UnsupportedLayerError", "quantize_int8"]

QuantizationBackend = Literal["onednn", "x86", "fbgemm"]
"""Kernel library for the INT8 ops; ``"onednn"`` is the fastest measured here."""

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


class UnsupportedLayerError(ValueError):
    """A model cannot be quantized; :attr:`layer` names the submodule that blocks it.

    Attributes:
        layer: Dotted name of the blocking submodule (``""``: the model's own ``forward``).

    Example:
        >>> try:
        ...     quantize_int8(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Mish()), torch.rand(2, 1, 8, 8))
        ... except UnsupportedLayerError as error:
        ...     print(repr(error.layer), isinstance(error, ValueError))
        '1' True
    """

    def __init__(self, layer: str, message: str) -> None:
        super().__init__(message)
        self.layer = layer


class Int8Classifier(nn.Module):
    """An INT8 model for CPU inference, as returned by :func:`quantize_int8`.

    Takes float images ``(B, C, H, W)`` normalised like the float model's inputs and
    returns float logits; quantization of the input happens inside. Inference only:
    no gradients flow through the INT8 kernels.

    Attributes:
        graph_module: The converted :class:`torch.fx.GraphModule`.
        backend: The kernel library the weights were packed for.
        in_channels: Expected image channels (``None`` if the float model did not say).
        num_classes: Number of logits (``None`` if the float model did not say).

    Example:
        >>> from visionblocks.models import simple_cnn
        >>> float_model = simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> int8_model = quantize_int8(float_model.eval(), torch.rand(16, 1, 28, 28))
        >>> int8_model.backend, int8_model.in_channels, int8_model.num_classes
        ('onednn', 1, 10)
        >>> int8_model(torch.rand(2, 1, 28, 28)).dtype  # float in, float logits out
        torch.float32
        >>> int8_model(torch.rand(2, 3, 28, 28))
        Traceback (most recent call last):
            ...
        ValueError: Int8Classifier expects float images (B, 1, H, W); got shape (2, 3, 28, 28).
    """

    def __init__(
        self,
        graph_module: torch.fx.GraphModule,
        *,
        backend: QuantizationBackend,
        in_channels: int | None,
        num_classes: int | None,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.backend = backend
        self.in_channels = in_channels
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify float images ``(B, C, H, W)`` into float ``(B, num_classes)`` logits."""
        if x.dim() != 4 or (self.in_channels is not None and x.shape[1] != self.in_channels):
            raise ValueError(
                f"Int8Classifier expects float images (B, {self.in_channels or 'C'}, H, W); "
                f"got shape {tuple(x.shape)}."
            )
        if x.device.type != "cpu":
            raise ValueError(f"INT8 kernels run on the CPU; got a tensor on {x.device}.")
        return self.graph_module(x.float())  # type: ignore[no-any-return]


class _FeaturesAndHead(nn.Module):
    """``forward_head(forward_features(x))``: a Classifier without its input checks.

    The checks branch on tensor shapes, which symbolic tracing cannot follow.
    """

    def __init__(self, model: Classifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x))


class _NamingTracer(fx.Tracer):
    """An FX tracer that reports which submodule a tracing failure happened in."""

    def call_module(
        self,
        m: nn.Module,
        forward: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except UnsupportedLayerError:
            raise  # already names the innermost module
        except Exception as error:
            name = self.path_of_module(m)
            raise UnsupportedLayerError(
                name,
                f"quantize_int8 cannot trace layer {name!r} ({type(m).__name__}): {error}. "
                f"Graph-mode quantization needs a forward without Python control flow on "
                f"tensor values; move that logic out of the forward or into a plain torch.nn "
                f"module.",
            ) from error


def _check_layers(model: nn.Module) -> None:
    """Raise :class:`UnsupportedLayerError` for the first leaf layer with no INT8 kernel."""
    from torch.ao.quantization.quantization_mappings import (
        get_default_static_quant_module_mappings,
    )

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
                f"quantize_int8 cannot quantize layer {name!r} ({type(module).__name__}): "
                f"there is no static INT8 kernel for it. Replace it (e.g. Mish -> ReLU, "
                f"ConvTranspose2d is supported, LSTM is not) or quantize the layers before "
                f"it only.",
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


def quantize_int8(
    model: nn.Module,
    calibration_data: torch.Tensor | Iterable[Any],
    *,
    backend: QuantizationBackend = "onednn",
    batch_size: int = 256,
    num_batches: int | None = 8,
) -> Int8Classifier:
    """Quantize a float model to INT8 for CPU inference (post-training, static).

    The input model is left untouched. Conv+BN(+ReLU) and Linear+ReLU are fused,
    activation ranges are calibrated with a histogram observer on
    ``calibration_data``, weights are quantized per output channel. GELU and SiLU,
    which have no INT8 kernel, run in float between a dequantize and a quantize.
    ``calibration_data`` is checked before any work: one bad input fails with a
    one-line message naming it.

    Args:
        model: A float model, usually a trained :class:`~visionblocks.models.Classifier`.
        calibration_data: Representative float inputs: an ``(N, C, H, W)`` tensor or an
            iterable of batches (tensors or ``(images, labels)`` pairs), normalised
            exactly as at inference. A few hundred training images suffice.
        backend: INT8 kernel library (see :data:`QuantizationBackend`).
        batch_size: Batch size (``>= 1``) when ``calibration_data`` is one tensor.
        num_batches: Use at most this many calibration batches (``>= 1``; ``None``: all).

    Returns:
        An :class:`Int8Classifier` taking float images and returning float logits.

    Raises:
        UnsupportedLayerError: A layer has no INT8 kernel or cannot be traced; the
            message and ``error.layer`` name it.
        ValueError: ``calibration_data`` is empty, not 4-D, has the wrong number of
            channels or an image size the model rejects, or holds NaN/inf values;
            ``batch_size`` or ``num_batches`` is below 1; ``backend`` is unknown.
        TypeError: A calibration batch is not a float tensor; ``batch_size`` or
            ``num_batches`` is not an int.

    Example:
        >>> from visionblocks.models import resnet_cifar
        >>> float_model = resnet_cifar(depth=20).eval()
        >>> int8_model = quantize_int8(float_model, torch.randn(64, 3, 32, 32))
        >>> int8_model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
        >>> quantize_int8(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Mish()), torch.randn(2, 3, 8, 8))
        Traceback (most recent call last):
            ...
        visionblocks.quantize.UnsupportedLayerError: quantize_int8 cannot quantize layer '1' (Mish): there is no static INT8 kernel for it. ...
    """  # noqa: E501  (the doctest's expected traceback is one long line)
    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"backend {backend!r} is not available in this torch build; choose one of "
            f"{[e for e in torch.backends.quantized.supported_engines if e != 'none']}."
        )
    check_count("batch_size", batch_size, example=256)
    check_count("num_batches", num_batches, example=8, allow_none=True)
    in_channels = getattr(model, "in_channels", None)
    batches = calibration_batches(
        calibration_data,
        batch_size,
        num_batches,
        in_channels if isinstance(in_channels, int) else None,
    )
    first = next(batches)  # checks the data before any work; never empty (checked inside)
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    float_model = copy.deepcopy(model).cpu().eval()
    check_fits(float_model, first)
    _check_layers(float_model)
    root: nn.Module = (
        _FeaturesAndHead(float_model) if isinstance(float_model, Classifier) else float_model
    )
    # Trace ourselves first so a failure names the layer; prepare_fx re-traces the result.
    traced = fx.GraphModule(root, _NamingTracer().trace(root))
    with warnings.catch_warnings(), _quantized_engine(backend):
        # torch.ao.quantization announces its move to torchao on every call; see the module doc.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated.*")
        prepared = prepare_fx(traced, get_default_qconfig_mapping(backend), (first,))
        with torch.no_grad():
            prepared(first)
            for x in batches:
                prepared(x)
        converted = convert_fx(prepared)
    return Int8Classifier(
        converted,
        backend=backend,
        in_channels=getattr(model, "in_channels", None),
        num_classes=getattr(model, "num_classes", None),
    )
