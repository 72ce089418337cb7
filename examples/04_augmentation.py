"""Exercise 4: data augmentation, and what it does to overfitting.

The lab's augmentation: RandomCrop(32, padding=4), RandomHorizontalFlip,
ColorJitter(0.2, 0.2, 0.2), RandomRotation(15) -- the ``"lab"`` preset, which
visionblocks runs a whole batch at a time on the training device. The lab expects
more than 85% on CIFAR-10 with augmentation.

The script shows a grid of augmented training images (``augmented.png``), then
trains the same ResNet twice, without and with augmentation (``--no-baseline``
skips the first), and prints both curves, the gap between training and test
accuracy (the overfitting augmentation fights) and the test accuracies. Augmentation
makes the task harder, so it needs a longer budget than Exercise 3 to pay off: 30
epochs by default.

    python examples/04_augmentation.py
    python examples/04_augmentation.py --augment standard --model resnet32
"""

from __future__ import annotations

import _common
import torch

import visionblocks as vb


def main() -> None:
    parser = _common.make_parser(__doc__ or "", epochs=30)
    parser.add_argument("--model", default="resnet20", help="registry name (default resnet20)")
    parser.add_argument(
        "--augment", default="lab", choices=vb.data.AUGMENT_PRESETS, help="preset (default: lab)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the run without it")
    args = parser.parse_args()
    train, test = _common.load_data(args)
    out = _common.out_dir(args)
    c = train.image_shape[0]

    if _common.has_matplotlib():
        from matplotlib.figure import Figure

        transform = vb.augmentation(args.augment)
        generator = torch.Generator().manual_seed(args.seed)
        picks = torch.randperm(len(train), generator=generator)[:6].tolist()
        fig = Figure(figsize=(9, 9), layout="constrained")
        axes = fig.subplots(len(picks), 6, squeeze=False)
        for row, index in zip(axes, picks, strict=True):
            # Column 0: the original; then five random draws (the preset returns [0, 1] floats).
            image = train.images[index]  # (C, H, W) uint8
            shown = [image.float() / 255] + [transform(image) for _ in range(5)]
            for ax, image in zip(row, shown, strict=True):
                ax.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray", vmin=0, vmax=1)
                ax.set_axis_off()
        fig.suptitle(f"'{args.augment}' augmentation: original, then five random draws")
        fig.savefig(out / "augmented.png", dpi=100)

    settings = [] if args.no_baseline else [("none", "no augmentation")]
    settings.append((args.augment, f"augment={args.augment}"))
    rows, curves = [], {}
    for preset, label in settings:
        torch.manual_seed(args.seed)  # the same initial weights in both runs
        model = vb.create_model(args.model, num_classes=train.num_classes, in_channels=c)
        history, result, _ = _common.train_and_test(
            f"{args.model}, {label}", model, train, test, args, augment=preset
        )
        history.to_csv(out / f"history_{preset}.csv")
        curves[label] = history
        final = history.last
        gap = final["train_acc"] - result.accuracy
        rows.append(
            [label, _common.pct(final["train_acc"]), _common.pct(result.accuracy), f"{gap:+.2%}"]
        )
    print()
    _common.print_table(["run", "train accuracy", "test accuracy", "gap (overfitting)"], rows)
    if _common.has_matplotlib():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.subplots()
        for label, history in curves.items():
            (line,) = ax.plot(history["epoch"], history["val_acc"], label=f"test, {label}")
            ax.plot(
                history["epoch"], history["train_acc"], "--", color=line.get_color(),
                label=f"train, {label}",
            )  # fmt: skip
        ax.set(xlabel="epoch", ylabel="accuracy", title="augmentation vs overfitting")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.savefig(out / "compare.png", dpi=120)
    print(f"wrote augmented.png and compare.png to {out}")


if __name__ == "__main__":
    main()
