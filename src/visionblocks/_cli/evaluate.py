"""``visionblocks eval`` and ``gradcam``: use a checkpoint the ``train`` command wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from visionblocks._cli._common import (
    CLIError,
    add_checkpoint_argument,
    add_data_arguments,
    add_device_arguments,
    has_matplotlib,
    load_data,
    load_trained,
    normalize,
)
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
    data = load_data(args.dataset, args.split, args.root, args.limit)
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


def read_image(path: str, shape: tuple[int, int, int] | None) -> torch.Tensor:
    """Read an image file as a uint8 ``(C, H, W)`` tensor of ``shape`` (if given).

    Pillow (a dependency of torchvision) reads it: PNG, JPEG, BMP, GIF, TIFF, WebP, ...
    It is converted to grayscale or RGB to match ``shape`` and resized to its ``(H, W)``.

    Raises:
        CLIError: The file is missing or is not an image Pillow can decode.
    """
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms.v2 import functional as TF

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"no image file at {path!r}.")
    try:
        with Image.open(file) as opened:
            picture = opened.convert("L" if shape is not None and shape[0] == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise CLIError(f"cannot read {path!r}: not an image file (PNG, JPEG, BMP, ...).") from err
    if shape is not None and (picture.height, picture.width) != shape[1:]:
        picture = picture.resize((shape[2], shape[1]), Image.Resampling.BILINEAR)
    image: torch.Tensor = TF.pil_to_tensor(picture)  # (C, H, W) uint8
    return image


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
    add_data_arguments(p)
    p.add_argument("--split", default="test", choices=("train", "test"))
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
