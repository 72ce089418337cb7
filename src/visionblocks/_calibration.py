"""Calibration data for :func:`~visionblocks.quantize.quantize_int8`, checked before use.

Checked here so that bad calibration data fails with a one-line message before it
reaches the model, not as a conv shape error or a ``torch.histc`` range error inside an
observer.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = ["calibration_batches", "check_count", "check_fits", "check_images"]


def check_count(name: str, value: object, *, example: int, allow_none: bool = False) -> None:
    """Raise a one-line error unless ``value`` is an ``int >= 1`` (or ``None`` if allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        accepted = "an int >= 1 or None" if allow_none else "an int >= 1"
        raise TypeError(f"{name} must be {accepted}; got {value!r} ({type(value).__name__}).")
    if value < 1:
        raise ValueError(f"{name} must be >= 1; got {value}. Use e.g. {name}={example}.")


def check_images(x: object, where: str, in_channels: int | None) -> torch.Tensor:
    """Return ``x`` as a float CPU tensor, or raise a one-line error naming ``where``.

    Checked here so bad calibration data fails with our message before it reaches the
    model, not as a conv shape error or a ``torch.histc`` range error inside an observer.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(
            f"{where} must be float image tensors (B, C, H, W), normalised as for inference; "
            f"got {kind}. Convert uint8 images with x.float() / 255 and the dataset's "
            f"normalisation first."
        )
    if x.dim() != 4:
        raise ValueError(
            f"{where} must be a 4-D (B, C, H, W) tensor; got shape {tuple(x.shape)}. "
            f"Stack single (C, H, W) images into batches with torch.stack(images)."
        )
    if in_channels is not None and x.shape[1] != in_channels:
        raise ValueError(
            f"{where} holds {x.shape[1]}-channel images (shape {tuple(x.shape)}) but the model "
            f"takes in_channels={in_channels}; pass images shaped like its inputs, "
            f"(B, {in_channels}, H, W)."
        )
    bad = int((~torch.isfinite(x).flatten(1).all(1)).sum()) if x.numel() else 0
    if bad:
        raise ValueError(
            f"{where} contains NaN or infinite values in {bad} of {len(x)} images; drop them "
            f"(e.g. x[torch.isfinite(x).flatten(1).all(1)]) or fix their preprocessing."
        )
    return x.detach().cpu().float()


def calibration_batches(
    data: torch.Tensor | Iterable[Any],
    batch_size: int,
    num_batches: int | None,
    in_channels: int | None,
) -> Iterator[torch.Tensor]:
    """Yield checked float image batches from a tensor or an iterable of tensors/``(x, y)`` pairs.

    A tensor is checked whole before the first batch is yielded; batches of an iterable
    (possibly a loader reading from disk) are checked one by one as they arrive.
    """
    if isinstance(data, torch.Tensor):
        if data.dim() != 4:
            hint = " Add a batch dimension with x.unsqueeze(0)." if data.dim() == 3 else ""
            raise ValueError(
                f"calibration_data must be a 4-D (N, C, H, W) tensor of images; got shape "
                f"{tuple(data.shape)}.{hint}"
            )
        if len(data) == 0:
            raise ValueError(
                f"calibration_data is empty (shape {tuple(data.shape)}); pass a few hundred "
                f"representative images."
            )
        used = data if num_batches is None else data[: batch_size * num_batches]
        yield from torch.split(check_images(used, "calibration_data", in_channels), batch_size)
        return
    if not isinstance(data, Iterable):
        raise TypeError(
            f"calibration_data must be an (N, C, H, W) tensor or an iterable of image batches; "
            f"got {type(data).__name__}."
        )
    seen = 0
    for index, item in enumerate(data):
        if num_batches is not None and index >= num_batches:
            break
        x = item[0] if isinstance(item, tuple | list) else item
        x = check_images(x, f"calibration_data batch {index}", in_channels)
        if len(x) == 0:
            continue  # an empty batch calibrates nothing; all of them empty is an error below
        seen += len(x)
        yield x
    if seen == 0:
        raise ValueError(
            "calibration_data is empty (it holds no images); pass a few hundred "
            "representative images."
        )


def check_fits(model: nn.Module, first: torch.Tensor) -> None:
    """Run one calibration image through the float model; a mismatch names ``calibration_data``.

    Catches what the per-batch checks cannot know, such as an image size the model's
    layers do not accept, before tracing and calibration start.
    """
    try:
        with torch.no_grad():
            model(first[:1])
    except (ValueError, TypeError, RuntimeError) as error:
        lines = str(error).strip().splitlines() or [type(error).__name__]
        reason = lines[0].rstrip(".")
        raise ValueError(
            f"calibration_data images of shape {tuple(first.shape[1:])} do not fit the model "
            f"({reason}); pass images shaped and normalised like the model's inputs."
        ) from error
