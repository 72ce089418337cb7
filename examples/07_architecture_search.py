"""Bonus challenge 6: a small architecture search over kernel sizes, depths and widths.

Runs ``visionblocks.nas.search`` (Optuna's TPE sampler with median pruning,
seeded): every trial trains a sampled ``StagedCNN`` for a few epochs on a
subset and is scored on held-out validation images; the best architecture is
then evaluated on the test set. Every trial is written to ``trials.csv`` in
``--out``. Needs the ``nas`` extra (``pip install visionblocks[nas]``).

    python examples/07_architecture_search.py             # sample data, offline
    python examples/07_architecture_search.py --dataset fashion-mnist --limit 6000 --trials 20
"""

from __future__ import annotations

import csv

from _common import load_data, make_parser, out_dir, pct

import visionblocks as vb
from visionblocks.nas import StagedCNN, search


def main() -> None:
    parser = make_parser(__doc__ or "", epochs=3)
    parser.add_argument("--trials", type=int, default=10, help="default: %(default)s")
    args = parser.parse_args()
    train, test = load_data(args)
    result = search(
        train,
        n_trials=args.trials,
        epochs=args.epochs,
        seed=args.seed,
        progress=not args.no_progress,
        fit_kwargs={
            "batch_size": args.batch_size,
            "device": args.device,
            "precision": args.precision,
        },
    )
    print(result.table())
    path = out_dir(args) / "trials.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["trial", "architecture", "params", "val_acc", "epochs", "state", "seconds"]
        )
        writer.writerows(
            [t.number + 1, t.config.describe(), t.params, t.val_acc, t.epochs, t.state, t.seconds]
            for t in result.trials
        )
    print(f"wrote {path}")
    config = result.best_config
    best = StagedCNN(config, num_classes=train.num_classes, in_channels=train.image_shape[0])
    vb.fit(
        best, train, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=False
    )
    accuracy = vb.evaluate(best, test).accuracy
    print(f"best architecture {config.describe()}: test accuracy {pct(accuracy)} after retraining")


if __name__ == "__main__":
    main()
