"""Shared plumbing for the plots: lazy matplotlib import, image conversion, saving.

matplotlib is an optional dependency (the ``viz`` extra), so it is imported
inside the plotting functions only. Figures are built with
:class:`matplotlib.figure.Figure` directly rather than through ``pyplot``: no
GUI backend is touched (it works headless, as with Agg), no global figure list
keeps them alive, and Jupyter still displays a returned figure.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PathLike", "finish", "new_figure", "to_display"]

PathLike = str | os.PathLike[str]


def new_figure(width: float, height: float) -> Figure:
    """A new :class:`~matplotlib.figure.Figure` of ``width`` x ``height`` inches.

    Raises:
        ImportError: matplotlib is not installed; the message says how to get it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "visionblocks plots need matplotlib, which is optional: pip install visionblocks[viz]"
        ) from err
    return Figure(figsize=(width, height), layout="constrained")


def finish(fig: Figure, save: PathLike | None, dpi: int = 120) -> Figure:
    """Save ``fig`` as an image if ``save`` is a path, and return it."""
    if save is not None:
        fig.savefig(save, dpi=dpi)
    return fig


def to_display(image: torch.Tensor | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Turn one image into an ``(H, W)`` or ``(H, W, 3)`` float array in ``[0, 1]`` for ``imshow``.

    Accepts a tensor ``(C, H, W)`` or ``(H, W)`` and an array ``(H, W, C)`` or ``(H, W)``;
    uint8 is divided by 255, anything else (e.g. normalised floats) is min-max scaled.

    Raises:
        ValueError: the image has a shape that is not one of those.
    """
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu()
        if tensor.dim() == 3:
            tensor = tensor.permute(1, 2, 0)  # (C, H, W) -> (H, W, C)
        array = tensor.numpy()
    else:
        array = np.asarray(image)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(
            f"expected one image (C, H, W) tensor or (H, W, C) array with 1 or 3 channels; "
            f"got shape {tuple(image.shape)}."
        )
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)
