"""The generated models table lists every registered model with its real size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import visionblocks as vb

TABLE = Path(__file__).resolve().parents[2] / "docs" / "_generated" / "models_table.rst"


def _rows() -> dict[str, list[str]]:
    text = TABLE.read_text()
    rows: dict[str, list[str]] = {}
    for block in re.split(r"^   \* - ", text, flags=re.MULTILINE)[2:]:
        cells = [c.strip() for c in re.split(r"^     - ", block, flags=re.MULTILINE)]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_table_lists_every_registered_model_and_nothing_else() -> None:
    listed = set(_rows())
    registered = set(vb.list_models())
    assert registered - listed == set(), (
        f"missing from the models table: {sorted(registered - listed)}; "
        "run .venv/bin/python docs/figures/make_models_table.py"
    )
    assert listed - registered == set(), f"no longer registered: {sorted(listed - registered)}"


@pytest.mark.parametrize("name", ["simple_cnn", "resnet20", "mobilenetv2_cifar"])
def test_parameter_counts_match_the_code(name: str) -> None:
    row = _rows()[name]
    for column, in_channels in ((0, 1), (1, 3)):
        kwargs = {"image_size": 28} if in_channels == 1 and name == "simple_cnn" else {}
        model = vb.create_model(name, in_channels=in_channels, **kwargs)
        count = sum(p.numel() for p in model.parameters())
        assert row[column] == f"{count:,}", f"{name}, {in_channels} channel(s)"
