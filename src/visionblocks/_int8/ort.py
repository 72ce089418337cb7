"""INT8 with ONNX Runtime: static QDQ quantization of the exported ONNX graph.

The model is captured with ``torch.export`` (dynamic batch), written as ONNX by
PyTorch's exporter, and quantized by ``onnxruntime.quantization.quantize_static``:
activations uint8 with ranges calibrated (min/max) on the calibration batches, weights
int8 per output channel, in the QDQ format that ONNX Runtime fuses into its INT8
convolution and matmul kernels when the session is created. The result is an ONNX file
that runs wherever ``onnxruntime`` does, without torch.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionblocks._int8.capture import capture

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "OnnxRuntimeModule", "quantize_onnxruntime"]

INPUT_NAME = "images"
"""The graph's input, as in :func:`visionblocks.export`'s ONNX files."""
OUTPUT_NAME = "logits"
"""The graph's output, as in :func:`visionblocks.export`'s ONNX files."""


def _session(onnx_bytes: bytes, threads: int) -> Any:
    import onnxruntime  # type: ignore[import-untyped]

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one graph branch at a time: CNNs are chains
    return onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


class OnnxRuntimeModule(nn.Module):
    """An ONNX model run by an ONNX Runtime CPU session, as a module: tensors in, tensors out.

    Attributes:
        onnx_bytes: The serialized ONNX model.
        threads: Threads of the session (ONNX Runtime's ``intra_op_num_threads``).
    """

    def __init__(self, onnx_bytes: bytes, *, threads: int) -> None:
        super().__init__()
        self.onnx_bytes = onnx_bytes
        self.threads = threads
        self._session = _session(onnx_bytes, threads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the session on float ``(B, C, H, W)`` images; float logits ``(B, K)``."""
        images = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (logits,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: images})
        return torch.from_numpy(logits)

    def __getstate__(self) -> dict[str, Any]:
        # A session holds native handles; copies and pickles rebuild it from the bytes.
        state = self.__dict__.copy()
        del state["_session"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[no-untyped-call]
        self._session = _session(self.onnx_bytes, self.threads)


class _Batches:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over checked image batches."""

    def __init__(self, batches: Iterable[torch.Tensor]) -> None:
        self._batches: Iterator[torch.Tensor] = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch.contiguous().numpy()}


def float_onnx(root: nn.Module, example: torch.Tensor) -> bytes:
    """``root`` as an ONNX model (float32, dynamic batch), serialized."""
    program = capture(root, example, "onnxruntime")
    # The exporter reports each of its steps on stdout; a library call should be quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_program = torch.onnx.export(
            program, (), None, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME]
        )
    if onnx_program is None:  # pragma: no cover - the dynamo exporter always returns one
        raise RuntimeError("torch.onnx.export returned no program.")
    return bytes(onnx_program.model_proto.SerializeToString())


def quantize_onnxruntime(
    root: nn.Module, first: torch.Tensor, batches: Iterable[torch.Tensor]
) -> OnnxRuntimeModule:
    """Export ``root``, calibrate on ``first`` and ``batches``, quantize: a session module."""
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import (  # type: ignore[import-untyped]
        quant_pre_process,
    )

    float_model = float_onnx(root, first)
    with tempfile.TemporaryDirectory(prefix="visionblocks-int8-") as folder:
        source, target = Path(folder, "float.onnx"), Path(folder, "int8.onnx")
        # Shape inference and graph optimization (BN folded into convs) before quantizing,
        # as ONNX Runtime's quantizer asks for: each conv then gets one QDQ pair.
        Path(folder, "exported.onnx").write_bytes(float_model)
        quant_pre_process(Path(folder, "exported.onnx"), source)
        with _quiet_axis_warnings():
            quantize_static(
                source,
                target,
                _Batches(_chain(first, batches)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                # u8 activations x s8 weights: the operand types of AVX-512 VNNI's VPDPBUSD.
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
        int8_model = target.read_bytes()
    return OnnxRuntimeModule(int8_model, threads=torch.get_num_threads())


class _AxisWarningFilter(logging.Filter):
    """Drops the quantizer's "Axis 1 is out-of-range for weight ... with rank 1" warnings.

    ONNX Runtime logs one on the root logger for every 1-D weight it is asked to quantize
    per channel: the scale of a BatchNorm that no conv before it could absorb (DenseNet's
    pre-activation BNs: a wall of 40 lines). It then quantizes that tensor per tensor,
    which is right for it, so the warning tells the user nothing they can act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not ("is out-of-range for weight" in message and "with rank 1" in message)


@contextlib.contextmanager
def _quiet_axis_warnings() -> Iterator[None]:
    root, quiet = logging.getLogger(), _AxisWarningFilter()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _chain(first: torch.Tensor, rest: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    yield first
    yield from rest
