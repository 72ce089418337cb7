"""Exceptions raised when a dataset is missing or damaged."""

from __future__ import annotations

__all__ = ["CorruptDatasetError", "DatasetNotFoundError"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files were not found; the message names the paths tried and the fix.

    Example:
        >>> import tempfile
        >>> from visionblocks.data import load_dataset
        >>> try:
        ...     load_dataset("fashion-mnist", root=tempfile.mkdtemp())
        ... except DatasetNotFoundError as err:
        ...     print(str(err).split(":")[0], isinstance(err, FileNotFoundError))
        fashion-mnist (train) not found True
    """


class CorruptDatasetError(ValueError):
    """A dataset file exists but is truncated, damaged or not in the expected format.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from PIL import Image
        >>> from visionblocks.data import load_dataset
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("circle", "square"):
        ...     (folder / name).mkdir()
        ...     Image.new("L", (8, 8)).save(folder / name / "a.png")
        >>> _ = (folder / "square" / "broken.png").write_bytes(b"not a png")
        >>> try:
        ...     load_dataset(folder)
        ... except CorruptDatasetError as err:
        ...     print(str(err).split(" is ")[0].endswith("broken.png"), isinstance(err, ValueError))
        True True
    """
