"""Exercise 2: add BatchNorm after every convolution and compare with Exercise 1.

The same simple CNN as Exercise 1, with Conv -> BatchNorm -> ReLU -> MaxPool
(Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167). The lab expects about 75%
on CIFAR-10 (72% without BatchNorm) and faster convergence.

Both nets are trained with the same data, budget, schedule and seed; the script
prints the validation accuracy of both, epoch by epoch, the first epoch at which
each reaches ``--target`` accuracy, and writes ``compare.png`` (both curves) and
``history_plain.csv`` / ``history_bn.csv`` to ``--out``.

    python examples/02_batch_norm.py
    python examples/02_batch_norm.py --dataset fashion-mnist --epochs 5
"""

from __future__ import annotations

import _common
import torch

import visionblocks as vb


def first_epoch_reaching(history: vb.History, target: float) -> str:
    for record in history.records:
        if record["val_acc"] >= target:
            return str(int(record["epoch"]))
    return "never"


def main() -> None:
    parser = _common.make_parser(__doc__ or "", epochs=15)
    parser.add_argument("--augment", default="none", help="augmentation preset (default none)")
    parser.add_argument(
        "--target", type=float, default=0.75, help="accuracy to reach (default %(default)s)"
    )
    args = parser.parse_args()
    train, test = _common.load_data(args)
    out = _common.out_dir(args)
    c, h, _ = train.image_shape

    runs = {}
    for label, batch_norm in (("without BN", False), ("with BN", True)):
        torch.manual_seed(args.seed)  # the same initial weights for the shared layers
        model = vb.simple_cnn(
            num_classes=train.num_classes, in_channels=c, image_size=h, batch_norm=batch_norm
        )
        runs[label] = _common.train_and_test(
            f"simple CNN {label}", model, train, test, args, augment=args.augment
        )
    plain, bn = runs["without BN"][0], runs["with BN"][0]
    plain.to_csv(out / "history_plain.csv")
    bn.to_csv(out / "history_bn.csv")

    print("\ntest accuracy and training loss per epoch")
    rows = [
        [
            int(a["epoch"]),
            _common.pct(a["val_acc"]),
            _common.pct(b["val_acc"]),
            a["train_loss"],
            b["train_loss"],
        ]
        for a, b in zip(plain.records, bn.records, strict=True)
    ]
    _common.print_table(
        ["epoch", "test acc (no BN)", "test acc (BN)", "train loss (no BN)", "train loss (BN)"],
        rows,
    )
    print()
    _common.print_table(
        ["model", "test accuracy", f"first epoch >= {args.target:.0%}"],
        [
            [label, _common.pct(result.accuracy), first_epoch_reaching(history, args.target)]
            for label, (history, result, _) in runs.items()
        ],
    )
    if _common.has_matplotlib():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4), layout="constrained")
        loss_ax, acc_ax = fig.subplots(1, 2)
        for label, (history, _, _) in runs.items():
            loss_ax.plot(history["epoch"], history["train_loss"], label=f"train, {label}")
            acc_ax.plot(history["epoch"], history["val_acc"], label=f"test, {label}")
        loss_ax.set(xlabel="epoch", ylabel="training loss", title="loss")
        acc_ax.set(xlabel="epoch", ylabel="accuracy", title="test accuracy")
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3)
            ax.legend()
        fig.savefig(out / "compare.png", dpi=120)
    print(f"wrote the comparison to {out}")


if __name__ == "__main__":
    main()
