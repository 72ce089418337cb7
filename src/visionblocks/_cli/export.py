"""``visionblocks export``: a ``model.pt`` as ONNX, a ``torch.export`` archive or safetensors."""

from __future__ import annotations

import argparse
from pathlib import Path

from visionblocks._cli._common import add_checkpoint_argument, model_file
from visionblocks._export import FORMATS, export
from visionblocks._paths import check_output_file

__all__ = ["add_export_parser"]


def add_export_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``export`` sub-command."""
    p = sub.add_parser(
        "export",
        help="export a trained model to ONNX, torch.export (.pt2) or safetensors and check it",
        description="Export a model.pt written by `visionblocks train` with a dynamic batch "
        "axis, run the exported file on a batch (onnxruntime for ONNX) and print the largest "
        "difference from PyTorch. --format safetensors writes the same model file with no "
        "pickle in it (the card in its metadata), which `visionblocks predict` and `eval` read. "
        "Beside the file goes its model card as JSON (OUT.json: class names, input and output "
        "names, preprocessing), so that a program without visionblocks can use it.",
    )
    add_checkpoint_argument(p)
    p.add_argument(
        "--format",
        choices=sorted(set(FORMATS.values())),
        help="default: from the suffix of --out, else onnx",
    )
    p.add_argument(
        "--out",
        help="file to write (default: the checkpoint's name with .onnx, .pt2 or .safetensors)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="images in the check batch")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    checkpoint = model_file(args.checkpoint)
    fmt = args.format
    if args.out is None:
        out = checkpoint.with_suffix(f".{fmt or 'onnx'}")
    else:
        out = Path(args.out)
        if fmt is None and out.suffix.lower() not in FORMATS:
            fmt = "onnx"
    check_output_file(out, "--out", inputs=[checkpoint])  # before the model is read
    result = export(checkpoint, out, format=fmt, batch_size=args.batch_size)
    print(result)
    if result.card_path is not None:
        print(f"wrote {result.card_path} (classes and preprocessing, for programs without "
              f"visionblocks)")  # fmt: skip
    return 0
