"""One table of deprecations: every old name warns, resolves, and is in the CHANGELOG."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from visionblocks._deprecation import DEPRECATIONS, REMOVED_IN, Deprecation

CHANGELOG = Path(__file__).resolve().parents[1] / "CHANGELOG.md"
NAMES = [entry for entry in DEPRECATIONS if entry.target is not None]


@pytest.mark.parametrize("entry", NAMES, ids=lambda e: e.old)
def test_every_deprecated_name_warns_and_gives_its_replacement(entry: Deprecation) -> None:
    module, _, name = entry.old.rpartition(".")
    owner, _, attribute = (entry.target or "").partition(":")
    with pytest.warns(DeprecationWarning, match=rf"removed in {REMOVED_IN}; use "):
        old = getattr(importlib.import_module(module), name)
    assert old is getattr(importlib.import_module(owner), attribute)
    assert name not in getattr(importlib.import_module(module), "__all__", ())


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'PRESET'"):
        importlib.import_module("visionblocks.data").PRESET  # noqa: B018


@pytest.mark.parametrize("entry", DEPRECATIONS, ids=lambda e: e.old)
def test_the_changelog_lists_every_deprecation(entry: Deprecation) -> None:
    deprecated = CHANGELOG.read_text().split("### Deprecated", 1)[1].split("\n## ", 1)[0]
    assert f"`{entry.old}`" in deprecated
