"""0.1 names of the recipes package kept for one release."""

from __future__ import annotations

import pytest

import visionblocks.recipes as recipes


def test_presets_is_a_deprecated_alias_of_recipe_presets() -> None:
    with pytest.warns(DeprecationWarning, match=r"recipes\.PRESETS is deprecated.*RECIPE_PRESETS"):
        presets = recipes.PRESETS
    assert presets is recipes.RECIPE_PRESETS


def test_unknown_attributes_still_raise() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'PRESET'"):
        _ = recipes.PRESET
