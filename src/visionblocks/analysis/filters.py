"""First-layer filters: find them, and measure how much spatial structure they have.

Trained first-layer filters become smooth edge, blob and colour detectors, so
neighbouring weights in a kernel are positively correlated; freshly initialised
weights are independent draws and show no such correlation. :func:`filter_smoothness`
puts a number on it, so "the filters learned something" can be tested, not just eyeballed.
"""

from __future__ import annotations

import torch
from torch import nn

from visionblocks import models

__all__ = ["filter_smoothness"]


def _first_conv_layer(model: nn.Module) -> nn.Conv2d:
    """What 0.2's ``visionblocks.analysis.first_conv`` returned (the name is deprecated)."""
    try:
        return models.first_conv(model)[1]
    except TypeError as error:
        raise ValueError(f"{error} It has no filters to show.") from None


def filter_smoothness(weight: torch.Tensor) -> float:
    """Correlation between horizontally and vertically adjacent weights of conv kernels.

    Each kernel ``weight[o, i]`` is centred on its own mean; the result is the
    Pearson correlation over all pairs of neighbouring taps, pooled over every
    kernel. Independent random weights give about ``-1 / (k*k - 1)``, slightly
    negative because of the centring (about -0.1 for 3x3 kernels); smooth,
    structured filters give clearly positive values, up to 1.

    Args:
        weight: Conv weights ``(out_channels, in_channels, kH, kW)`` with ``kH, kW >= 2``
            in at least one direction.

    Returns:
        The pooled neighbour correlation, a float in ``[-1, 1]``.

    Raises:
        ValueError: ``weight`` is not 4-D or its kernels are 1x1.

    Example:
        >>> ramp = torch.arange(5.0)
        >>> smooth = (ramp[:, None] + ramp[None, :]).expand(4, 1, 5, 5)
        >>> round(filter_smoothness(smooth), 2)
        0.86
        >>> _ = torch.manual_seed(0)
        >>> round(filter_smoothness(torch.randn(512, 64, 3, 3)), 2)
        -0.12
    """
    if weight.dim() != 4:
        raise ValueError(
            f"expected conv weights (out, in, kH, kW); got shape {tuple(weight.shape)}."
        )
    if weight.shape[-1] < 2 and weight.shape[-2] < 2:
        raise ValueError("1x1 kernels have no spatial neighbours; pick a conv with k >= 2.")
    w = weight.detach().double()
    w = w - w.mean(dim=(-2, -1), keepdim=True)
    # Horizontally, then vertically adjacent taps: (..., kH, kW-1) and (..., kH-1, kW) pairs.
    a = torch.cat([w[..., :, :-1].flatten(), w[..., :-1, :].flatten()])
    b = torch.cat([w[..., :, 1:].flatten(), w[..., 1:, :].flatten()])
    denom = (a.square().sum() * b.square().sum()).sqrt()
    return float((a * b).sum() / denom) if denom > 0 else 0.0
