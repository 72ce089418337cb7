"""Training recipes built from visionblocks components: the ``fast`` recipe.

The recipe's network, :class:`~visionblocks.models.FastCNN`, lives in
:mod:`visionblocks.models` with the other families; it is re-exported here so
``from visionblocks.recipes import FastCNN`` keeps working.

Example:
    >>> from visionblocks.recipes import fast_recipe
    >>> import torch
    >>> recipe = fast_recipe("fashion-mnist")
    >>> recipe.build_model(in_channels=1)(torch.zeros(1, 1, 28, 28)).shape
    torch.Size([1, 10])
"""

import warnings
from typing import Any

from visionblocks.models import ConvGroup, FastCNN, fast_cnn, whitening_filters
from visionblocks.recipes.fast import (
    RECIPE_PRESETS,
    FastRecipe,
    FastResult,
    fast_recipe,
    train_fast,
)
from visionblocks.train import WeightAveraging

__all__ = [
    "FastRecipe",
    "FastResult",
    "fast_recipe",
    "train_fast",
    "RECIPE_PRESETS",
    "FastCNN",
    "ConvGroup",
    "fast_cnn",
    "whitening_filters",
    "WeightAveraging",
]


def __getattr__(name: str) -> Any:
    # ``PRESETS`` was the 0.1 name; ``visionblocks.data.PRESETS`` names augmentation
    # presets, so the recipe table got a name of its own.
    if name == "PRESETS":
        warnings.warn(
            "visionblocks.recipes.PRESETS is deprecated and will be removed in 0.3; use "
            "visionblocks.recipes.RECIPE_PRESETS (the same dict).",
            DeprecationWarning,
            stacklevel=2,
        )
        return RECIPE_PRESETS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
