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

from visionblocks._deprecation import deprecated_names
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

__getattr__ = deprecated_names(__name__)
