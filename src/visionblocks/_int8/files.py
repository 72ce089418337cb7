"""INT8 model files: the ONNX file of ``method="onnxruntime"``, the ``.pt2`` of ``"pt2e"``.

The float model's card travels inside each file, as JSON under the key
:func:`visionblocks.export` uses: the ONNX metadata entry ``visionblocks``, the
``visionblocks.json`` extra file of a ``.pt2`` archive.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from visionblocks.model_file import ModelCard

__all__ = [
    "CARD_KEY",
    "PT2_CARD_FILE",
    "Int8File",
    "read_onnx",
    "read_pt2",
    "write_onnx",
    "write_pt2",
]

CARD_KEY = "visionblocks"
"""ONNX metadata key of the card (``visionblocks.export``'s ``METADATA_KEY``)."""
PT2_CARD_FILE = "visionblocks.json"
"""Extra file of a ``.pt2`` archive that holds the card, as ``visionblocks.export`` writes it."""


@dataclass(frozen=True)
class Int8File:
    """What an INT8 model file holds besides its graph."""

    card: ModelCard | None
    in_channels: int | None
    num_classes: int | None


def _card_json(card: ModelCard | None) -> str:
    return "" if card is None else json.dumps(card.to_dict())


def _card_from(text: str | None) -> ModelCard | None:
    return ModelCard.from_dict(json.loads(text)) if text else None


def write_onnx(path: Path, onnx_bytes: bytes, card: ModelCard | None) -> None:
    """Write the INT8 ONNX model with ``card`` in its metadata."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    entries = [p for p in model.metadata_props if p.key != CARD_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(entries)
    if card is not None:
        model.metadata_props.add(key=CARD_KEY, value=_card_json(card))
    path.write_bytes(model.SerializeToString())


def _static_dim(dims: Any, index: int) -> int | None:
    return dims[index] if len(dims) > index and isinstance(dims[index], int) else None


def read_onnx(path: Path) -> tuple[bytes, Int8File]:
    """The bytes of an INT8 ONNX file and what its graph and metadata say about it."""
    import onnxruntime  # type: ignore[import-untyped]

    onnx_bytes = path.read_bytes()
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    card = _card_from(session.get_modelmeta().custom_metadata_map.get(CARD_KEY))
    inputs, outputs = session.get_inputs(), session.get_outputs()
    return onnx_bytes, Int8File(
        card, _static_dim(inputs[0].shape, 1), _static_dim(outputs[0].shape, 1)
    )


def write_pt2(path: Path, program: torch.export.ExportedProgram, card: ModelCard | None) -> None:
    """Save the converted (INT8) PT2E program with ``card`` as an extra file."""
    torch.export.save(program, path, extra_files={PT2_CARD_FILE: _card_json(card)})


def read_pt2(path: Path) -> tuple[torch.export.ExportedProgram, Int8File]:
    """Load a PT2E INT8 program and its card (torchao registers the INT8 ops it uses)."""
    import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401  (registers quantized_decomposed ops)

    extra = {PT2_CARD_FILE: ""}
    program = torch.export.load(path, extra_files=extra)
    nodes = {node.name: node for node in program.graph.nodes}
    images = nodes[program.graph_signature.user_inputs[0]].meta.get("val")
    logits = program.graph.output_node().args[0][0].meta.get("val")
    in_channels = int(images.shape[1]) if isinstance(images, torch.Tensor) else None
    num_classes = int(logits.shape[1]) if isinstance(logits, torch.Tensor) else None
    return program, Int8File(_card_from(extra[PT2_CARD_FILE]), in_channels, num_classes)
