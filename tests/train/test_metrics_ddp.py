"""fit's validation metrics and evaluate(metrics=...) under torchrun: each image counted once.

This file is also the worker: ``torchrun --nproc_per_node=2 test_metrics_ddp.py OUT`` runs
:func:`worker` on each rank (gloo, on the CPU), which fits and evaluates the lookup-table
model of ``test_metrics.py`` on 101 images (an odd number: shards of 51 and 50, where a
padded shard would count 102 and a truncated one 100) and writes what it measured.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from lookup_model import Lookup
from torch.utils.data import TensorDataset
from two_ranks import run_two_ranks

import visionblocks as vb

SIZE, NUM_CLASSES = 101, 10


def case() -> tuple[Lookup, TensorDataset]:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(NUM_CLASSES, (SIZE,), generator=generator)
    logits = torch.randn(SIZE, NUM_CLASSES, generator=generator)
    logits[torch.arange(SIZE), labels] += 1.0
    images = torch.zeros(SIZE, 1, 2, 2)
    images[:, 0, 0, 0] = torch.arange(SIZE, dtype=torch.float32) / SIZE
    return Lookup(logits), TensorDataset(images, labels)


def in_order(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """A number that changes if the logits or the targets come in another order."""
    weights = torch.arange(len(targets), dtype=torch.float64)
    return float(((logits.argmax(1) * NUM_CLASSES + targets).double() * weights).sum())


def images(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(min(len(logits), len(targets)))


def metrics() -> list[Any]:
    chosen: list[Any] = ["macro_f1", "balanced_accuracy", "per_class_recall", "top5_accuracy",
                         "min_recall", in_order, images]  # fmt: skip
    try:
        from torchmetrics.classification import MulticlassF1Score
    except ImportError:
        return chosen
    return [*chosen, ("tm_f1", MulticlassF1Score(num_classes=NUM_CLASSES, average="macro"))]


def worker(out: Path) -> None:
    torch.set_num_threads(1)
    model, data = case()
    history = vb.fit(
        model, data, data, epochs=1, batch_size=10, metrics=metrics(), precision="fp32",
        progress=False, seed=0,
    )  # fmt: skip
    result = vb.evaluate(model, data, batch_size=16, precision="fp32", metrics=metrics())
    record = {
        "fit": {k[4:]: v for k, v in history.last.items() if k.startswith("val_")},
        "evaluate": result.metrics,
        "confusion": result.confusion.tolist(),
    }
    (out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_metrics_under_ddp_equal_a_single_process_evaluation(tmp_path: Path) -> None:
    ranks = run_two_ranks(__file__, tmp_path)
    model, data = case()
    alone = vb.evaluate(model, data, precision="fp32", device="cpu", metrics=metrics())
    assert ranks[0] == ranks[1]  # every rank records the same numbers
    for measured in (ranks[0]["fit"], ranks[0]["evaluate"]):
        # Catches shards padded or truncated (102 or 100 images), logits gathered out of
        # order, counts not summed over the ranks, a torchmetrics state not synced.
        assert measured["images"] == SIZE
        assert measured["in_order"] == alone.metrics["in_order"]
        for key, value in alone.metrics.items():
            assert measured[key] == pytest.approx(value, rel=1e-6 if key == "tm_f1" else 0), key
    assert ranks[0]["confusion"] == alone.confusion.tolist()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
