"""Post-training static INT8 quantization for CPU inference: :func:`quantize_int8`.

Three paths, chosen with ``method=``; each calibrates activation ranges on a few
hundred images, quantizes weights per output channel, and returns an
:class:`Int8Classifier` that takes and returns float tensors:

* ``"onnxruntime"`` (the default): the model is exported to ONNX and quantized by ONNX
  Runtime's ``quantize_static`` (QDQ format, uint8 activations, int8 weights); it runs
  in an ONNX Runtime session, and :meth:`Int8Classifier.save` writes that INT8 ``.onnx``
  file, which serves predictions with ``onnxruntime`` alone.
* ``"pt2e"``: torchao's PT2E flow (``X86InductorQuantizer``) compiled by
  ``torch.compile`` into oneDNN INT8 kernels, at the first call for each batch size;
  saved as a ``.pt2`` archive of the INT8 graph.
* ``"fx"``: torch's FX graph mode (``torch.ao.quantization``), eager INT8 modules.
  torch has deprecated it (its DeprecationWarning reaches the caller); it cannot be saved.

Why this default: ``benchmarks/int8_paths.py`` measured all three on ResNet-20, the lab's
simple CNN and MobileNetV2 trained on Fashion-MNIST (AMD EPYC with AVX-512 VNNI, one
thread; the table and its command are in docs/quantization.rst). Every path stayed
within a quarter of a point of fp32 accuracy on the 10,000 test images and ran 4-6x
(MobileNetV2: 11-14x) the fp32 images per second at batch 256, PT2E up to a third ahead
of ONNX Runtime there. At batch 1, the latency a deployed model answers with, ONNX
Runtime was 4-10x faster than fp32, PT2E and FX at most 2.4x (a compiled graph's and
eager INT8 modules' per-call overhead). ONNX Runtime also needs no compiler (PT2E
compiles for each new batch size, with a C++ toolchain at run time) and saves a file that
runs without torch; FX is the path torch is removing.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from visionblocks._calibration import calibration_batches, check_count, check_fits
from visionblocks._int8.capture import root_of
from visionblocks.model_file import attach_card, card_of

__all__ = [
    "METHODS",
    "Int8Classifier",
    "QuantizationBackend",
    "QuantizationMethod",
    "UnsupportedLayerError",
    "load_int8",
    "quantize_int8",
]

QuantizationMethod = Literal["onnxruntime", "pt2e", "fx"]
"""The INT8 path: ``"onnxruntime"`` (default), ``"pt2e"`` or ``"fx"`` (see the module doc)."""
METHODS: tuple[QuantizationMethod, ...] = ("onnxruntime", "pt2e", "fx")
"""Every :data:`QuantizationMethod`, the default first."""
QuantizationBackend = Literal["onednn", "x86", "fbgemm"]
"""Kernel library for ``method="fx"``'s INT8 ops; ``"onednn"`` is the fastest measured here."""

_SUFFIXES = {"onnxruntime": ".onnx", "pt2e": ".pt2"}  # the file each method saves
# The modules each method imports, and how to get them.
_REQUIREMENTS = {
    "onnxruntime": (("onnxruntime", "onnxscript", "onnx"), "pip install 'visionblocks[quant]'"),
    "pt2e": (("torchao",), "pip install 'visionblocks[quant]'"),
    "fx": (
        ("torch.ao.quantization.quantize_fx",),
        "torch removed it; use method='onnxruntime' (the default)",
    ),
}


class UnsupportedLayerError(ValueError):
    """A model cannot be quantized; :attr:`layer` names the submodule that blocks it.

    Attributes:
        layer: Dotted name of the blocking submodule (``""``: the model's own ``forward``).

    Example:
        >>> try:
        ...     quantize_int8(nn.Sequential(nn.Conv2d(1, 4, 3), nn.Mish()), torch.rand(2, 1, 8, 8),
        ...                   method="fx")
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
    no gradients flow through the INT8 kernels. It carries the float model's card, so
    :func:`~visionblocks.predict` and :func:`~visionblocks.evaluate` use it as they would
    the float model. An ONNX Runtime session runs with as many threads as
    ``torch.get_num_threads()`` gave when it was made.

    Attributes:
        runner: The module that computes the logits: an ONNX Runtime session
            (``"onnxruntime"``), a compiled graph (``"pt2e"``) or an FX graph (``"fx"``).
            The constructor also takes ``program``, the INT8 graph as exported, which
            :meth:`save` writes for ``"pt2e"``.
        method: The :data:`QuantizationMethod` that made it.
        in_channels: Expected image channels (``None`` if the float model did not say).
        num_classes: Number of logits (``None`` if the float model did not say).

    Example:
        >>> from visionblocks.models import simple_cnn
        >>> float_model = simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> int8_model = quantize_int8(float_model.eval(), torch.rand(16, 1, 28, 28))
        >>> int8_model.method, int8_model.in_channels, int8_model.num_classes
        ('onnxruntime', 1, 10)
        >>> int8_model(torch.rand(2, 1, 28, 28)).dtype  # float in, float logits out
        torch.float32
        >>> int8_model(torch.rand(2, 3, 28, 28))
        Traceback (most recent call last):
            ...
        ValueError: Int8Classifier expects float images (B, 1, H, W); got shape (2, 3, 28, 28).
    """

    def __init__(
        self,
        runner: nn.Module,
        *,
        method: QuantizationMethod,
        in_channels: int | None,
        num_classes: int | None,
        program: torch.export.ExportedProgram | None = None,
    ) -> None:
        super().__init__()
        self.runner = runner
        self.method = method
        self.in_channels = in_channels
        self.num_classes = num_classes
        self._program = program

    def train(self, mode: bool = True) -> Int8Classifier:
        """Set the ``training`` flag only: the INT8 graph has no training mode to switch.

        (torchao's converted graphs refuse ``.train()``/``.eval()``, which ``evaluate``
        and other callers of a float model's API call.)
        """
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify float images ``(B, C, H, W)`` into float ``(B, num_classes)`` logits."""
        if x.dim() != 4 or (self.in_channels is not None and x.shape[1] != self.in_channels):
            raise ValueError(
                f"Int8Classifier expects float images (B, {self.in_channels or 'C'}, H, W); "
                f"got shape {tuple(x.shape)}."
            )
        if x.device.type != "cpu":
            raise ValueError(f"INT8 kernels run on the CPU; got a tensor on {x.device}.")
        with torch.no_grad():  # PT2E's compiled INT8 kernels exist for inference only
            return self.runner(x.float())  # type: ignore[no-any-return]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the INT8 model for deployment, with the float model's card inside.

        ``method="onnxruntime"`` writes the quantized ONNX file (``*.onnx``), which runs
        in any ONNX Runtime without torch; ``method="pt2e"`` writes the INT8 graph as a
        ``torch.export`` archive (``*.pt2``), which :func:`load_int8` compiles again.
        ``method="fx"`` models cannot be saved. :func:`load_int8` reads either file.

        Returns:
            ``path``, as a :class:`~pathlib.Path`.

        Raises:
            ValueError: ``path`` does not end in the method's suffix, or the model was
                made with ``method="fx"``.

        Example:
            >>> import tempfile
            >>> from visionblocks.models import simple_cnn
            >>> float_model = simple_cnn(widths=(4, 8, 8), hidden=16)
            >>> int8 = quantize_int8(float_model, torch.rand(8, 3, 32, 32))
            >>> path = int8.save(f"{tempfile.mkdtemp()}/simple_cnn.int8.onnx")
            >>> load_int8(path)(torch.rand(2, 3, 32, 32)).shape
            torch.Size([2, 10])
        """
        from visionblocks._int8 import files

        target = Path(path)
        suffix = _SUFFIXES.get(self.method)
        if suffix is None:
            raise ValueError(
                f"an Int8Classifier made with method={self.method!r} cannot be saved (torch's "
                f"quantized tensors have no deployment file); quantize with "
                f"method='onnxruntime' and save the .onnx file."
            )
        if target.suffix != suffix:
            raise ValueError(
                f"method={self.method!r} saves a {suffix} file; name it e.g. "
                f"{target.with_suffix(suffix).name!r} (got {str(target)!r})."
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if self.method == "onnxruntime":
            files.write_onnx(target, self.runner.onnx_bytes, card_of(self))  # type: ignore[arg-type]
        else:
            assert self._program is not None  # quantize_int8 and load_int8 keep pt2e's program
            files.write_pt2(target, self._program, card_of(self))
        return target


def _missing(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:  # a parent package is missing
        return True


def _require(method: str) -> None:
    """Raise a one-line ImportError if a module ``method`` imports is missing."""
    modules, remedy = _REQUIREMENTS[method]
    missing = [m for m in modules if _missing(m)]
    if missing:
        raise ImportError(f"method={method!r} needs {', '.join(missing)}: {remedy}.")


def quantize_int8(
    model: nn.Module,
    calibration_data: torch.Tensor | Iterable[Any],
    *,
    method: QuantizationMethod = "onnxruntime",
    backend: QuantizationBackend | None = None,
    batch_size: int = 256,
    num_batches: int | None = 8,
) -> Int8Classifier:
    """Quantize a float model to INT8 for CPU inference (post-training, static).

    The input model is left untouched. Activation ranges are calibrated on
    ``calibration_data``, weights are quantized per output channel, and layers with no
    INT8 kernel run in float between INT8 ones. ``calibration_data`` is checked before
    any work: one bad input fails with a one-line message naming it.

    Args:
        model: A float model, usually a trained :class:`~visionblocks.models.Classifier`.
        calibration_data: Representative float inputs: an ``(N, C, H, W)`` tensor or an
            iterable of batches (tensors or ``(images, labels)`` pairs), normalised
            exactly as at inference. A few hundred training images suffice.
        method: The INT8 path (see :data:`QuantizationMethod` and the module doc).
        backend: ``method="fx"`` only: its kernel library (default ``"onednn"``).
        batch_size: Batch size (``>= 1``) when ``calibration_data`` is one tensor.
        num_batches: Use at most this many calibration batches (``>= 1``; ``None``: all).

    Returns:
        An :class:`Int8Classifier` taking float images and returning float logits.

    Raises:
        UnsupportedLayerError: The model cannot be quantized by ``method``; the message and
            ``error.layer`` name the layer, and the message the method that can.
        ValueError: ``calibration_data`` is empty, not 4-D, has the wrong number of
            channels or an image size the model rejects, or holds NaN/inf values;
            ``batch_size`` or ``num_batches`` is below 1; ``method`` or ``backend`` is
            unknown, or ``backend`` is given for a method other than ``"fx"``.
        TypeError: A calibration batch is not a float tensor; ``batch_size`` or
            ``num_batches`` is not an int.
        ImportError: The packages ``method`` needs are missing (``visionblocks[quant]``).

    Example:
        >>> from visionblocks.models import resnet_cifar
        >>> float_model = resnet_cifar(depth=20).eval()
        >>> int8_model = quantize_int8(float_model, torch.randn(64, 3, 32, 32))
        >>> int8_model(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}; got {method!r}.")
    if backend is not None and method != "fx":
        raise ValueError(
            f"backend={backend!r} chooses the kernels of method='fx'; method={method!r} "
            f"picks its own. Drop backend, or pass method='fx'."
        )
    fx_backend = backend or "onednn"
    if method == "fx" and fx_backend not in torch.backends.quantized.supported_engines:
        raise ValueError(
            f"backend {fx_backend!r} is not available in this torch build; choose one of "
            f"{[e for e in torch.backends.quantized.supported_engines if e != 'none']}."
        )
    check_count("batch_size", batch_size, example=256)
    check_count("num_batches", num_batches, example=8, allow_none=True)
    _require(method)
    in_channels = getattr(model, "in_channels", None)
    batches = calibration_batches(
        calibration_data,
        batch_size,
        num_batches,
        in_channels if isinstance(in_channels, int) else None,
    )
    first = next(batches)  # checks the data before any work; never empty (checked inside)
    float_model = copy.deepcopy(model).cpu().float().eval()
    check_fits(float_model, first)
    root = root_of(float_model)
    program = None
    if method == "onnxruntime":
        from visionblocks._int8.ort import quantize_onnxruntime

        runner: nn.Module = quantize_onnxruntime(root, first, batches)
    elif method == "pt2e":
        from visionblocks._int8.pt2e import quantize_pt2e

        runner, program = quantize_pt2e(root, first, batches)
    else:
        from visionblocks._int8.fx import check_layers, quantize_fx

        check_layers(float_model)
        runner = quantize_fx(root, first, batches, fx_backend)
    int8 = Int8Classifier(
        runner,
        method=method,
        in_channels=in_channels if isinstance(in_channels, int) else None,
        num_classes=getattr(model, "num_classes", None),
        program=program,
    )
    card = card_of(model)
    return int8 if card is None else attach_card(int8, card)  # type: ignore[return-value]


def load_int8(path: str | os.PathLike[str]) -> Int8Classifier:
    """Load an INT8 model written by :meth:`Int8Classifier.save` (``.onnx`` or ``.pt2``).

    An ``.onnx`` file opens in an ONNX Runtime session (with ``torch.get_num_threads()``
    threads); a ``.pt2`` archive is compiled again at its first call for each batch size.
    The card saved with the model comes back with it.

    Raises:
        ValueError: ``path`` ends in neither ``.onnx`` nor ``.pt2``.
        FileNotFoundError: ``path`` does not exist.
        ImportError: The runtime the file needs is missing (``visionblocks[quant]``).

    Example:
        >>> import tempfile
        >>> from visionblocks.models import simple_cnn
        >>> int8 = quantize_int8(simple_cnn(widths=(4, 8, 8), hidden=16), torch.rand(8, 3, 32, 32))
        >>> loaded = load_int8(int8.save(f"{tempfile.mkdtemp()}/m.onnx"))
        >>> loaded.method, loaded.in_channels, loaded.num_classes, card_of(loaded).builder
        ('onnxruntime', 3, 10, 'simple_cnn')
    """
    from visionblocks._int8 import files

    source = Path(path)
    methods = {suffix: method for method, suffix in _SUFFIXES.items()}
    method = methods.get(source.suffix)
    if method is None:
        raise ValueError(
            f"load_int8 reads the .onnx and .pt2 files Int8Classifier.save writes; got "
            f"{str(source)!r}. Load a float model file with visionblocks.load_model."
        )
    if not source.is_file():
        raise FileNotFoundError(f"no INT8 model file at {str(source)!r}.")
    _require(method)
    program = None
    if method == "onnxruntime":
        from visionblocks._int8.ort import OnnxRuntimeModule

        onnx_bytes, info = files.read_onnx(source)
        runner: nn.Module = OnnxRuntimeModule(onnx_bytes, threads=torch.get_num_threads())
    else:
        from visionblocks._int8.pt2e import Compiled

        program, info = files.read_pt2(source)
        runner = Compiled(program.module())
    int8 = Int8Classifier(
        runner,
        method=method,  # type: ignore[arg-type]
        in_channels=info.in_channels,
        num_classes=info.num_classes,
        program=program,
    )
    return int8 if info.card is None else attach_card(int8, info.card)  # type: ignore[return-value]
