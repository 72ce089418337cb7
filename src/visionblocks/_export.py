"""Export a trained model to ONNX, ``torch.export`` or safetensors and check the copy.

Why this path: both formats start from one ``torch.export.export`` of the model with
a dynamic batch dimension, so a model that cannot be captured fails once, with the
layer named. ONNX is then written by PyTorch's exporter for exported programs (the
default ``dynamo=True`` path since PyTorch 2.9, which needs ``onnxscript``); the
TorchScript exporter it replaces is deprecated. Every export is verified: the
written file is loaded back (onnxruntime for ONNX) and run on a fresh batch, and the
largest absolute difference from the PyTorch model is returned
(``tests/test_export.py`` holds every registered model to 1e-4, at batch sizes 1 and 7).

The model's :class:`~visionblocks.ModelCard` (class names, normalization, input shape)
travels with the file: as the ``visionblocks`` entry of the ONNX metadata, as the
``visionblocks.json`` extra file of a ``.pt2`` archive, and as a JSON file beside every
export (``model.onnx.json`` next to ``model.onnx``), the same JSON in each place. Besides
the card's fields it spells out what a program without visionblocks needs to use the
file (:func:`bundle_card`): the graph's input and output names and shapes, the Pillow
mode, resize rule, size and normalization that reproduce
:func:`~visionblocks.predict`'s preprocessing, and the label of every output.
``examples/onnx_service.py`` serves predictions from it with onnxruntime, numpy and
Pillow alone, and agrees with ``visionblocks predict``.

A ``.safetensors`` export is no compiled graph: it is the model file
:func:`~visionblocks.save_checkpoint` writes (weights as tensors, the card as JSON in the
metadata), for runtimes that read weights without unpickling. It is checked the same
way, rebuilt by :func:`~visionblocks.load_model` and run on the batch (its weights are
bit for bit the model's; the logits agree to float32 rounding).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from visionblocks._int8.capture import innermost_layer
from visionblocks._paths import check_output_file
from visionblocks.inference import load_model, model_card
from visionblocks.model_file import DEFAULT_THRESHOLD, atomic_write_text
from visionblocks.quantize import Int8Classifier
from visionblocks.train import save_checkpoint

__all__ = [
    "BUNDLE_VERSION",
    "FORMATS",
    "INPUT_NAME",
    "METADATA_KEY",
    "OUTPUT_NAME",
    "ExportResult",
    "bundle_card",
    "card_path_for",
    "export",
    "input_shape_of",
    "quantized_layer",
]

FORMATS = {".onnx": "onnx", ".pt2": "pt2", ".safetensors": "safetensors"}
"""File suffix -> export format."""
METADATA_KEY = "visionblocks"
"""Name of the JSON model card in an ONNX file's metadata (``visionblocks.json`` in a .pt2)."""
INPUT_NAME = "images"
"""Name of the ONNX graph's input: float32 images ``(batch, C, H, W)``, normalized."""
OUTPUT_NAME = "logits"
"""Name of the ONNX graph's output: float32 logits ``(batch, num_classes)``."""
BUNDLE_VERSION = 1
"""Version of the JSON card's layout beside an export (``bundle_version`` in it)."""
_NAMES = ", ".join(repr(f) for f in FORMATS.values())  # for messages: 'onnx', 'pt2', ...
_TRACE_BATCH = 2  # torch.export specializes sizes 0 and 1, so the example batch has 2 images


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how closely the written model matches PyTorch.

    Attributes:
        path: The file written.
        format: ``"onnx"``, ``"pt2"`` or ``"safetensors"``.
        max_abs_diff: Largest absolute difference between the logits of the exported
            model (onnxruntime for ONNX, the model rebuilt by ``load_model`` for
            safetensors) and of the PyTorch model on a random batch.
        batch_size: Images in that batch.
        input_shape: ``(C, H, W)`` the model was exported for (the batch size is dynamic).
        card_path: The JSON card written beside the file (its name with ``.json``
            added), or ``None`` for a result built without one.

    Example:
        >>> print(ExportResult(Path("m.onnx"), "onnx", 1.5e-6, 8, (3, 32, 32)))
        wrote m.onnx (onnx); largest difference from PyTorch on 8 images: 1.5e-06
    """

    path: Path
    format: str
    max_abs_diff: float
    batch_size: int
    input_shape: tuple[int, int, int]
    card_path: Path | None = None

    def __str__(self) -> str:
        return (
            f"wrote {self.path} ({self.format}); largest difference from PyTorch on "
            f"{self.batch_size} images: {self.max_abs_diff:.2g}"
        )


def export(
    model_or_path: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    input_shape: tuple[int, int, int] | None = None,
    batch_size: int = 8,
) -> ExportResult:
    """Write ``model_or_path`` as ONNX, a ``torch.export`` archive or safetensors, then check it.

    The batch dimension is dynamic; channels, height and width are fixed to
    ``input_shape``. The exported model takes normalized float32 images, as the
    PyTorch model does (the stored statistics travel in the file's metadata). Beside
    the file goes its JSON card (``model.onnx.json`` for ``model.onnx``): the model card,
    the graph's input and output names, the preprocessing and the labels, for a program
    without visionblocks (see :doc:`/deployment`).
    After writing, the file is loaded back and run on ``batch_size`` random images. A
    safetensors file is the model file ``save_checkpoint`` writes (no graph), which
    :func:`~visionblocks.load_model` rebuilds without unpickling anything.

    Args:
        model_or_path: A model, or the path of a model file (see :func:`~visionblocks.load_model`).
            It is exported in eval mode, in float32, on the CPU (a copy is made of a model
            on another device); its training mode is restored afterwards.
        path: The file to write; parent folders are created. Its JSON card is written to
            ``path`` with ``.json`` added.
        format: ``"onnx"``, ``"pt2"`` or ``"safetensors"`` (whose file must be named
            ``*.safetensors``); by default taken from the suffix of ``path`` (``.onnx``,
            ``.pt2``, ``.safetensors``).
        input_shape: ``(C, H, W)`` of one input; by default the trained image shape in the
            model's card, else the model's ``default_input_size``.
        batch_size: Images in the verification batch.

    Returns:
        The :class:`ExportResult`, with the largest difference from PyTorch and the path
        of the JSON card.

    Raises:
        ValueError: Unknown format, a suffix that contradicts ``format``, a ``path`` that
            cannot be written or is the model file itself, no known input shape, an
            ``input_shape`` whose channels the model does not take, an INT8 (quantized)
            model, a model that returns more than one logits tensor, or a model that
            cannot be exported (the message names the layer), or (safetensors) a model
            whose card names no registered builder, which ``load_model`` could not rebuild.
        ImportError: ONNX export without ``onnx``, ``onnxscript`` and ``onnxruntime``
            (``pip install 'visionblocks[export]'``); safetensors export without
            ``safetensors`` (``pip install 'visionblocks[safetensors]'``).

    Example:
        >>> import tempfile, visionblocks as vb
        >>> result = export(vb.simple_cnn(), f"{tempfile.mkdtemp()}/simple.pt2")
        >>> result.format, result.max_abs_diff < 1e-4, result.card_path.name
        ('pt2', True, 'simple.pt2.json')
        >>> result = export(vb.simple_cnn(), f"{tempfile.mkdtemp()}/simple.safetensors")
        >>> result.format, result.max_abs_diff < 1e-6
        ('safetensors', True)
    """
    fmt = _format_of(Path(path), format)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    read = [] if isinstance(model_or_path, nn.Module) else [model_or_path]
    target = check_output_file(path, "path", inputs=read)
    card_path = check_output_file(card_path_for(target), "the JSON card", inputs=read)
    if fmt == "onnx":
        _require_onnx()
    model = model_or_path if isinstance(model_or_path, nn.Module) else load_model(model_or_path)
    _check_not_quantized(model)
    shape = input_shape_of(model, input_shape)
    param = next(model.parameters(), None)
    if param is not None and (param.device.type != "cpu" or param.dtype != torch.float32):
        # Exported for the CPU in float32; the caller's model stays where it is.
        model = _cpu_float_copy(model)
    was_training = model.training
    model.eval()
    try:
        program = None if fmt == "safetensors" else _capture(model, shape)
        target.parent.mkdir(parents=True, exist_ok=True)
        check = torch.randn((batch_size, *shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected = model(check)
        if not isinstance(expected, torch.Tensor):
            kind = type(expected).__name__
            count = f" of {len(expected)}" if isinstance(expected, (tuple, list, dict)) else ""
            raise ValueError(
                f"{type(model).__name__} returns a {kind}{count}, but export needs a model "
                f"that returns one logits tensor (B, num_classes); return only the logits."
            )
        card = json.dumps(
            bundle_card(model, shape, fmt, target.name, num_outputs=expected.shape[-1]),
            indent=1, default=str,
        )  # fmt: skip
        if program is None:
            actual = _write_safetensors(model, target, check)
        elif fmt == "onnx":
            _write_onnx(program, target, card)
            actual = _run_onnx(target, check)
        else:
            torch.export.save(program, target, extra_files={"visionblocks.json": card})
            with torch.no_grad():
                actual = torch.export.load(target).module()(check)
        atomic_write_text(card + "\n", card_path)
    finally:
        model.train(was_training)
    difference = float((actual - expected).abs().max()) if expected.numel() else 0.0
    return ExportResult(target, fmt, difference, batch_size, shape, card_path)


def card_path_for(path: str | os.PathLike[str]) -> Path:
    """Where :func:`export` writes the JSON card of the file ``path``: ``path`` + ``.json``.

    Example:
        >>> card_path_for("runs/model.onnx").as_posix()
        'runs/model.onnx.json'
    """
    path = Path(path)
    return path.with_name(path.name + ".json")


def bundle_card(
    model: nn.Module,
    shape: tuple[int, int, int],
    fmt: str,
    file: str,
    *,
    num_outputs: int,
) -> dict[str, Any]:
    """The JSON card :func:`export` writes: the model card, and how to use the exported file.

    The fields of :meth:`~visionblocks.ModelCard.to_dict` come first (``classes``,
    ``mean``, ``std``, ``resize``, ...: ``None`` where the card does not say), then
    ``input_shape`` and what a program needs that has only this JSON, the exported file,
    numpy and Pillow:

    * ``input`` / ``output``: the ONNX graph's names (``None`` for ``.pt2`` and
      safetensors, which take the images positionally), shapes and dtype;
    * ``preprocessing``: the Pillow ``mode`` to convert to (``"L"`` or ``"RGB"``, R-G-B
      order), the ``resize`` rule with the ``size`` ``[H, W]``, and the ``mean`` and
      ``std`` that ``(pixels / 255 - mean) / std`` uses: what :func:`~visionblocks.predict`
      does (statistics 0 and 1 for a model without them, as predict uses it), spelled
      out in ``steps``;
    * ``output`` also says how logits become probabilities, as predict computes them:
      ``activation`` ``"softmax"`` (one class per image) or ``"sigmoid"`` (a multi-label
      model: each label on its own), and for ``"sigmoid"`` the ``thresholds`` at or above
      which each label is predicted;
    * ``labels``: the name of each output, in order (the class names, else the indices).

    Example:
        >>> import visionblocks as vb
        >>> model = vb.simple_cnn(num_classes=2, in_channels=1, image_size=28)
        >>> card = bundle_card(model, (1, 28, 28), "onnx", "m.onnx", num_outputs=2)
        >>> card["input"]["name"], card["preprocessing"]["mode"], card["labels"]
        ('images', 'L', ['0', '1'])
        >>> card["output"]["activation"], card["output"]["thresholds"]
        ('softmax', None)
    """
    found = model_card(model)
    fields: dict[str, Any] = found.to_dict() if found is not None else {}
    channels, height, width = shape
    stats = found.stats if found is not None else None
    mean, std = stats or ((0.0,) * channels, (1.0,) * channels)
    classes = found.classes if found is not None else None
    rule = found.resize if found is not None else "squash"
    multilabel = found is not None and found.task == "multilabel"
    thresholds = found.label_thresholds if found is not None else None
    if multilabel and thresholds is None:
        thresholds = (DEFAULT_THRESHOLD,) * num_outputs
    onnx = fmt == "onnx"
    fields.update(
        input_shape=list(shape),
        bundle_version=BUNDLE_VERSION,
        format=fmt,
        file=file,
        input={
            "name": INPUT_NAME if onnx else None,
            "shape": ["batch", channels, height, width],
            "dtype": "float32",
        },
        output={
            "name": OUTPUT_NAME if onnx else None,
            "shape": ["batch", num_outputs],
            "dtype": "float32",
            "activation": "sigmoid" if multilabel else "softmax",
            "thresholds": list(thresholds) if thresholds is not None else None,
        },
        preprocessing={
            "mode": {1: "L", 3: "RGB"}.get(channels),
            "resize": rule,
            "size": [height, width],
            "mean": list(mean),
            "std": list(std),
            "steps": _steps(channels, rule, multilabel=multilabel),
        },
        labels=list(classes) if classes is not None else [str(k) for k in range(num_outputs)],
    )
    return fields


def _steps(channels: int, rule: str, *, multilabel: bool) -> list[str]:
    """What :func:`~visionblocks.predict` does to an image file, as instructions."""
    if channels == 1:
        mode = "convert it to Pillow mode 'L' (grayscale: ITU-R 601-2 luma)"
    elif channels == 3:
        mode = "convert it to Pillow mode 'RGB' (palette images through 'RGBA')"
    else:
        mode = f"bring it to {channels} channels as the model was trained"
    if rule == "squash":
        resize = "resize it to size [H, W] with Pillow's BILINEAR (aspect ratio not kept)"
    else:
        resize = (
            "scale it by the larger of H/h and W/w (sides truncated to ints, never below H "
            "and W) with Pillow's BILINEAR, then cut the centre [H, W] (offsets rounded)"
        )
    return [
        "open the image with Pillow and apply its EXIF orientation (ImageOps.exif_transpose)",
        mode,
        resize,
        "x = (pixels / 255 - mean) / std per channel, as float32 (1, C, H, W)",
        "run the model; "
        + (
            "the sigmoid of each logit is its label's probability; the labels predicted are "
            "those at or above their output.thresholds"
            if multilabel
            else "the softmax of its logits are the probabilities of labels, in order"
        ),
    ]


def _format_of(path: Path, format: str | None) -> str:
    suffix = path.suffix.lower()
    if format is None:
        if suffix not in FORMATS:
            raise ValueError(
                f"cannot tell the export format from {str(path)!r}; end the file name in "
                f"{', '.join(FORMATS)}, or pass format (one of {_NAMES})."
            )
        return FORMATS[suffix]
    if format not in FORMATS.values():
        raise ValueError(f"unknown export format {format!r}; use one of {_NAMES}.")
    if suffix in FORMATS and FORMATS[suffix] != format:
        raise ValueError(
            f"format={format!r} but {str(path)!r} ends in {suffix}; name the file "
            f"*.{format} or drop the format to use {FORMATS[suffix]!r}."
        )
    if format == "safetensors" and suffix != ".safetensors":
        # Readers (load_model, Hugging Face tools) know by this suffix that no pickle is inside.
        raise ValueError(
            f"format='safetensors' writes a file named *.safetensors; got {str(path)!r}: "
            f"name it {str(path.with_suffix('.safetensors'))!r}."
        )
    return format


def _require_onnx() -> None:
    missing = [
        m for m in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise ImportError(
            f"ONNX export needs {', '.join(missing)}: pip install 'visionblocks[export]'."
        )


def input_shape_of(
    model: nn.Module, input_shape: tuple[int, int, int] | None = None
) -> tuple[int, int, int]:
    """``input_shape`` checked, else the card's image shape, else ``default_input_size``.

    Raises:
        ValueError: None of them is known, the shape is not ``(C, H, W)``, or the model
            takes another number of channels.

    Example:
        >>> import visionblocks as vb
        >>> input_shape_of(vb.resnet20(in_channels=1))
        (1, 32, 32)
    """
    card = model_card(model)
    shape = input_shape or (card.image_shape if card is not None else None)
    shape = shape or getattr(model, "default_input_size", None)
    if shape is None:
        raise ValueError(
            f"the input shape of this {type(model).__name__} is unknown; pass "
            f"input_shape=(C, H, W), e.g. (3, 32, 32)."
        )
    if len(shape) != 3 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be (C, H, W) positive ints; got {shape!r}.")
    takes = _channels_taken(model)
    if input_shape is not None and takes is not None and takes[0] != shape[0]:
        # Checked here so a wrong input_shape fails with our message, not inside its forward.
        raise ValueError(
            f"input_shape={tuple(shape)} has {shape[0]} channels, but this "
            f"{type(model).__name__} takes {takes[0]} ({takes[1]}); pass "
            f"input_shape=({takes[0]}, {shape[1]}, {shape[2]})."
        )
    return (shape[0], shape[1], shape[2])


def _channels_taken(model: nn.Module) -> tuple[int, str] | None:
    """Input channels of ``model`` and where that was read, or ``None`` when unknown."""
    card = model_card(model)
    if card is not None and card.in_channels is not None:
        return card.in_channels, "from its model card"
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels, f"from the in_channels of its first convolution {name!r}"
    return None


# Where torch keeps its INT8 layers; no exporter here takes them (torch.export fails on
# their packed weights, and ONNX is written from a torch.export program).
_QUANTIZED_NAMESPACES = (
    "torch.ao.nn.quantized",
    "torch.ao.nn.intrinsic.quantized",
    "torch.nn.quantized",
    "torch.nn.intrinsic.quantized",
)


def quantized_layer(model: nn.Module) -> str | None:
    """The name of the first INT8 (quantized) layer of ``model``, or ``None`` if it has none.

    Example:
        >>> import visionblocks as vb
        >>> quantized_layer(vb.resnet20()) is None
        True
    """
    for name, module in model.named_modules():
        if type(module).__module__.startswith(_QUANTIZED_NAMESPACES):
            return str(name)
    return None


def _check_not_quantized(model: nn.Module) -> None:
    if isinstance(model, Int8Classifier):
        raise ValueError(
            f"this is an INT8 model (quantize_int8 method={model.method!r}), and export of "
            f"quantized models is not supported; write its deployment file with "
            f"int8_model.save('model.onnx') (method='onnxruntime'; '.pt2' for 'pt2e'), or "
            f"export the float model."
        )
    name = quantized_layer(model)
    if name is not None:
        raise ValueError(
            f"{type(model).__name__} has INT8 (quantized) layers, e.g. {name!r} "
            f"({type(model.get_submodule(name)).__name__}), and export of quantized models is "
            f"not supported (in no format: {_NAMES}); export the float model and quantize the "
            f"exported copy in its runtime (e.g. onnxruntime.quantization)."
        )


def _cpu_float_copy(model: nn.Module) -> nn.Module:
    # deepcopy keeps plain attributes such as the model card.
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float32)


def _capture(model: nn.Module, shape: tuple[int, int, int]) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch; a failure names the innermost layer it hit."""
    example = torch.randn((_TRACE_BATCH, *shape), generator=torch.Generator().manual_seed(0))
    batch = torch.export.Dim("batch", min=1)
    try:
        with innermost_layer(model) as running:
            return torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    except Exception as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        where = running[-1] if running else ""
        layer = model.get_submodule(where) if where else model
        name = f"layer {where!r} ({type(layer).__name__})" if where else type(model).__name__
        raise ValueError(
            f"{name} cannot be exported: {type(err).__name__}: {reason} Make its forward free "
            f"of Python control flow on tensor values (torch.export's requirement)."
        ) from err


def _write_safetensors(model: nn.Module, path: Path, images: torch.Tensor) -> torch.Tensor:
    """Save ``model`` as a safetensors model file; the logits of its rebuild on ``images``."""
    card = model_card(model)
    if card is None or card.builder is None:
        raise ValueError(
            f"this {type(model).__name__} carries no model card naming a registered builder, "
            f"so load_model could not rebuild it from {str(path)!r}; build it with a "
            f"registered builder (visionblocks.list_models()), or write its weights alone "
            f"with safetensors.torch.save_file(model.state_dict(), path)."
        )
    save_checkpoint(path, model)
    with torch.no_grad():
        logits: torch.Tensor = load_model(path)(images)
    return logits


def _write_onnx(program: torch.export.ExportedProgram, path: Path, card: str) -> None:
    # The exporter reports each of its steps on stdout; a library call should be quiet.
    with contextlib.redirect_stdout(io.StringIO()):
        onnx_program = torch.onnx.export(
            program, (), None, dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME]
        )
    if onnx_program is None:  # pragma: no cover - the dynamo exporter always returns one
        raise RuntimeError("torch.onnx.export returned no program.")
    onnx_program.model.metadata_props[METADATA_KEY] = card
    onnx_program.save(path)


def _run_onnx(path: Path, images: torch.Tensor) -> torch.Tensor:
    import onnxruntime  # type: ignore[import-untyped]

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    (logits,) = session.run(None, {name: images.numpy()})
    return torch.from_numpy(logits)
