"""INT8 with torchao's PT2E flow: ``X86InductorQuantizer``, then ``torch.compile``.

The model is captured with ``torch.export`` (dynamic batch); ``prepare_pt2e`` inserts
observers where ``X86InductorQuantizer`` annotates a pattern (conv(+BN folded)(+ReLU),
linear, add, pooling), calibration runs, and ``convert_pt2e`` leaves a graph of float ops
between quantize/dequantize pairs. ``torch.compile`` with Inductor's freezing pass
replaces each pair and the op between by oneDNN's INT8 kernel; without compiling, the
graph runs in float and is slower than the float model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from visionblocks._int8.capture import capture

__all__ = ["Compiled", "quantize_pt2e"]


class Compiled(nn.Module):
    """A converted PT2E graph, compiled by Inductor with freezing at its first call per shape.

    Freezing is the pass that packs the INT8 weights for oneDNN's kernels. It is switched
    on around each call rather than for the process: dynamo and Inductor read it when they
    compile, which happens at the first call for each input shape (one compilation per
    batch size: Inductor cannot prepack INT8 weights for a symbolic batch, and
    ``dynamic=True`` fails in ``onednn.qconv_prepack``), and
    ``torch.compile(options={"freezing": True})`` does not reach that pass.
    """

    def __init__(self, converted: nn.Module) -> None:
        super().__init__()
        self.converted = converted
        self.compiled = torch.compile(converted, dynamic=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the compiled graph (compiling it first for a new input shape)."""
        import torch._inductor.config

        with torch._inductor.config.patch(freezing=True):
            return self.compiled(x)  # type: ignore[no-any-return]


def quantize_pt2e(
    root: nn.Module, first: torch.Tensor, batches: Iterable[torch.Tensor]
) -> tuple[nn.Module, torch.export.ExportedProgram]:
    """Capture, annotate, calibrate and convert ``root``; the compiled module and its program."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    program = capture(root, first, "pt2e")
    quantizer = X86InductorQuantizer()
    quantizer.set_global(get_default_x86_inductor_quantization_config())
    prepared: Any = prepare_pt2e(program.module(), quantizer)
    with torch.no_grad():
        prepared(first)
        for x in batches:
            prepared(x)
    converted = convert_pt2e(prepared)
    # Exported again so that the INT8 model can be saved as a .pt2 archive.
    batch = torch.export.Dim("batch", min=1)
    example = first[:2] if len(first) >= 2 else first.expand(2, *first.shape[1:])
    int8_program = torch.export.export(converted, (example,), dynamic_shapes=({0: batch},))
    return Compiled(converted), int8_program
