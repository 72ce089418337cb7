"""The learning-rate range test (Smith 2015, https://arxiv.org/abs/1506.01186)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from visionblocks.data import DataLike, LoaderOptions
from visionblocks.train._checks import check_data
from visionblocks.train._data import make_batches
from visionblocks.train._device import resolve_plan
from visionblocks.train._multilabel import MultilabelBCE
from visionblocks.train._optim import make_optimizer

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["LRFinderResult", "lr_find"]

_MULTILABEL = MultilabelBCE()


@dataclass(frozen=True)
class LRFinderResult:
    """The loss at each learning rate of a range test, and the suggested rate.

    Attributes:
        lrs: Learning rates tried, increasing geometrically.
        losses: Exponentially smoothed training loss at each rate.
        suggestion: The rate where the smoothed loss fell fastest (steepest slope
            against log-lr), a good peak rate for one-cycle training.

    Example:
        >>> import visionblocks as vb
        >>> model = vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
        >>> result = lr_find(model, vb.load_dataset("sample"), start_lr=1e-4, end_lr=1.0,
        ...                  num_steps=5, batch_size=100)
        >>> [f"{lr:.0e}" for lr in result.lrs], len(result.losses)
        (['1e-04', '1e-03', '1e-02', '1e-01', '1e+00'], 5)
        >>> result.suggestion in result.lrs
        True
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float

    def plot(self, save: str | Path | None = None) -> Figure:
        """Loss against learning rate on a log axis, with the suggestion marked."""
        from visionblocks.analysis import plot_lr_find  # lazy: matplotlib is optional

        figure: Figure = plot_lr_find(self.lrs, self.losses, self.suggestion, save=save)
        return figure


def lr_find(
    model: nn.Module,
    train: DataLike,
    *,
    start_lr: float = 1e-5,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 128,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    device: str | torch.device = "auto",
    precision: str = "auto",
    seed: int = 0,
) -> LRFinderResult:
    """Train for ``num_steps`` with a geometrically growing learning rate; watch the loss.

    The model's weights (and BatchNorm statistics) are restored afterwards.
    The test stops early once the smoothed loss exceeds four times its minimum. The loss
    is ``fit``'s (without label smoothing): cross-entropy, or for multi-hot targets the
    multi-label binary cross-entropy.

    Args:
        model: The classifier to probe.
        train: Training data (any kind :func:`fit` accepts).
        start_lr: First learning rate.
        end_lr: Last learning rate.
        num_steps: Number of optimizer steps (batches).
        batch_size: Images per step.
        optimizer: ``"sgd"``, ``"adamw"`` or ``"adam"``.
        momentum: SGD momentum.
        weight_decay: Weight decay.
        device: Device (``"auto"``: CUDA > MPS > CPU).
        precision: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"fp32"``.
        seed: Seed for the batch order.

    Returns:
        An :class:`LRFinderResult`.

    Example:
        >>> import visionblocks as vb
        >>> result = lr_find(vb.resnet20(in_channels=1), vb.load_dataset("sample"), num_steps=5)
        >>> len(result.lrs) <= 5 and result.lrs[0] < result.lrs[-1]
        True
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"need 0 < start_lr < end_lr; got {start_lr} and {end_lr}.")
    if num_steps < 2:
        raise ValueError(f"num_steps must be >= 2; got {num_steps}.")
    check_data(train, "training data")
    plan = resolve_plan(device, precision)
    saved = copy.deepcopy(model.state_dict())
    plan.prepare(model)
    loading = LoaderOptions(
        batch_size=batch_size, device=plan.device, channels_last=plan.channels_last, seed=seed
    )
    batches = make_batches(train, loading, train=True)
    opt = make_optimizer(
        optimizer, model, lr=start_lr, momentum=momentum, weight_decay=weight_decay
    )
    gamma = (end_lr / start_lr) ** (1 / (num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smooth, best = 0.0, math.inf
    model.train()
    step = 0
    try:
        while step < num_steps:
            for x, y in batches:
                lr = start_lr * gamma**step
                for group in opt.param_groups:
                    group["lr"] = lr
                with plan.autocast():
                    logits = model(x).float()
                    # Multi-hot (B, K) targets: fit's multi-label loss, not a softmax.
                    loss: torch.Tensor = (
                        _MULTILABEL(logits, y) if y.dim() == 2 else F.cross_entropy(logits, y)
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                # Bias-corrected exponential moving average, as in Adam.
                smooth = 0.9 * smooth + 0.1 * loss.item()
                value = smooth / (1 - 0.9 ** (step + 1))
                step += 1
                if not math.isfinite(value) or value > 4 * best:
                    step = num_steps
                    break
                best = min(best, value)
                lrs.append(lr)
                losses.append(value)
                if step >= num_steps:
                    break
    finally:
        model.load_state_dict(saved)
    return LRFinderResult(lrs, losses, _steepest(lrs, losses))


def _steepest(lrs: list[float], losses: list[float]) -> float:
    """The rate where the loss falls fastest per unit of log-lr."""
    if len(lrs) < 3:
        return lrs[len(lrs) // 2]
    logs = torch.tensor(lrs).log()
    slopes = torch.tensor(losses).diff() / logs.diff()  # (n - 1,)
    return lrs[int(slopes.argmin())]
