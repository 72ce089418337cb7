"""Exceptions raised when a dataset is missing or damaged."""

from __future__ import annotations

__all__ = ["CorruptDatasetError", "DatasetNotFoundError"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files were not found; the message names the paths tried and the fix."""


class CorruptDatasetError(ValueError):
    """A dataset file exists but is truncated, damaged or not in the expected format."""
