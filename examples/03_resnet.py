"""Exercise 3: a ResNet of residual blocks (He et al. 2015, https://arxiv.org/abs/1512.03385).

ResNet-20 for CIFAR: a 3x3 stem, three stages of three BasicBlocks (16, 32, 64
channels; the first block of stages 2 and 3 halves the resolution and gets a
1x1 projection shortcut), global average pooling and one FC layer: 272,474
parameters on CIFAR-10. The lab expects about 82% on CIFAR-10.

The script prints the block structure (output shape of every stage and block),
the parameter count, the receptive field of each stage, trains the net and prints
its curves and test accuracy. ``--plain`` also trains the same network without
shortcuts, to see what the skip connections buy. Writes ``curves.png``,
``confusion.png`` and ``history.csv`` to ``--out``.

    python examples/03_resnet.py
    python examples/03_resnet.py --depth 32 --plain
"""

from __future__ import annotations

import _common
import torch

import visionblocks as vb
from visionblocks.analysis import plot_confusion_matrix, receptive_field, summary


def main() -> None:
    parser = _common.make_parser(__doc__ or "", epochs=10)
    parser.add_argument("--depth", type=int, default=20, help="6n + 2: 20, 32, 44, 56, 110")
    parser.add_argument("--augment", default="none", help="augmentation preset (default none)")
    parser.add_argument("--plain", action="store_true", help="also train it without shortcuts")
    args = parser.parse_args()
    train, test = _common.load_data(args)
    out = _common.out_dir(args)
    shape = train.image_shape

    def build(residual: bool) -> vb.ResNet:
        torch.manual_seed(args.seed)
        return vb.resnet_cifar(
            num_classes=train.num_classes, in_channels=shape[0], depth=args.depth, residual=residual
        )

    model = build(residual=True)
    print(
        f"ResNet-{args.depth}: {_common.num_params(model):,} parameters for {shape} inputs "
        f"({_common.num_params(vb.resnet_cifar(depth=args.depth)):,} for CIFAR-10)"
    )
    print("\nstages and blocks (batch of 1):")
    print(summary(model, shape, max_depth=3))
    rf = receptive_field(model, shape)
    print("\nreceptive field at the end of each stage:")
    _common.print_table(
        ["stage", "output", "receptive field", "jump"],
        [
            [name, f"{r.output_size[0]}x{r.output_size[1]}", r.size[0], r.jump[0]]
            for name in ("stem", *(f"stages.{i}" for i in range(len(model.stages))))
            for r in [rf[name]]
        ],
    )

    history, result, _ = _common.train_and_test(
        f"ResNet-{args.depth}", model, train, test, args, augment=args.augment
    )
    print(result)
    history.to_csv(out / "history.csv")
    rows = [[f"ResNet-{args.depth}", _common.num_params(model), _common.pct(result.accuracy)]]
    if args.plain:
        plain = build(residual=False)
        _, plain_result, _ = _common.train_and_test(
            f"plain-{args.depth} (no shortcuts)", plain, train, test, args, augment=args.augment
        )
        rows.append(
            [f"plain-{args.depth}", _common.num_params(plain), _common.pct(plain_result.accuracy)]
        )
    print()
    _common.print_table(["model", "parameters", "test accuracy"], rows)
    if _common.has_matplotlib():
        history.plot(save=out / "curves.png")
        plot_confusion_matrix(result.confusion, test.classes, save=out / "confusion.png")
    print(f"wrote the curves and the confusion matrix to {out}")


if __name__ == "__main__":
    main()
