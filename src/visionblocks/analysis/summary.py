"""A per-layer model summary: output shapes, parameters and FLOPs (the lab's first debugging tip).

Every module call is recorded by forward hooks in the order the calls *start*, so
the table reads top to bottom like the network and a module used twice appears
twice. FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which
counts a multiply-add as 2 FLOPs; a row's FLOPs are everything that ran while
that module was executing, its children included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from visionblocks._device import resolve_device

__all__ = ["LayerSummary", "ModelSummary", "summary"]


@dataclass(frozen=True)
class LayerSummary:
    """One module call in a :class:`ModelSummary`.

    Attributes:
        name: Dotted module path inside the model (``"stages.0.1.body.0"``).
        type: Class name of the module (``"Conv2d"``).
        depth: Nesting depth; direct children of the model have depth 1.
        output_shape: Shape of the (first tensor of the) output, ``None`` if there is none.
        num_params: Parameters of the module and its children.
        trainable_params: The part of ``num_params`` with ``requires_grad=True``.
        flops: Floating-point operations of this call, children included.
        is_leaf: The module has no children.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        >>> _ = net[0].weight.requires_grad_(False)  # freeze the kernels, train the bias
        >>> conv = summary(net, (1, 28, 28)).layers[0]
        >>> conv.name, conv.type, conv.output_shape, conv.num_params, conv.frozen_params
        ('0', 'Conv2d', (1, 4, 28, 28), 40, 36)
        >>> conv.flops == 2 * (3 * 3) * 4 * 28 * 28  # 2 FLOPs per multiply-add
        True
    """

    name: str
    type: str
    depth: int
    output_shape: tuple[int, ...] | None
    num_params: int
    trainable_params: int
    flops: int
    is_leaf: bool

    @property
    def frozen_params(self) -> int:
        """Parameters of this module that do not require gradients."""
        return self.num_params - self.trainable_params


@dataclass(frozen=True)
class ModelSummary:
    """What :func:`summary` returns: the per-call rows and the totals.

    ``str(summary)`` is the printable table (rows up to ``max_depth``, default all).

    Attributes:
        model_name: Class name of the model.
        input_shape: Shape of the input the model was run on, batch included.
        output_shape: Shape of the model's output.
        layers: One row per module call, in call order.
        total_params: Parameters of the model (shared parameters counted once).
        trainable_params: The part of ``total_params`` with ``requires_grad=True``.
        total_flops: FLOPs of one forward pass over the whole input batch.
        max_depth: Deepest rows shown by ``str()``; ``None`` shows all.

    Example:
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        >>> s = summary(net, (1, 28, 28))
        >>> s.model_name, s.input_shape, s.output_shape, s.total_params, s.total_flops
        ('Sequential', (1, 1, 28, 28), (1, 4, 14, 14), 40, 56448)
        >>> [layer.type for layer in s.layers]
        ['Conv2d', 'ReLU', 'MaxPool2d']
        >>> s.to_text().splitlines()[-1]
        'FLOPs per forward: 56,448 (56.45K)'
    """

    model_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...] | None
    layers: list[LayerSummary]
    total_params: int
    trainable_params: int
    total_flops: int
    max_depth: int | None = field(default=None)

    @property
    def frozen_params(self) -> int:
        """Parameters that do not require gradients (e.g. a frozen backbone)."""
        return self.total_params - self.trainable_params

    def to_text(self, max_depth: int | None = None) -> str:
        """Render the table, showing rows up to ``max_depth`` (``None``: ``self.max_depth``)."""
        depth = self.max_depth if max_depth is None else max_depth
        header = ("Layer", "Type", "Output shape", "Params", "Trainable", "FLOPs")
        rows = [header]
        for layer in self.layers:
            if depth is not None and layer.depth > depth:
                continue
            shape = "x".join(map(str, layer.output_shape)) if layer.output_shape else "-"
            rows.append(
                (
                    "  " * (layer.depth - 1) + layer.name,
                    layer.type,
                    shape,
                    f"{layer.num_params:,}",
                    f"{layer.trainable_params:,}",
                    _human(layer.flops),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows
        ]
        rule = "-" * len(lines[0])
        lines.insert(1, rule)
        lines += [
            rule,
            f"Input shape:       {tuple(self.input_shape)}",
            f"Output shape:      {self.output_shape}",
            f"Total params:      {self.total_params:,}",
            f"Trainable params:  {self.trainable_params:,}",
            f"Frozen params:     {self.frozen_params:,}",
            f"FLOPs per forward: {self.total_flops:,} ({_human(self.total_flops)})",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def _human(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _first_tensor(value: object) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, list | tuple):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, dict):
        return _first_tensor(list(value.values()))
    return None


def _count(module: nn.Module) -> tuple[int, int]:
    params = list(module.parameters())  # parameters() already skips shared duplicates
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def summary(
    model: nn.Module,
    input_size: Sequence[int],
    *,
    batch_size: int = 1,
    max_depth: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> ModelSummary:
    """Run ``model`` once on zeros and tabulate every module call.

    The model is run in eval mode under :func:`torch.no_grad` and then put back
    in the mode it was in; its weights are not changed.

    Args:
        model: Any :class:`torch.nn.Module` taking one image batch.
        input_size: ``(C, H, W)`` of one input, without the batch dimension.
        batch_size: Batch size of the dummy input (FLOPs scale with it).
        max_depth: Deepest rows ``str()`` shows; the data always has every row.
        device: Where to run (``"cpu"``, ``"cuda"``, ... or ``"auto"``; one this machine lacks
            is refused); defaults to the device of the model's first parameter.
        dtype: Dtype of the dummy input.

    Returns:
        A :class:`ModelSummary`; ``print()`` it for the table.

    Raises:
        ValueError: ``input_size`` or ``batch_size`` is not positive, or ``device`` is not
            available here.

    Example:
        >>> from visionblocks import resnet20
        >>> s = summary(resnet20(), (3, 32, 32))
        >>> s.total_params, s.layers[0].name, s.layers[0].output_shape
        (272474, 'stem', (1, 16, 32, 32))
        >>> s.total_flops  # 2 FLOPs per multiply-add
        81626368
    """
    sizes = tuple(input_size)
    if not sizes or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(
            f"input_size must be positive ints without the batch dimension, e.g. (3, 32, 32); "
            f"got {input_size!r}."
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    else:
        device = resolve_device(device)
    x = torch.zeros((batch_size, *sizes), device=device, dtype=dtype)

    names = {id(m): name for name, m in model.named_modules() if name}
    rows: list[LayerSummary] = []
    stack: list[tuple[int, int]] = []  # (row index, FLOPs counted when the call started)
    flop_mode = FlopCounterMode(display=False)

    def pre_hook(module: nn.Module, args: object) -> None:
        name = names[id(module)]
        params, trainable = _count(module)
        rows.append(
            LayerSummary(
                name=name,
                type=type(module).__name__,
                depth=name.count(".") + 1,
                output_shape=None,  # filled in when the call returns
                num_params=params,
                trainable_params=trainable,
                flops=0,
                is_leaf=next(module.children(), None) is None,
            )
        )
        stack.append((len(rows) - 1, flop_mode.get_total_flops()))

    def post_hook(module: nn.Module, args: object, output: object) -> None:
        index, flops_before = stack.pop()
        tensor = _first_tensor(output)
        rows[index] = replace(
            rows[index],
            output_shape=tuple(tensor.shape) if tensor is not None else None,
            flops=flop_mode.get_total_flops() - flops_before,
        )

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(pre_hook))
            handles.append(module.register_forward_hook(post_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), flop_mode:
            out = model(x)
    finally:
        # Hooks and the train/eval mode are restored even when the forward pass fails.
        for handle in handles:
            handle.remove()
        model.train(was_training)

    out_tensor = _first_tensor(out)
    total, trainable = _count(model)
    return ModelSummary(
        model_name=type(model).__name__,
        input_shape=tuple(x.shape),
        output_shape=tuple(out_tensor.shape) if out_tensor is not None else None,
        layers=rows,
        total_params=total,
        trainable_params=trainable,
        total_flops=flop_mode.get_total_flops(),
        max_depth=max_depth,
    )
