"""Training recipes built from visionblocks components: the ``fast`` recipe.

Example:
    >>> from visionblocks.recipes import fast_recipe
    >>> import torch
    >>> recipe = fast_recipe("fashion-mnist")
    >>> recipe.build_model(in_channels=1)(torch.zeros(1, 1, 28, 28)).shape
    torch.Size([1, 10])
"""

from visionblocks.recipes._averaging import WeightAveraging
from visionblocks.recipes._model import ConvGroup, FastCNN, fast_cnn, whitening_filters
from visionblocks.recipes.fast import PRESETS, FastRecipe, FastResult, fast_recipe, train_fast

__all__ = [
    "FastRecipe",
    "FastResult",
    "fast_recipe",
    "train_fast",
    "PRESETS",
    "FastCNN",
    "ConvGroup",
    "fast_cnn",
    "whitening_filters",
    "WeightAveraging",
]
