"""What fit(metrics=...) adds to a validation pass, measured in one process.

Each side is the body of fit's validation on the same model and batches (the 10,000
Fashion-MNIST test images by default): ``before`` is the pass as it was without metrics
(run_eval, then loss and accuracy read back from three sums); ``loss+acc`` is today's
default pass (the same counts through MetricSet); the others add the built-ins (all
computed from the confusion matrix), a function of the gathered logits, and a
torchmetrics F1 updated per batch. Sides alternate (in a rotated order), so machine
noise hits each alike; the medians are compared. On a busy machine single passes vary
more than the metrics cost, so the script also times, alone, what the metrics add after
the pass (computing them from the counts, or calling the function on the gathered
logits), many times over.

    .venv/bin/python benchmarks/metrics_overhead.py
    .venv/bin/python benchmarks/metrics_overhead.py --dataset sample --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import visionblocks as vb
from visionblocks.data import LoaderOptions
from visionblocks.train import resolve_plan
from visionblocks.train._data import Batches, make_batches
from visionblocks.train._distributed import DistContext
from visionblocks.train._evaluate import reduce_sums, run_eval
from visionblocks.train._metrics import resolve_metrics


def errors(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float((logits.argmax(1) != targets).sum())


ALL_BUILTINS = ["top5_accuracy", "macro_f1", "balanced_accuracy", "per_class_recall", "min_recall"]


def sides(
    model: torch.nn.Module, batches: Batches, plan: object
) -> dict[str, Callable[[], object]]:
    ctx = DistContext()

    def before() -> object:
        sums = run_eval(model, batches, plan)  # type: ignore[arg-type]
        return torch.stack(
            [sums.loss_sum.float(), sums.confusion.diagonal().sum().float(),
             sums.confusion.sum().float()]
        ).tolist()  # fmt: skip

    def with_metrics(metrics: object) -> Callable[[], object]:
        chosen = resolve_metrics(metrics, always=True)

        def side() -> object:
            sums = run_eval(model, batches, plan, metrics=chosen)  # type: ignore[arg-type]
            return chosen.compute(reduce_sums(sums, ctx, per_example=chosen.needs_outputs))

        return side

    out = {
        "before (loss, acc)": before,
        "loss+acc": with_metrics(None),
        "+ all built-ins": with_metrics(ALL_BUILTINS),
        "+ a function": with_metrics(["macro_f1", errors]),
    }
    try:
        from torchmetrics.classification import MulticlassF1Score
    except ImportError:
        return out
    f1 = MulticlassF1Score(num_classes=10, average="macro", validate_args=False)
    out["+ torchmetrics F1"] = with_metrics([("tm_f1", f1)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    val = vb.load_dataset(args.dataset, "test")
    plan = resolve_plan("auto", "auto")
    torch.manual_seed(0)
    model = plan.prepare(vb.resnet20(in_channels=val.image_shape[0]))
    loading = LoaderOptions(batch_size=512, device=plan.device, channels_last=plan.channels_last,
                            mean=val.mean, std=val.std)  # fmt: skip
    batches = make_batches(val, loading, train=False)
    runs = sides(model, batches, plan)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for side in runs.values():  # warm-up
        side()
    names = list(runs)
    for repeat in range(args.repeats):  # a rotated order each time: no side always first
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            side = runs[name]
            start = time.perf_counter()
            side()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["before (loss, acc)"])
    print(f"{len(val):,} images ({args.dataset} test), ResNet-20, {plan.describe()}, "
          f"{args.threads} threads, {args.repeats} repeats")  # fmt: skip
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<20} median {median:7.3f} s  {100 * (median / base - 1):+6.1f}%  "
              f"(min {min(values):.3f} s, max {max(values):.3f} s)")  # fmt: skip
    print("after the pass, alone (median of 200):")
    for label, metrics in (("loss+acc", None), ("+ all built-ins", ALL_BUILTINS),
                           ("+ a function", ["macro_f1", errors])):  # fmt: skip
        chosen = resolve_metrics(metrics, always=True)
        sums = run_eval(model, batches, plan, metrics=chosen)
        costs = []
        for _ in range(200):
            start = time.perf_counter()
            chosen.compute(sums)
            costs.append(time.perf_counter() - start)
        print(f"{label:<20} {statistics.median(costs) * 1e3:7.3f} ms per validation")


if __name__ == "__main__":
    main()
