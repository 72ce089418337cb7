"""Shared pytest configuration for the visionblocks test suite."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/models/golden/*.json from the current code instead of comparing",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(autouse=True)
def _seed() -> None:
    # Every test starts from the same RNG state, so failures reproduce.
    torch.manual_seed(0)


def _write_cifar10(root: Path, per_batch: int, protocol: int = 2) -> dict[str, np.ndarray]:
    """Write random images in CIFAR-10's exact on-disk format under ``root/cifar-10-batches-py``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        written[name] = data
        written[name + "_labels"] = np.array(labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=protocol))
    return written


@pytest.fixture
def write_cifar10() -> Callable[..., dict[str, np.ndarray]]:
    """A function writing CIFAR-10 files in the exact format (``_write_cifar10``)."""
    return _write_cifar10
