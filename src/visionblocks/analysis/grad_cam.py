"""Grad-CAM: where in the image the network looked for a class.

Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391. For a feature map
``A`` of shape ``(B, K, h, w)`` and a class score ``y_c``, each channel gets the
weight ``alpha_k = mean_{i,j} dy_c / dA_k[i, j]``; the map is
``relu(sum_k alpha_k A_k)``, upsampled bilinearly to the input size and scaled
to ``[0, 1]`` per image (the conventions of the ``grad-cam`` package, which the
tests use as the reference).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from visionblocks.analysis.activations import LayerRef, capture_activations, resolve_layer

__all__ = ["default_target_layer", "grad_cam"]


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in module.modules())


def default_target_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM explains when none is given: the last convolutional stage.

    * visionblocks ResNets: ``model.stages[-1]``;
    * models with a ``features`` :class:`~torch.nn.Sequential` (visionblocks
      ``SimpleCNN``, torchvision VGG/DenseNet/MobileNet): ``model.features[-1]``;
    * any other module: its last child that contains a :class:`~torch.nn.Conv2d`;
      if that child is a :class:`~torch.nn.Sequential` or :class:`~torch.nn.ModuleList`,
      the last conv-containing entry of it (torchvision ResNet: ``layer4[-1]``).

    Raises:
        ValueError: ``model`` contains no :class:`~torch.nn.Conv2d`.

    Example:
        >>> from visionblocks import resnet20
        >>> model = resnet20()
        >>> default_target_layer(model) is model.stages[-1]
        True
    """
    for attr in ("stages", "features"):
        container = getattr(model, attr, None)
        if isinstance(container, nn.Sequential) and len(container) and _has_conv(container):
            return container[-1]
    if not _has_conv(model):
        raise ValueError(f"{type(model).__name__} has no nn.Conv2d; pass target_layer= explicitly.")
    last = [child for child in model.children() if _has_conv(child)][-1]
    if isinstance(last, nn.Sequential | nn.ModuleList):
        # A container of blocks (torchvision's layer4): explain its last block.
        return [child for child in last if _has_conv(child)][-1]
    return last


def _class_indices(
    class_idx: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor
) -> torch.Tensor:
    batch, num_classes = logits.shape
    if class_idx is None:
        return logits.argmax(dim=1)
    index = torch.as_tensor(class_idx, device=logits.device, dtype=torch.long).reshape(-1)
    if index.numel() == 1:
        index = index.expand(batch)
    if index.numel() != batch:
        raise ValueError(
            f"class_idx must be one int or one per image ({batch}); got {index.numel()} values."
        )
    if int(index.min()) < 0 or int(index.max()) >= num_classes:
        raise ValueError(f"class_idx must be in [0, {num_classes}); got {index.tolist()}.")
    return index


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    target_layer: LayerRef | None = None,
    class_idx: int | Sequence[int] | torch.Tensor | None = None,
    *,
    upsample: bool = True,
) -> torch.Tensor:
    """Grad-CAM heatmaps for a batch of images.

    The model runs in eval mode (and is put back afterwards); the input and the
    model's ``.grad`` fields are left untouched, and all hooks are removed.

    Args:
        model: A classifier returning ``(B, num_classes)`` logits.
        x: Images ``(B, C, H, W)``, normalised the way the model expects.
        target_layer: Layer (name or module) whose output is explained; default
            :func:`default_target_layer`, the last conv stage.
        class_idx: Class to explain: one int for the whole batch, one per image,
            or ``None`` for each image's predicted class.
        upsample: Resize the maps to ``(H, W)``; ``False`` keeps the layer's ``(h, w)``.

    Returns:
        ``(B, H, W)`` (or ``(B, h, w)``) float maps, each scaled to ``[0, 1]``.

    Raises:
        ValueError: ``x`` is not a 4-D batch, the target layer's output is not
            ``(B, K, h, w)``, or ``class_idx`` is out of range.

    Example:
        >>> from visionblocks import resnet20
        >>> _ = torch.manual_seed(0)
        >>> cam = grad_cam(resnet20(), torch.randn(2, 3, 32, 32), class_idx=[3, 5])
        >>> tuple(cam.shape), bool(cam.min() >= 0), bool(cam.max() <= 1)
        ((2, 32, 32), True, True)
    """
    if x.dim() != 4:
        raise ValueError(
            f"grad_cam needs a batch of images (B, C, H, W); got shape {tuple(x.shape)}. "
            f"Add a batch dimension with x.unsqueeze(0)."
        )
    layer = default_target_layer(model) if target_layer is None else target_layer
    name, _ = resolve_layer(model, layer)
    # The input needs a gradient so that a frozen model still builds a graph.
    inputs = x.detach().clone().requires_grad_(True)
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad(), capture_activations(model, name, detach=False) as maps:
            logits = model(inputs)
            if name not in maps:
                raise ValueError(f"target layer {name!r} did not run in the forward pass.")
            features = maps[name]  # (B, K, h, w)
            if features.dim() != 4:
                raise ValueError(
                    f"target layer {name!r} outputs shape {tuple(features.shape)}; Grad-CAM "
                    f"needs a (B, K, h, w) feature map, e.g. the last conv stage."
                )
            index = _class_indices(class_idx, logits)
            score = logits.gather(1, index[:, None]).sum()
            # autograd.grad, not backward(): no parameter .grad is written.
            (grads,) = torch.autograd.grad(score, features)
    finally:
        model.train(was_training)
    weights = grads.mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1): alpha_k
    cam = F.relu((weights * features.detach()).sum(dim=1, keepdim=True))  # (B, 1, h, w)
    if upsample:
        cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    low = cam.amin(dim=(1, 2), keepdim=True)
    span = cam.amax(dim=(1, 2), keepdim=True) - low
    # No epsilon in the division: a barely trained net can give maps of size 1e-10 that
    # would be crushed to ~0; a map that is constant (all zero after the ReLU) stays zero.
    return torch.where(span > 0, (cam - low) / span.clamp(min=torch.finfo(cam.dtype).tiny), 0.0)
