"""A small neural architecture search: kernel sizes, depths and widths, searched with Optuna.

Optuna is an optional dependency (``pip install visionblocks[nas]``), imported
only when :func:`search` runs.

Example:
    >>> from visionblocks.nas import ArchConfig
    >>> ArchConfig((3, 3), (1, 1), (8, 16)).build(num_classes=2).num_features
    16
"""

from visionblocks.nas._search import SearchResult, TrialResult, search
from visionblocks.nas._space import ArchConfig, SearchSpace, StagedCNN

__all__ = ["search", "SearchResult", "TrialResult", "ArchConfig", "SearchSpace", "StagedCNN"]
