"""``visionblocks eval`` and ``gradcam``: use a checkpoint the ``train`` command wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from visionblocks._cli._common import (
    CLIError,
    TrainedModel,
    add_checkpoint_argument,
    add_data_arguments,
    add_device_arguments,
    has_matplotlib,
    is_named,
    load_splits,
    load_trained,
    normalize,
)
from visionblocks._cli._train_plan import Data
from visionblocks.data import decode_image_file
from visionblocks.inference import model_card
from visionblocks.train import evaluate

__all__ = ["add_eval_parsers", "read_image"]


def _confusion_text(confusion: torch.Tensor, classes: list[str]) -> str:
    """The matrix as text; columns are numbered, the rows name the classes with the numbers."""
    width = max(4, len(str(int(confusion.max()))) + 1)
    names = [f"{i} {c}"[:16] for i, c in enumerate(classes)]
    left = max(len(n) for n in names) + 1
    lines = ["confusion matrix (rows: true class, columns: predicted class)"]
    lines.append(" " * left + "".join(f"{i:>{width}}" for i in range(len(classes))))
    for name, row in zip(names, confusion.tolist(), strict=True):
        lines.append(f"{name:<{left}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def _eval(args: argparse.Namespace) -> int:
    trained = load_trained(args.checkpoint)
    data = _split_of_the_run(args, trained)
    if trained.image_shape is not None and data.image_shape != trained.image_shape:
        raise CLIError(
            f"{args.checkpoint} was trained on {trained.image_shape} images but {data.name} has "
            f"{data.image_shape}; evaluate it on the dataset it was trained for "
            f"({trained.state.get('dataset', 'unknown')})."
        )
    result = evaluate(
        trained.model, data, tta=args.tta, device=args.device, precision=args.precision
    )
    print(f"{trained.name} from {args.checkpoint} on {data.name} ({len(data):,} images)")
    print(result)
    if result.task == "multilabel":  # its per-label counts are the table above
        if args.out:
            print("note: a multi-label model has no confusion matrix; --out draws nothing.")
        return 0
    print(_confusion_text(result.confusion, data.classes))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        if not has_matplotlib():
            raise CLIError(
                "--out draws the confusion matrix with matplotlib: pip install matplotlib"
            )
        from visionblocks.analysis import plot_confusion_matrix

        plot_confusion_matrix(result.confusion, data.classes, save=out / "confusion.png")
        print(f"wrote {out / 'confusion.png'}")
    return 0


def _split_of_the_run(args: argparse.Namespace, trained: TrainedModel) -> Data:
    """The split to evaluate: of ``--dataset``, else of the dataset the run trained on.

    The splits are the ones ``train`` made (:func:`load_splits`: the same held-out
    validation images, by the fraction the run recorded), and an image folder is read at
    the size the model was trained at, so ``eval RUN/model.pt --split val`` re-evaluates a
    run on exactly its validation images.
    """
    dataset = args.dataset if args.dataset is not None else trained.state.get("dataset")
    if not isinstance(dataset, str):
        raise CLIError(
            f"{args.checkpoint} does not record the dataset it trained on; pass --dataset."
        )
    split = args.split if args.split is not None else trained.state.get("eval_split", "test")
    folder = not is_named(dataset)
    shape = trained.image_shape
    size = (shape[1], shape[2]) if folder and shape is not None else None
    stored = trained.state.get("val_fraction")
    fraction = stored if isinstance(stored, float) and args.dataset in (None, dataset) else None
    if folder and (Path(dataset) / "val").is_dir():
        fraction = None
    card = model_card(trained.model)
    resize = card.resize if card is not None and size is not None else "squash"
    stored_root = trained.state.get("root") if args.dataset in (None, dataset) else None
    root = args.root if args.root is not None or not isinstance(stored_root, str) else stored_root
    splits = load_splits(
        dataset, root, args.limit, image_size=size, val_fraction=fraction, resize=resize
    )
    if split == "test" and splits.eval_split != "test":
        raise CLIError(
            f"{dataset!r} has no test split (no test/ subfolder); evaluate --split val, the "
            f"images the run held out."
        )
    chosen: Data = {"train": splits.train, "val": splits.val, "test": splits.test}[split]
    return chosen


def read_image(path: str, shape: tuple[int, int, int] | None) -> torch.Tensor:
    """Read an image file as a uint8 ``(C, H, W)`` tensor of ``shape`` (if given).

    The one decoder of training and ``predict`` reads it
    (:func:`~visionblocks.data.decode_image_file`: EXIF orientation, palette colours),
    brought to ``shape``'s channels and ``(H, W)``, so Grad-CAM explains the pixels the
    model was trained on.

    Raises:
        CLIError: The file is missing or is not an image Pillow can decode.
    """
    if not Path(path).is_file():
        raise CLIError(f"no image file at {path!r}.")
    channels, size = (shape[0], (shape[1], shape[2])) if shape is not None else (None, None)
    try:
        return decode_image_file(path, channels, size)
    except ValueError as err:  # CorruptDatasetError included: one line naming the file
        raise CLIError(str(err)) from None


def _gradcam(args: argparse.Namespace) -> int:
    if not has_matplotlib():
        raise CLIError("gradcam draws its overlay with matplotlib: pip install visionblocks[viz]")
    from visionblocks.analysis import grad_cam, plot_grad_cam

    trained = load_trained(args.checkpoint)
    image = read_image(args.image, trained.image_shape)  # (C, H, W) uint8
    x = normalize(image[None], trained.stats)  # (1, C, H, W)
    with torch.no_grad():
        probs = trained.model(x).softmax(dim=1)[0]
    predicted = int(probs.argmax())
    target = predicted if args.class_idx is None else args.class_idx
    if not 0 <= target < len(probs):
        raise CLIError(f"--class-idx must be in [0, {len(probs)}); got {target}.")
    cam = grad_cam(trained.model, x, target_layer=args.layer, class_idx=target)
    out = Path(args.out) if args.out else Path(args.image).with_suffix(".gradcam.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    name = trained.classes[target] if target < len(trained.classes) else str(target)
    title = f"{name} ({probs[target]:.0%})"
    plot_grad_cam(image, cam[0], titles=[title], save=out)
    top = probs.topk(min(3, len(probs)))
    guesses = ", ".join(
        f"{int(i)} {trained.classes[int(i)]} {float(p):.1%}"
        for p, i in zip(top.values, top.indices, strict=True)
    )
    print(f"prediction: {guesses}")
    print(f"wrote the Grad-CAM of class {name!r} to {out}")
    return 0


def add_eval_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``eval`` and ``gradcam``."""
    p = sub.add_parser("eval", help="accuracy, per-class accuracy and confusion matrix")
    add_checkpoint_argument(p)
    add_data_arguments(p, default=None, default_help="the dataset the run trained on")
    p.add_argument(
        "--split", choices=("train", "val", "test"), help="default: the split the run was "
        "evaluated on; val: the images it held out for validation (the same ones)",
    )  # fmt: skip
    p.add_argument("--tta", action="store_true", help="average with the mirrored image")
    p.add_argument("--out", help="folder for confusion.png (needs matplotlib)")
    add_device_arguments(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("gradcam", help="Grad-CAM overlay of one image as a PNG")
    add_checkpoint_argument(p)
    p.add_argument("image", help="image file, e.g. PNG or JPEG (resized to the training size)")
    p.add_argument("--out", help="PNG to write (default: IMAGE.gradcam.png)")
    p.add_argument("--class-idx", type=int, help="class to explain (default: the prediction)")
    p.add_argument("--layer", help="module name to explain (default: the last conv stage)")
    p.set_defaults(func=_gradcam)
