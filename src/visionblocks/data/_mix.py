"""Batch-level MixUp and CutMix, returning soft labels.

MixUp (Zhang et al. 2018, https://arxiv.org/abs/1710.09412) blends each image
with another from the same batch; CutMix (Yun et al. 2019,
https://arxiv.org/abs/1905.04899) pastes a rectangle of the other image. Both
mix the labels in the same proportion: class indices as one-hot rows, so every soft
label row sums to 1; multi-hot ``(B, K)`` multi-label targets as they are, so each
label's target is the share of the mixed image that carries it (a label both images
have stays 1, one neither has stays 0).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["CutMix", "MixUp"]


def _source(generator: torch.Generator | None) -> torch.device | str:
    # Draw on the generator's own device (a CUDA generator cannot draw on the CPU).
    return generator.device if generator is not None else "cpu"


def _beta(alpha: float, generator: torch.Generator | None) -> float:
    # torch.distributions.Beta takes no generator; draw a NumPy seed from the torch one.
    seed = int(torch.randint(0, 2**62, (), generator=generator, device=_source(generator)))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _partner(batch: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randperm(batch, generator=generator, device=_source(generator)).to(device)


def _check(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be a float (B, C, H, W) batch; got {x.dtype} {tuple(x.shape)}.")
    if y.dim() == 1:
        if y.dtype != torch.int64 or len(y) != len(x):
            raise ValueError(
                f"y must be int64 (B,) with B={len(x)}; got {y.dtype} {tuple(y.shape)}."
            )
        return F.one_hot(y, num_classes).to(x.dtype)
    if y.shape != (len(x), num_classes):
        raise ValueError(
            f"soft or multi-hot labels must be (B, {num_classes}); got {tuple(y.shape)}."
        )
    return y.to(x.dtype)  # class probabilities or multi-hot rows, mixed as they are


class _BatchMix:
    """What MixUp and CutMix share: the alpha check, the labels, ``lam`` and the partners."""

    def __init__(self, alpha: float) -> None:
        if not isinstance(alpha, int | float) or isinstance(alpha, bool):
            raise TypeError(f"alpha must be a number > 0, e.g. 0.2; got {alpha!r}.")
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha must be a finite number > 0, e.g. 0.2; got {alpha!r}.")
        self.alpha = alpha

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        num_classes: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix a batch: ``x`` float (B, C, H, W), ``y`` int64 (B,), soft or multi-hot (B, K).

        Returns the mixed images and ``(B, K)`` targets in ``x``'s dtype: the convex
        combination of each image's and its partner's label rows (one-hot for class indices).
        """
        soft = _check(x, y, num_classes)
        lam = _beta(self.alpha, generator)
        partner = _partner(len(x), generator, x.device)
        return self._mix(x, soft, lam, partner, generator)

    def _mix(
        self,
        x: torch.Tensor,
        soft: torch.Tensor,
        lam: float,
        partner: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha})"


class MixUp(_BatchMix):
    """Blend each image and label with a random partner: ``lam * a + (1 - lam) * b``.

    ``lam ~ Beta(alpha, alpha)``, one value per batch.

    Args:
        alpha: Beta distribution parameter (0.2 is common for CIFAR; larger mixes more).

    Example:
        >>> x, y = torch.rand(8, 3, 4, 4), torch.arange(8) % 4
        >>> xm, ym = MixUp(alpha=0.4)(x, y, 4, generator=torch.Generator().manual_seed(0))
        >>> xm.shape, ym.shape, torch.allclose(ym.sum(1), torch.ones(8))
        (torch.Size([8, 3, 4, 4]), torch.Size([8, 4]), True)
        >>> tags = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])  # multi-hot, label 0 in both
        >>> _, mixed = MixUp(alpha=0.4)(x[:2], tags, 3, generator=torch.Generator().manual_seed(1))
        >>> mixed[:, 0].tolist(), torch.allclose(mixed[:, 1] + mixed[:, 2], torch.ones(2))
        ([1.0, 1.0], True)
    """

    def __init__(self, alpha: float = 0.2) -> None:
        super().__init__(alpha)

    def _mix(
        self,
        x: torch.Tensor,
        soft: torch.Tensor,
        lam: float,
        partner: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return lam * x + (1 - lam) * x[partner], lam * soft + (1 - lam) * soft[partner]


class CutMix(_BatchMix):
    """Paste a random box from a partner image; labels mix by the box's area.

    The box has area ``(1 - lam) * H * W`` with ``lam ~ Beta(alpha, alpha)``, is
    clipped at the border, and the label weight uses the clipped area.

    Args:
        alpha: Beta distribution parameter (1.0 in the paper: lam uniform).

    Example:
        >>> x, y = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
        >>> xm, ym = CutMix()(x, y, 4, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(ym.sum(1), torch.ones(8))
        True
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__(alpha)

    def _mix(
        self,
        x: torch.Tensor,
        soft: torch.Tensor,
        lam: float,
        partner: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        cut_h, cut_w = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
        centre = torch.randint(0, 2**31, (2,), generator=generator, device=_source(generator))
        cy, cx = (int(v) for v in centre)
        cy, cx = cy % h, cx % w
        top, bottom = max(cy - cut_h // 2, 0), min(cy - cut_h // 2 + cut_h, h)
        left, right = max(cx - cut_w // 2, 0), min(cx - cut_w // 2 + cut_w, w)
        mixed = x.clone()
        mixed[..., top:bottom, left:right] = x[partner][..., top:bottom, left:right]
        kept = 1 - (bottom - top) * (right - left) / (h * w)  # share of the original image
        return mixed, kept * soft + (1 - kept) * soft[partner]
