"""Pictures of what a model computes: first-layer filters, feature maps, Grad-CAM overlays.

All functions need the optional matplotlib (``pip install visionblocks[viz]``),
return a :class:`matplotlib.figure.Figure` and write a PNG when given ``save=path``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from visionblocks.analysis._mpl import PathLike, finish, new_figure, to_display
from visionblocks.analysis.activations import activations
from visionblocks.models import first_conv

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_feature_maps", "plot_filters", "plot_grad_cam"]


def _grid(n: int, ncols: int | None) -> tuple[int, int]:
    cols = ncols or math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def plot_filters(
    model: nn.Module | torch.Tensor,
    *,
    ncols: int | None = None,
    title: str | None = None,
    save: PathLike | None = None,
) -> Figure:
    """Show first-layer conv filters as an image grid.

    RGB filters (3 input channels) are drawn in colour, each min-max scaled on
    its own; other filters are averaged over input channels and drawn with a
    diverging colour map centred on zero (red positive, blue negative).

    Args:
        model: A model (its first :class:`~torch.nn.Conv2d` is shown) or conv weights
            ``(out, in, kH, kW)``.
        ncols: Filters per row; default a square-ish grid.
        title: Figure title; default names the layer shape.
        save: Write the figure to this path (PNG by extension).

    Returns:
        The figure.

    Example:
        >>> from visionblocks import simple_cnn
        >>> fig = plot_filters(simple_cnn())
        >>> len(fig.axes)
        36
    """
    weight = first_conv(model)[1].weight if isinstance(model, nn.Module) else model
    weight = weight.detach().float().cpu()  # (out, in, kH, kW)
    if weight.dim() != 4:
        raise ValueError(f"expected conv weights (out, in, kH, kW); got {tuple(weight.shape)}.")
    rows, cols = _grid(weight.shape[0], ncols)
    fig = new_figure(1.1 * cols, 1.1 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    colour = weight.shape[1] == 3
    limit = float(weight.abs().max()) or 1.0
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= weight.shape[0]:
            continue
        if colour:
            ax.imshow(to_display(weight[i]), interpolation="nearest")
        else:
            ax.imshow(
                weight[i].mean(0).numpy(),
                cmap="RdBu_r",
                vmin=-limit,
                vmax=limit,
                interpolation="nearest",
            )
    fig.suptitle(title or f"First-layer filters {tuple(weight.shape)}")
    return finish(fig, save)


def plot_feature_maps(
    model: nn.Module,
    image: torch.Tensor,
    layer: str | nn.Module,
    *,
    max_maps: int = 32,
    ncols: int | None = None,
    save: PathLike | None = None,
) -> Figure:
    """Show the feature maps one layer produces for one image.

    Args:
        model: The model.
        image: One input image ``(C, H, W)`` or a batch of one ``(1, C, H, W)``,
            preprocessed as the model expects.
        layer: Layer name or module whose output to show.
        max_maps: Show at most this many channels (the first ones).
        ncols: Maps per row; default a square-ish grid.
        save: Write the figure to this path.

    Returns:
        The figure, the input image first, then one panel per channel.

    Example:
        >>> from visionblocks import simple_cnn
        >>> fig = plot_feature_maps(simple_cnn(), torch.rand(3, 32, 32), "features.0", max_maps=8)
        >>> sum(ax.has_data() for ax in fig.axes)
        9
    """
    batch = image.unsqueeze(0) if image.dim() == 3 else image
    if batch.dim() != 4 or batch.shape[0] != 1:
        raise ValueError(f"expected one image (C, H, W) or (1, C, H, W); got {tuple(image.shape)}.")
    ((name, maps),) = activations(model, batch, [layer]).items()
    if maps.dim() != 4:
        raise ValueError(
            f"layer {name!r} outputs {tuple(maps.shape)}, not feature maps (B, C, h, w)."
        )
    maps = maps[0, :max_maps].float().cpu()
    rows, cols = _grid(maps.shape[0] + 1, ncols)
    fig = new_figure(1.3 * cols, 1.3 * rows + 0.4)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    shown = to_display(batch[0])
    axes[0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
    axes[0].set_title("input", fontsize=8)
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if 1 <= i <= maps.shape[0]:
            ax.imshow(maps[i - 1].numpy(), cmap="viridis")
            ax.set_title(str(i - 1), fontsize=7)
    fig.suptitle(f"Feature maps of {name!r} (first {maps.shape[0]} channels)")
    return finish(fig, save)


def plot_grad_cam(
    images: torch.Tensor | np.ndarray[Any, Any],
    cams: torch.Tensor,
    *,
    titles: list[str] | None = None,
    alpha: float = 0.45,
    save: PathLike | None = None,
) -> Figure:
    """Overlay Grad-CAM heatmaps on their images: one row per image (image | overlay).

    Args:
        images: One image ``(C, H, W)`` (tensor) or ``(H, W, C)`` (array), or a batch
            ``(B, C, H, W)``; uint8 or floats (min-max scaled for display).
        cams: Heatmaps from :func:`~visionblocks.analysis.grad_cam`, ``(H, W)`` or
            ``(B, H, W)``, resized to the image if their size differs.
        titles: One title per row (e.g. the explained class).
        alpha: Opacity of the heatmap over the image.
        save: Write the figure to this path.

    Returns:
        The figure.

    Example:
        >>> fig = plot_grad_cam(torch.rand(2, 3, 32, 32), torch.rand(2, 32, 32))
        >>> len(fig.axes)
        4
    """
    batch = list(images) if images.ndim == 4 else [images]
    heat = cams.detach().float().cpu()
    heat = heat.unsqueeze(0) if heat.dim() == 2 else heat
    if heat.shape[0] != len(batch):
        raise ValueError(f"got {len(batch)} images but {heat.shape[0]} heatmaps.")
    fig = new_figure(6.0, 3.0 * len(batch))
    axes = fig.subplots(len(batch), 2, squeeze=False)
    for row, (image, cam) in enumerate(zip(batch, heat, strict=True)):
        shown = to_display(image)
        if tuple(cam.shape) != shown.shape[:2]:
            cam = torch.nn.functional.interpolate(
                cam[None, None], size=shown.shape[:2], mode="bilinear", align_corners=False
            )[0, 0]
        gray = "gray" if shown.ndim == 2 else None
        axes[row, 0].imshow(shown, cmap=gray)
        axes[row, 1].imshow(shown, cmap=gray)
        axes[row, 1].imshow(cam.numpy(), cmap="jet", alpha=alpha, vmin=0.0, vmax=1.0)
        axes[row, 0].set_title(titles[row] if titles else "image", fontsize=9)
        axes[row, 1].set_title("Grad-CAM", fontsize=9)
        for ax in axes[row]:
            ax.set_axis_off()
    return finish(fig, save)
