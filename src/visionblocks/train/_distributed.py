"""DistributedDataParallel under ``torchrun``: the process group, model checks, metric reduction.

``fit`` joins the process group ``torchrun`` describes and leaves it up when it
returns: ``evaluate`` and a second ``fit`` in the same script (``fine_tune`` runs two)
then use the same group, instead of tearing it down and rendezvousing again. The
group is destroyed when the interpreter exits.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from visionblocks.train._device import ExecutionPlan, resolve_plan

__all__ = [
    "DistContext",
    "GlooSyncBatchNorm",
    "all_gather_shards",
    "all_reduce_sum",
    "check_same_model",
    "convert_sync_batchnorm",
    "current_context",
    "place_eval",
    "place_run",
    "setup_distributed",
    "wrap_model",
]


@dataclass(frozen=True)
class DistContext:
    """This process's place in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """More than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints and writes files."""
        return self.rank == 0

    def close(self) -> None:
        """End a run's use of the group; the group itself stays up until the interpreter exits.

        Destroying it here would make the next ``fit`` or ``evaluate`` of the same
        script rendezvous again (or, for ``evaluate``, silently run unsharded).
        """


def _destroy_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current_context() -> DistContext:
    """The process group this process already belongs to (single-process if none).

    ``evaluate`` uses it: it shards and reduces under an initialized group, and never
    creates one.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return DistContext()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank)


def setup_distributed(device_type: str) -> DistContext:
    """Join the process group ``torchrun`` describes in the environment, if any.

    ``torchrun --nproc_per_node=N`` sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``;
    without them (or with ``WORLD_SIZE=1``) training is single-process. The backend
    is NCCL on CUDA and gloo on the CPU. A group that already exists (made by the
    user, or by an earlier ``fit``) is used as it is.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
        atexit.register(_destroy_group)
        owns = True
    return DistContext(rank, world_size, local_rank, owns)


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over all processes (identity in a single-process run)."""
    if ctx.enabled:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_gather_shards(values: torch.Tensor, size: int, ctx: DistContext) -> torch.Tensor:
    """Reassemble ``(n_r, ...)`` per-rank values of a round-robin shard into ``(size, ...)``.

    Rank ``r`` holds the values of items ``r, r + W, r + 2W, ...`` (as
    :func:`~visionblocks.train._data.eval_shard` deals them); the result is in item order.
    """
    if not ctx.enabled:
        return values
    longest = -(-size // ctx.world_size)  # ceil: rank 0's shard
    padded = values.new_zeros((longest, *values.shape[1:]))
    padded[: len(values)] = values
    parts = [torch.empty_like(padded) for _ in range(ctx.world_size)]
    dist.all_gather(parts, padded)
    out = values.new_empty((size, *values.shape[1:]))
    for rank, part in enumerate(parts):
        count = len(range(rank, size, ctx.world_size))
        out[rank :: ctx.world_size] = part[:count]
    return out


def place_run(
    device: str | torch.device, precision: str, channels_last: bool | Literal["auto"] = "auto"
) -> tuple[ExecutionPlan, DistContext]:
    """Resolve the execution plan and join the process group, if ``torchrun`` started us.

    Under DDP on CUDA each process uses the GPU of its ``LOCAL_RANK``.
    """
    plan = resolve_plan(device, precision, channels_last)
    ctx = setup_distributed(plan.device.type)
    return _on_local_gpu(plan, ctx), ctx


def _on_local_gpu(plan: ExecutionPlan, ctx: DistContext) -> ExecutionPlan:
    if ctx.enabled and plan.device.type == "cuda":
        return dataclasses.replace(plan, device=torch.device("cuda", ctx.local_rank))
    return plan


def place_eval(device: str | torch.device, precision: str) -> tuple[ExecutionPlan, DistContext]:
    """Like :func:`place_run`, but only joins a group that already exists."""
    ctx = current_context()
    return _on_local_gpu(resolve_plan(device, precision), ctx), ctx


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes, differentiable: the gradient of a sum is the sum of gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlooSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose batch statistics are those of all processes, for CPU (gloo) runs.

    ``nn.SyncBatchNorm`` runs only on GPUs (DDP refuses it on the CPU). Here the batch
    mean and variance are summed over the processes with differentiable all-reduces
    (two per layer: the mean first, then the centred squares, more accurate than one pass
    over ``x`` and ``x**2``); gradients flow back through them as in torch's CUDA kernel.
    Outside a multi-process group, or in eval mode, it is plain BatchNorm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected (N, C, ...) input; got shape {tuple(input.shape)}.")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        syncing = self.training and dist.is_initialized() and dist.get_world_size() > 1
        if not syncing:
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        return self._synced_batch_norm(input, factor)

    def _synced_batch_norm(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        all_reduce = _AllReduceSum.apply
        dims = [0, *range(2, x.dim())]  # all but the channels of (N, C, ...)
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_tensor([x.numel() // x.shape[1]])
        sums: torch.Tensor = all_reduce(torch.cat([x.sum(dims), count]))
        total = sums[-1]
        mean = sums[:-1] / total  # (C,)
        centred = x - mean.view(shape)
        squares: torch.Tensor = all_reduce((centred * centred).sum(dims))
        var = squares / total  # biased, (C,)
        if self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                unbiased = var * total / (total - 1).clamp(min=1)
                self.running_mean.lerp_(mean, factor)
                self.running_var.lerp_(unbiased, factor)
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None and self.bias is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(model: nn.Module, ctx: DistContext) -> tuple[nn.Module, str | None]:
    """BatchNorm -> synchronized BatchNorm under DDP; returns the model and a note, if any.

    Synchronized BatchNorm computes the batch statistics over the batches of all
    processes, which matters when each process's batch is small: ``nn.SyncBatchNorm``
    under NCCL (GPUs), :class:`GlooSyncBatchNorm` under gloo (CPUs). Conversion keeps the
    weights; a model already converted (a second ``fit``, as in ``fine_tune``) is left
    as it is.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model, "sync_batchnorm=True: the model has no BatchNorm layer; nothing to convert."
    if not ctx.enabled:
        return model, "sync_batchnorm=True has no effect in a single-process run."
    if dist.get_backend() == "nccl":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model), None  # type: ignore[no-untyped-call]
    for norm in norms:
        # In place, unlike torch's converter, so hooks on the layer (frozen statistics,
        # see visionblocks.transfer.freeze) survive; the two classes share every attribute.
        norm.__class__ = GlooSyncBatchNorm
    return model, None


def check_same_model(model: nn.Module, plan: ExecutionPlan, ctx: DistContext) -> None:
    """Raise on every rank if the ranks hold models of different sizes.

    Checked here, before DDP's own shape check, which fails deep in its constructor with
    a many-line message (or, for some mismatches, hangs).
    """
    if not ctx.enabled:
        return
    count = torch.tensor([sum(p.numel() for p in model.parameters())], device=plan.device)
    counts = [torch.empty_like(count) for _ in range(ctx.world_size)]
    dist.all_gather(counts, count)
    values = [int(c) for c in counts]
    if len(set(values)) > 1:
        other = next(r for r, v in enumerate(values) if v != values[0])
        raise ValueError(
            f"the processes hold different models: rank 0 has {values[0]:,} parameters, rank "
            f"{other} has {values[other]:,}; build the same model on every rank."
        )


def wrap_model(
    model: nn.Module, plan: ExecutionPlan, ctx: DistContext, *, compile: bool
) -> nn.Module:
    """What the training step calls: ``model``, compiled and/or wrapped in DDP as asked."""
    check_same_model(model, plan, ctx)
    net: nn.Module = torch.compile(model) if compile else model  # type: ignore[assignment]
    if ctx.enabled:
        ids = [plan.device.index] if plan.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
    return net
