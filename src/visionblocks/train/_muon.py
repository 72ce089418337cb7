"""``fit(optimizer="muon")``: orthogonalized momentum for conv filters, Nesterov SGD for the rest.

Muon (Keller Jordan et al., 2024, https://kellerjordan.github.io/posts/muon/; the CIFAR-10
speed record airbench94_muon) replaces each conv filter bank's momentum by the nearest
semi-orthogonal matrix before stepping: every direction of the update moves the filters
by the same amount, instead of the few directions that dominate a raw gradient. A few
Newton-Schulz iterations compute it with matrix products only.

Why it is here: in the ``fast`` recipe's 3 epochs on Fashion-MNIST it is worth 0.45-0.56
points of held-out accuracy over Nesterov SGD on the same network in the same time, which
the recipe spends on a cheaper network (docs/speed.rst, "Muon: the 3-epoch preset"). The
whole optimizer step, Newton-Schulz iterations for the recipe's six convs included, takes
about 3 ms on 2 CPU cores, against 90-110 ms for the forward and backward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from visionblocks.train._param_groups import decay_groups, nonempty_groups

__all__ = ["FILTER_LR", "FILTER_MOMENTUM", "Muon", "orthogonalize"]

# The quintic Newton-Schulz coefficients of Jordan et al.: they push every singular
# value of the (norm-scaled) input quickly into roughly [0.7, 1.2] rather than exactly 1,
# which trains as well as the exact U V^T and needs only a few iterations.
_NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)

FILTER_LR = 0.16
"""The conv filters' learning rate of :meth:`Muon.for_model` (``fit(optimizer="muon")``)."""
FILTER_MOMENTUM = 0.6
"""The conv filters' momentum of :meth:`Muon.for_model`."""


def orthogonalize(matrix: Tensor, steps: int = 3) -> Tensor:
    """An approximation of ``U @ V.T`` for ``matrix = U @ S @ V.T`` (Newton-Schulz).

    Args:
        matrix: A 2-D tensor.
        steps: Newton-Schulz iterations (3 for Muon; more bring the singular values
            closer to 1).

    Example:
        >>> g = torch.randn(16, 144)
        >>> s = torch.linalg.svdvals(orthogonalize(g, steps=10))
        >>> bool(s.min() > 0.6 and s.max() < 1.3)
        True
    """
    if matrix.dim() != 2:
        raise ValueError(f"orthogonalize needs a 2-D matrix; got shape {tuple(matrix.shape)}.")
    a, b, c = _NS_COEFFICIENTS
    x = matrix / (matrix.norm() + 1e-7)  # every singular value <= 1
    wide = x.size(0) <= x.size(1)
    if not wide:  # iterate on the smaller Gram matrix
        x = x.T
    for _ in range(steps):  # x <- a x + (b G + c G^2) x, with G = x x^T
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    result: Tensor = x if wide else x.T
    return result


class Muon(torch.optim.Optimizer):
    """Muon for conv filters and Nesterov SGD for every other parameter, in one optimizer.

    Each step, a conv filter bank ``W`` (4-D, ``(out, in, kh, kw)``) updates its momentum
    ``m = momentum * m + grad`` and moves by ``lr * orthogonalize(grad + momentum * m)``
    reshaped to ``(out, in * kh * kw)``. The step's size is thus set by ``lr`` alone, not by
    the gradient's scale. With ``normalize`` the filters are first rescaled to the norm
    ``sqrt(out)``: a BatchNorm after the conv makes the network blind to that scale, and
    fixing it keeps ``lr`` the relative size of a step all run long. Every other
    parameter (biases, norm scales, the linear head) takes a plain Nesterov SGD step
    with ``lr``, ``momentum`` and L2 ``weight_decay``.

    A param group may set ``orthogonalize`` to ``True``/``False`` to choose for its
    parameters (a ``True`` group's tensors must be at least 2-D); the default picks
    the 4-D ones.

    Args:
        params: Parameters or param groups (each group may set ``lr``, ``momentum``,
            ``weight_decay``, ``normalize`` and ``orthogonalize``).
        lr: Learning rate (for orthogonalized filters, the size of a step relative to
            the filters' norm).
        momentum: Momentum of both kinds of step (Nesterov).
        weight_decay: L2 penalty of the SGD steps (the filters' scale is fixed by
            ``normalize`` instead).
        normalize: Rescale orthogonalized filters to the norm ``sqrt(out_channels)``
            before each step (for convs followed by a normalization layer).
        ns_steps: Newton-Schulz iterations (:func:`orthogonalize`).

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
        ...                     nn.Linear(4 * 6 * 6, 2))
        >>> opt = Muon(net.parameters(), lr=0.0)  # lr 0: only the filters' rescaling
        >>> net(torch.randn(8, 1, 8, 8)).sum().backward()
        >>> opt.step()
        >>> round(float(net[0].weight.detach().norm()), 4)  # sqrt(out_channels = 4)
        2.0
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.1,
        momentum: float = 0.6,
        *,
        weight_decay: float = 0.0,
        normalize: bool = True,
        ns_steps: int = 3,
    ) -> None:
        if not lr >= 0:
            raise ValueError(f"lr must be >= 0; got {lr}.")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1); got {momentum}.")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0; got {weight_decay}.")
        if not isinstance(ns_steps, int) or ns_steps < 1:
            raise ValueError(f"ns_steps must be an int >= 1; got {ns_steps!r}.")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "normalize": normalize,
            "orthogonalize": None,  # None: the 4-D (conv filter) tensors
        }
        super().__init__(params, defaults)
        self.ns_steps = ns_steps
        for group in self.param_groups:
            if group["orthogonalize"]:
                flat = [tuple(p.shape) for p in group["params"] if p.dim() < 2]
                if flat:
                    raise ValueError(
                        f"a group with orthogonalize=True needs tensors of 2 or more "
                        f"dimensions; got shapes {flat}. Put them in a group of their own."
                    )

    @classmethod
    def for_model(
        cls,
        model: nn.Module,
        *,
        lr: float,
        momentum: float = 0.85,
        weight_decay: float = 0.0,
        filter_lr: float = FILTER_LR,
        filter_momentum: float = FILTER_MOMENTUM,
        normalize: bool = True,
    ) -> Muon:
        """Muon for ``model``'s trainable conv filters, Nesterov SGD for its other parameters.

        What ``fit(optimizer="muon", lr=..., momentum=..., weight_decay=...)`` builds:
        ``lr``, ``momentum`` and ``weight_decay`` (L2 on the non-filter weights, none on
        biases and norm scales) are those of the SGD steps, with their meaning under
        ``optimizer="sgd"``; the filters take Muon steps of ``filter_lr`` with
        ``filter_momentum`` (airbench94_muon's 0.6; the default ``filter_lr`` was tuned
        on held-out Fashion-MNIST images for the ``fast`` recipe).

        Example:
            >>> from torch import nn
            >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
            ...                     nn.Linear(4 * 6 * 6, 2))
            >>> opt = Muon.for_model(net, lr=0.4, weight_decay=1e-4)
            >>> [(len(g["params"]), g["lr"], g["orthogonalize"]) for g in opt.param_groups]
            [(1, 0.16, True), (1, 0.4, False), (4, 0.4, False)]
        """
        trainable = [p for p in model.parameters() if p.requires_grad]
        filters = [p for p in trainable if p.dim() == 4]
        rest = decay_groups((p for p in trainable if p.dim() != 4), weight_decay)
        groups = [
            {"params": filters, "lr": filter_lr, "momentum": filter_momentum,
             "orthogonalize": True},
            *({**g, "orthogonalize": False} for g in rest),
        ]  # fmt: skip
        return cls(nonempty_groups(groups), lr=lr, momentum=momentum, normalize=normalize)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Take one optimization step (``closure`` re-evaluates the loss, as in torch.optim)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum = group["lr"], group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad)
                buffer = state["momentum_buffer"]
                chosen = group["orthogonalize"]
                orthogonal = chosen if chosen is not None else p.dim() == 4
                if not orthogonal and group["weight_decay"]:
                    grad = grad.add(p, alpha=group["weight_decay"])
                buffer.mul_(momentum).add_(grad)
                update = grad.add(buffer, alpha=momentum)  # Nesterov, for both kinds
                if orthogonal:
                    if group["normalize"]:
                        p.mul_(len(p) ** 0.5 / p.norm().clamp_min(1e-12))
                    flat = update.reshape(len(update), -1).float()
                    update = orthogonalize(flat, self.ns_steps).view_as(p).to(p.dtype)
                p.add_(update, alpha=-lr)
        return loss
