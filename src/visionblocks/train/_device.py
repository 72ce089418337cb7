"""Device and precision: resolved once, here, and nowhere else.

``fit`` and ``evaluate`` ask this module which device to use (the name itself is
resolved by :func:`resolve_device`, shared with the loaders and the analysis tools), which
autocast dtype, whether a gradient scaler is needed and whether to use the
channels-last memory format. Nothing else in visionblocks calls ``.cuda()`` or
``.half()``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from visionblocks._device import cpu_flags, resolve_device

__all__ = [
    "ExecutionPlan",
    "PrecisionName",
    "cpu_supports_bf16",
    "resolve_device",
    "resolve_plan",
]

PrecisionName = Literal["auto", "bf16", "fp16", "fp32"]
_PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@functools.cache
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX-BF16).

    Without them bf16 is emulated and slower than fp32, so ``precision="auto"``
    only picks bf16 on CPUs that have them.

    Example:
        >>> cpu_supports_bf16() == (resolve_plan("cpu").precision == "bf16")
        True
    """
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class ExecutionPlan:
    """Where and how to run: device, autocast dtype, gradient scaling, memory format.

    Attributes:
        device: The torch device.
        precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        channels_last: Whether models and inputs use the NHWC memory format.

    Example:
        >>> plan = resolve_plan("cpu", "bf16")
        >>> plan.autocast_dtype, plan.needs_grad_scaler, plan.channels_last
        (torch.bfloat16, False, True)
        >>> with plan.autocast():
        ...     logits = nn.Linear(4, 2)(torch.zeros(1, 4))
        >>> logits.dtype
        torch.bfloat16
    """

    device: torch.device
    precision: Literal["bf16", "fp16", "fp32"]
    channels_last: bool

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` for full fp32."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[self.precision]

    @property
    def needs_grad_scaler(self) -> bool:
        """Whether gradients need loss scaling (fp16, whose exponent range is narrow; not bf16)."""
        return self.precision == "fp16"

    @property
    def memory_format(self) -> torch.memory_format:
        """``torch.channels_last`` or ``torch.contiguous_format``."""
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device and memory format (in place; returned for chaining)."""
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast to the plan's dtype (a no-op for fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            yield
            return
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    def describe(self) -> str:
        """One line for the log, e.g. ``cpu, bf16 autocast, channels_last``."""
        precision = "fp32" if self.precision == "fp32" else f"{self.precision} autocast"
        layout = "channels_last" if self.channels_last else "NCHW"
        name = self.device.type
        if name == "cuda":
            name = f"cuda ({torch.cuda.get_device_name(self.device)})"
        return f"{name}, {precision}, {layout}"


def resolve_plan(
    device: str | torch.device = "auto",
    precision: str = "auto",
    channels_last: bool | Literal["auto"] = "auto",
) -> ExecutionPlan:
    """Resolve device, precision and memory format in one place.

    ``precision="auto"``: bf16 autocast on CUDA GPUs that support it and on CPUs
    with native bf16 instructions, fp16 with a gradient scaler on older GPUs,
    fp32 otherwise. ``channels_last="auto"``: on wherever reduced precision is
    used (the NHWC kernels of oneDNN and cuDNN are the fast ones for bf16/fp16).

    Example:
        >>> resolve_plan("cpu", "fp32").describe()
        'cpu, fp32, NCHW'
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(_PRECISIONS)}.")
    dev = resolve_device(device)
    chosen: Literal["bf16", "fp16", "fp32"]
    if precision == "auto":
        if dev.type == "cuda":
            chosen = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif dev.type == "cpu":
            chosen = "bf16" if cpu_supports_bf16() else "fp32"
        else:
            chosen = "fp32"
    else:
        chosen = precision  # type: ignore[assignment]
    if chosen == "fp16" and dev.type == "cpu":
        raise ValueError("precision='fp16' is not supported on the CPU; use 'bf16' or 'fp32'.")
    if channels_last == "auto":
        use_cl = chosen != "fp32" and dev.type in ("cpu", "cuda")
    elif isinstance(channels_last, bool):
        use_cl = channels_last
    else:
        raise ValueError(f"channels_last must be True, False or 'auto'; got {channels_last!r}.")
    return ExecutionPlan(dev, chosen, use_cl)
