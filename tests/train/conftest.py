"""Data the training tests share: the sample set, and a small real subset of it."""

from __future__ import annotations

import pytest

import visionblocks as vb
from visionblocks.data import load_dataset, subset


@pytest.fixture(scope="module")
def sample() -> vb.data.ImageDataset:
    """The 2,000 real Fashion-MNIST training images shipped in the package."""
    return load_dataset("sample")


@pytest.fixture(scope="module")
def small(sample: vb.data.ImageDataset) -> vb.data.ImageDataset:
    """400 of them, the same share of every class."""
    return subset(sample, 0.2, seed=0)
