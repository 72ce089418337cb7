"""Multi-label validation and evaluate under torchrun: each image counted once, in order.

This file is also the worker: ``torchrun --nproc_per_node=2 test_multilabel_ddp.py OUT``
runs :func:`worker` on each rank (gloo, on the CPU), which fits and evaluates a
lookup-table model on 101 multi-hot images (shards of 51 and 50: the per-label counts sum
to ``101 * K``, which a size read from their total would take for 101 * K images).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from lookup_model import Lookup
from torch.utils.data import TensorDataset
from two_ranks import run_two_ranks

import visionblocks as vb

SIZE, K = 101, 5
METRICS = ["macro_f1", "per_label_ap", "per_label_f1"]


def case() -> tuple[Lookup, TensorDataset]:
    generator = torch.Generator().manual_seed(0)
    targets = (torch.rand(SIZE, K, generator=generator) < 0.3).float()
    logits = torch.randn(SIZE, K, generator=generator) + targets
    images = torch.zeros(SIZE, 1, 2, 2)
    images[:, 0, 0, 0] = torch.arange(SIZE, dtype=torch.float32) / SIZE
    return Lookup(logits), TensorDataset(images, targets)


def worker(out: Path) -> None:
    torch.set_num_threads(1)
    model, data = case()
    history = vb.fit(
        model, data, data, epochs=1, batch_size=10, metrics=METRICS, precision="fp32",
        progress=False, seed=0,
    )  # fmt: skip
    result = vb.evaluate(model, data, batch_size=16, precision="fp32", metrics=METRICS)
    record = {
        "fit": {k[4:]: v for k, v in history.last.items() if k.startswith("val_")},
        "evaluate": {**result.metrics, "acc": result.accuracy, "loss": result.loss},
        "average_precision": result.average_precision,
        "confusion": result.confusion.tolist(),
        "targets": result.targets.tolist(),
    }
    (out / f"rank{os.environ['RANK']}.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_multi_label_metrics_under_ddp_equal_a_single_process(tmp_path: Path) -> None:
    ranks = run_two_ranks(__file__, tmp_path)
    model, data = case()
    alone = vb.evaluate(model, data, precision="fp32", device="cpu", metrics=METRICS)
    assert ranks[0] == ranks[1]  # every rank records the same numbers
    # Catches the gathered size taken as images x labels, logits gathered out of order
    # (mAP changes), per-label counts not summed over the ranks.
    assert ranks[0]["targets"] == data.tensors[1].long().tolist()
    assert ranks[0]["confusion"] == alone.confusion.tolist()
    assert ranks[0]["average_precision"] == pytest.approx(alone.average_precision)
    for measured in (ranks[0]["fit"], ranks[0]["evaluate"]):
        assert measured["acc"] == alone.accuracy
        assert measured["loss"] == pytest.approx(alone.loss, rel=1e-6)
        for key, value in alone.metrics.items():
            assert measured[key] == pytest.approx(value), key
    assert ranks[0]["fit"]["map"] == pytest.approx(alone.mean_average_precision)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
