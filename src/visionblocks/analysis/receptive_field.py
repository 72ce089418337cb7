"""Receptive field, jump and start of every layer, from kernel/stride/padding/dilation.

For a layer with kernel ``k``, stride ``s``, padding ``p`` and dilation ``d``
(effective kernel ``k' = d (k - 1) + 1``), fed by a map whose units are ``j_in``
input pixels apart and see ``r_in`` pixels (Araujo et al. 2019,
https://distill.pub/2019/computing-receptive-fields/):

    r_out = r_in + (k' - 1) * j_in          # size of the region one unit sees
    j_out = j_in * s                        # distance between neighbouring units
    c_out = c_in + ((k' - 1) / 2 - p) * j_in  # centre of the first unit's region

So three stacked 3x3 convs see 3, 5, 7 pixels, and after a stride-2 layer every
3x3 conv adds 4 instead of 2. Layers are followed as the forward pass actually
runs them (a :class:`torch.overrides.TorchFunctionMode` watches every op), so
residual additions, functional calls and explicit ``F.pad`` calls are handled:
an elementwise op takes the largest receptive field among its inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakTensorKeyDictionary

__all__ = ["LayerReceptiveField", "ReceptiveFieldReport", "receptive_field"]

Pair = tuple[int, int]


@dataclass(frozen=True)
class LayerReceptiveField:
    """Receptive field of the units of one module's output map.

    Attributes:
        name: Dotted module path inside the model.
        type: Class name of the module.
        output_size: ``(h, w)`` of the output map.
        size: ``(rows, cols)`` of input pixels one output unit sees.
        jump: ``(rows, cols)`` input pixels between neighbouring output units (the total stride).
        start: ``(row, col)`` of the centre of the top-left unit's field, in input pixel
            indices (negative when the field reaches into the padding).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3, padding=2))
        >>> first, second = receptive_field(net, (1, 28, 28)).layers[1:]
        >>> first.output_size, first.size, first.jump, first.start
        ((13, 13), (3, 3), (2, 2), (1.0, 1.0))
        >>> second.size, second.start  # 3 + (3 - 1) * 2; 1 + (1 - 2) * 2: in the padding
        ((7, 7), (-1.0, -1.0))
    """

    name: str
    type: str
    output_size: Pair
    size: Pair
    jump: Pair
    start: tuple[float, float]


@dataclass(frozen=True)
class ReceptiveFieldReport:
    """What :func:`receptive_field` returns; ``str()`` gives a table.

    Attributes:
        input_size: ``(C, H, W)`` the model was traced with.
        layers: One row per module call whose output is a spatial map, in call order.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3))
        >>> report = receptive_field(net, (1, 28, 28))
        >>> report.names()
        ['(input)', '0', '1', '2']
        >>> report["2"].size, report["2"].jump
        ((8, 8), (2, 2))
        >>> print(report)
        Layer    Type             Output       RF   Jump       Start
        (input)  input             28x28      1x1    1x1         0,0
        0        Conv2d            26x26      3x3    1x1         1,1
        1        MaxPool2d         13x13      4x4    2x2     1.5,1.5
        2        Conv2d            11x11      8x8    2x2     3.5,3.5
    """

    input_size: tuple[int, ...]
    layers: list[LayerReceptiveField]

    def __getitem__(self, name: str) -> LayerReceptiveField:
        """The last row of the module called ``name``."""
        for layer in reversed(self.layers):
            if layer.name == name:
                return layer
        raise KeyError(f"no spatial output recorded for {name!r}; known: {self.names()}")

    def names(self) -> list[str]:
        """Module names with a row, in call order."""
        return [layer.name for layer in self.layers]

    def __str__(self) -> str:
        width = max(len(r.name) for r in self.layers) + 2
        lines = [f"{'Layer':{width}}{'Type':14}{'Output':>9}{'RF':>9}{'Jump':>7}{'Start':>12}"]
        for r in self.layers:
            output, size, jump = (f"{a}x{b}" for a, b in (r.output_size, r.size, r.jump))
            start = f"{r.start[0]:g},{r.start[1]:g}"
            lines.append(f"{r.name:{width}}{r.type:14}{output:>9}{size:>9}{jump:>7}{start:>12}")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Geometry:
    size: Pair
    jump: Pair
    start: tuple[float, float]

    def window(self, kernel: Pair, stride: Pair, padding: Pair, dilation: Pair) -> _Geometry:
        eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
        return _Geometry(
            size=(
                self.size[0] + (eff[0] - 1) * self.jump[0],
                self.size[1] + (eff[1] - 1) * self.jump[1],
            ),
            jump=(self.jump[0] * stride[0], self.jump[1] * stride[1]),
            start=(
                self.start[0] + ((eff[0] - 1) / 2 - padding[0]) * self.jump[0],
                self.start[1] + ((eff[1] - 1) / 2 - padding[1]) * self.jump[1],
            ),
        )


def _pair(value: Any, default: Pair | None = None) -> Pair:
    if value is None or (isinstance(value, Sequence) and len(value) == 0):
        if default is None:
            raise ValueError("a window parameter is missing")
        return default
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def _bind(
    names: Sequence[str], defaults: dict[str, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    bound = dict(defaults)
    bound.update(zip(names, args, strict=False))
    bound.update(kwargs)
    return bound


def _conv(args: tuple[Any, ...], kwargs: dict[str, Any], g: _Geometry) -> _Geometry:
    a = _bind(
        ("input", "weight", "bias", "stride", "padding", "dilation"),
        {"stride": 1, "padding": 0, "dilation": 1},
        args,
        kwargs,
    )
    kernel = _pair(tuple(a["weight"].shape[-2:]))
    dilation = _pair(a["dilation"])
    padding = a["padding"]
    if padding == "valid":
        padding = 0
    elif padding == "same":  # PyTorch puts the odd extra pixel on the bottom/right
        padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation, strict=True))
    return g.window(kernel, _pair(a["stride"]), _pair(padding), dilation)


def _pool(args: tuple[Any, ...], kwargs: dict[str, Any], g: _Geometry) -> _Geometry:
    a = _bind(
        ("input", "kernel_size", "stride", "padding", "dilation"),
        {"stride": None, "padding": 0, "dilation": 1},
        args,
        kwargs,
    )
    kernel = _pair(a["kernel_size"])
    return g.window(kernel, _pair(a["stride"], kernel), _pair(a["padding"]), _pair(a["dilation"]))


def _avg_pool(args: tuple[Any, ...], kwargs: dict[str, Any], g: _Geometry) -> _Geometry:
    # avg_pool2d has no dilation argument; its 5th positional is ceil_mode.
    a = _bind(
        ("input", "kernel_size", "stride", "padding"), {"stride": None, "padding": 0}, args, kwargs
    )
    kernel = _pair(a["kernel_size"])
    return g.window(kernel, _pair(a["stride"], kernel), _pair(a["padding"]), (1, 1))


def _pad(args: tuple[Any, ...], kwargs: dict[str, Any], g: _Geometry) -> _Geometry:
    a = _bind(("input", "pad"), {}, args, kwargs)
    pad = [*a["pad"], 0, 0, 0, 0]
    left, top = pad[0], pad[2]  # F.pad lists the last dim first: (left, right, top, bottom)
    return _Geometry(g.size, g.jump, (g.start[0] - top * g.jump[0], g.start[1] - left * g.jump[1]))


_RULES: dict[
    Callable[..., Any], Callable[[tuple[Any, ...], dict[str, Any], _Geometry], _Geometry]
] = {
    torch.conv2d: _conv,
    F.conv2d: _conv,
    F.max_pool2d: _pool,
    F.max_pool2d_with_indices: _pool,
    torch.max_pool2d: _pool,
    F.avg_pool2d: _avg_pool,
    F.pad: _pad,
    torch.constant_pad_nd: _pad,
}


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    if isinstance(value, dict):
        return _tensors(list(value.values()))
    return []


class _GeometryTracker(TorchFunctionMode):
    """Tags every spatial tensor produced during the forward pass with its :class:`_Geometry`."""

    def __init__(self) -> None:
        super().__init__()
        self.geometry: WeakTensorKeyDictionary = WeakTensorKeyDictionary()

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        outputs = [t for t in _tensors(out) if t.dim() == 4]
        if not outputs:
            return out
        inputs = [
            (t, self.geometry[t])
            for t in _tensors(args) + _tensors(list(kwargs.values()))
            if t.dim() == 4 and t in self.geometry
        ]
        if not inputs:
            return out
        rule = _RULES.get(func)
        if rule is not None:
            new = rule(args, kwargs, inputs[0][1])
        else:
            # Elementwise ops, norms, concatenation: same grid, keep the widest field.
            same_grid = [g for t, g in inputs if t.shape[-2:] == outputs[0].shape[-2:]]
            if not same_grid:
                return out  # an op we cannot follow (resize, global pool): stop tracking
            new = max(same_grid, key=lambda g: g.size[0] * g.size[1])
        for t in outputs:
            self.geometry[t] = new
        return out


def receptive_field(model: nn.Module, input_size: Sequence[int]) -> ReceptiveFieldReport:
    """Trace ``model`` on a zero input and report each layer's receptive field, jump and start.

    Args:
        model: Any :class:`torch.nn.Module` that maps an image batch through 2-D convs/pools.
        input_size: ``(C, H, W)`` of one input.

    Returns:
        A :class:`ReceptiveFieldReport` with one row per module call with a spatial output.

    Raises:
        ValueError: ``input_size`` is not ``(C, H, W)``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3))
        >>> [layer.size[0] for layer in receptive_field(net, (1, 16, 16)).layers[1:]]
        [3, 5, 7]
        >>> strided = nn.Conv2d(1, 1, 3, stride=2)
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3), strided, nn.Conv2d(1, 1, 3))
        >>> [layer.size[0] for layer in receptive_field(net, (1, 16, 16)).layers[1:]]
        [3, 5, 9]
    """
    sizes = tuple(input_size)
    if len(sizes) != 3 or any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"input_size must be (C, H, W) of positive ints; got {input_size!r}.")
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.zeros((1, *sizes), device=device, dtype=dtype)
    tracker = _GeometryTracker()
    tracker.geometry[x] = _Geometry((1, 1), (1, 1), (0.0, 0.0))
    rows: list[LayerReceptiveField] = []
    names = {id(m): name for name, m in model.named_modules()}

    def hook(module: nn.Module, args: object, output: object) -> None:
        outputs = [t for t in _tensors(output) if t.dim() == 4]
        geometry = (
            tracker.geometry[outputs[0]] if outputs and outputs[0] in tracker.geometry else None
        )
        if geometry is not None:
            rows.append(
                LayerReceptiveField(
                    name=names[id(module)],
                    type=type(module).__name__,
                    output_size=(int(outputs[0].shape[-2]), int(outputs[0].shape[-1])),
                    size=geometry.size,
                    jump=geometry.jump,
                    start=geometry.start,
                )
            )

    # The model itself gets no row: its output is the last layer's (or a vector of logits).
    handles = [m.register_forward_hook(hook) for name, m in model.named_modules() if name]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), tracker:
            model(x)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    start = LayerReceptiveField(
        "(input)", "input", (sizes[1], sizes[2]), (1, 1), (1, 1), (0.0, 0.0)
    )
    rows.insert(0, start)
    return ReceptiveFieldReport(input_size=sizes, layers=rows)
