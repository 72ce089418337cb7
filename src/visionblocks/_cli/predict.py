"""``visionblocks predict``: classify image files with a ``model.pt`` from ``train``."""

from __future__ import annotations

import argparse
import csv
import warnings
from collections.abc import Sequence
from pathlib import Path

from visionblocks._cli._common import CLIError, add_checkpoint_argument, model_file
from visionblocks._paths import check_output_file
from visionblocks.inference import IMAGE_SUFFIXES, Prediction, load_model, model_card, predict

__all__ = ["add_predict_parser", "prediction_table"]


def add_predict_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``predict`` sub-command."""
    p = sub.add_parser(
        "predict",
        help="classify image files or folders with a trained model",
        description="Classify images with a model.pt written by `visionblocks train`. Each image "
        "is converted to the trained channels, resized to the trained size and normalized "
        "with the training statistics stored in the file.",
    )
    add_checkpoint_argument(p)
    p.add_argument(
        "inputs", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...) or folders of them"
    )
    p.add_argument("--top-k", type=int, default=1, help="classes listed per image (default: 1)")
    p.add_argument(
        "--csv",
        metavar="OUT",
        help="also write the predictions to this CSV file, with one probability column per "
        "class (a multi-label model: the predicted labels in one column, as a labels file's tags)",
    )
    p.add_argument(
        "--tta",
        action="store_true",
        help="average each image's logits with its mirror's (flip test-time augmentation, "
        "as `eval --tta`)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.set_defaults(func=_predict)


def prediction_table(predictions: list[Prediction]) -> str:
    """The predictions as an aligned text table, one row per image.

    Example:
        >>> p = Prediction("a.png", 1, "dog", 0.75, (1, 0), ("dog", "cat"), (0.75, 0.25))
        >>> print(prediction_table([p]))
        image  class  probability  top 2
        a.png  dog          75.0%  dog 75.0%, cat 25.0%
    """
    if predictions and predictions[0].task == "multilabel":
        return _multilabel_table(predictions)
    top_k = len(predictions[0].top_indices) if predictions else 1
    header = ["image", "class", "probability"] + ([f"top {top_k}"] if top_k > 1 else [])
    rows = [header]
    for p in predictions:
        row = [p.source, p.label, f"{p.probability:.1%}"]
        if top_k > 1:
            pairs = zip(p.top_labels, p.top_probabilities, strict=True)
            row.append(", ".join(f"{label} {prob:.1%}" for label, prob in pairs))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2])]
        lines.append("  ".join(cells + row[3:]).rstrip())
    return "\n".join(lines)


def _multilabel_table(predictions: list[Prediction]) -> str:
    """A multi-label model's predictions: every label at or above its threshold."""
    rows = [("image", "labels (at or above their thresholds)")]
    for p in predictions:
        pairs = zip(p.labels, p.label_probabilities, strict=True)
        rows.append((p.source, ", ".join(f"{name} {prob:.1%}" for name, prob in pairs) or "-"))
    width = max(len(row[0]) for row in rows)
    return "\n".join(f"{row[0].ljust(width)}  {row[1]}" for row in rows)


def _write_csv(path: Path, predictions: list[Prediction], classes: Sequence[str] | None) -> None:
    """Write the top-k columns, then each class's probability in a column named by the class."""
    top_k = len(predictions[0].top_indices) if predictions else 1
    if classes is None:
        classes = [str(k) for k in range(len(predictions[0].probabilities))] if predictions else []
    multilabel = bool(predictions) and predictions[0].task == "multilabel"
    # A multi-label row's labels in one field, as a labels file's tags column reads them.
    separator = "|" if any(" " in c for c in classes) else " "
    header = ["image", "labels"] if multilabel else ["image", "index", "class", "probability"]
    for rank in range(2, 1 if multilabel else top_k + 1):
        header += [f"index_{rank}", f"class_{rank}", f"probability_{rank}"]
    # A class named like a column before it ("image", "class", ...) gets a longer name,
    # so that no reader of the file (csv.DictReader, pandas) loses a column.
    header += [f"probability of {c}" if c in header else c for c in classes]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for p in predictions:
            row: list[object] = [p.source, p.index, p.label, f"{p.probability:.6f}"]
            ranked = zip(p.top_indices, p.top_labels, p.top_probabilities, strict=True)
            for index, label, prob in list(ranked)[1:]:
                row += [index, label, f"{prob:.6f}"]
            if multilabel:
                row = [p.source, separator.join(p.labels)]
            row += [f"{prob:.6f}" for prob in p.probabilities]
            writer.writerow(row)


def _csv_path(path: str, checkpoint: Path, inputs: list[str]) -> Path:
    """``--csv``, checked before predicting: writable, and neither the model nor an image read."""
    target = Path(path)
    if target.suffix.lower() in IMAGE_SUFFIXES and target.is_file():
        # A folder input is read with every image file under it.
        for folder in (Path(i) for i in inputs if Path(i).is_dir()):
            if target.resolve().is_relative_to(folder.resolve()):
                raise CLIError(
                    f"--csv {path!r} is one of the images read from {str(folder)!r}, which "
                    f"writing it would replace; choose another path."
                )
    files: list[str | Path] = [checkpoint, *(i for i in inputs if Path(i).is_file())]
    return check_output_file(target, "--csv", inputs=files)


def _predict(args: argparse.Namespace) -> int:
    checkpoint = model_file(args.checkpoint)
    csv_path = None if args.csv is None else _csv_path(args.csv, checkpoint, args.inputs)
    model = load_model(checkpoint)
    card = model_card(model)
    with warnings.catch_warnings():
        # Said once below, in the command's own words, instead of as a Python warning.
        warnings.simplefilter("ignore", UserWarning)
        predictions = predict(
            model,
            args.inputs,
            top_k=args.top_k,
            tta=args.tta,
            batch_size=args.batch_size,
            device=args.device,
        )
    if card is None or card.classes is None:
        print(f"note: {args.checkpoint} stores no class names; classes are shown as indices.")
    print(prediction_table(predictions))
    if csv_path is not None:
        _write_csv(csv_path, predictions, None if card is None else card.classes)
        print(f"wrote {len(predictions)} predictions to {args.csv}")
    return 0
