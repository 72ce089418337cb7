"""Which device a name means: the one place ``"cuda"`` or ``"auto"`` is turned into a device.

It sits at the root of the package, below every layer, because the loaders
(``data``), the model inspectors (``analysis``) and training (``train``) all take a
``device=`` argument and must refuse an unavailable one with the same message,
while none of them may import another's modules upward. ``train`` re-exports
:func:`resolve_device` as its public name (``visionblocks.train.resolve_device``);
the precision plan built on top of it stays in ``train``.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

__all__ = ["CPU_FLAGS", "cpu_flags", "cpu_name", "resolve_device"]

CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
"""The CPU features that decide which kernels run: AVX2/AVX-512 for fp32, VNNI for INT8,
AVX512-BF16/AMX for bf16 (AMX also for INT8)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"`` into CUDA, then MPS, then CPU; validate anything else.

    Raises:
        ValueError: ``device`` is not a device name, or names CUDA or MPS on a machine
            that has none; the one-line message says what to pass instead.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use 'auto' or 'cpu'.")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} but this machine has {torch.cuda.device_count()} CUDA devices; "
            f"use 'cuda:0' to 'cuda:{torch.cuda.device_count() - 1}' or 'auto'."
        )
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r} but MPS is not available here; use 'auto' or 'cpu'.")
    return resolved


def cpu_flags() -> tuple[str, ...]:
    """The CPU flags that decide which kernels run, of those this CPU has (Linux only).

    AVX2 and AVX-512 for float32, VNNI for INT8, AVX512-BF16 and AMX for bf16 (and INT8).

    Example:
        >>> set(cpu_flags()) <= {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile",
        ...                      "amx_bf16", "amx_int8"}
        True
    """
    present = set(_cpuinfo().get("flags", "").split())
    return tuple(f for f in CPU_FLAGS if f in present)


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what :mod:`platform` says."""
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()
