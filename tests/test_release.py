"""The release number is written once (``visionblocks.__version__``) and agrees everywhere."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import visionblocks
from visionblocks.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_reads_the_version_from_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # A static ``version =`` next to __version__ is the second copy that drifted (0.1.0 in 0.2).
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "visionblocks.__version__"
    }


def test_the_newest_changelog_release_is_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    headers = re.findall(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", changelog, re.M)
    # Unreleased on top (where new bullets go), then this release, dated.
    assert headers[0] == ("Unreleased", "")
    assert headers[1][0] == visionblocks.__version__
    assert headers[1][1], "the release header needs its date: ## [X.Y.Z] - YYYY-MM-DD"


def test_citation_names_this_version_and_its_date() -> None:
    citation = (ROOT / "CITATION.cff").read_text()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    version = visionblocks.__version__
    released = re.search(rf"^## \[{re.escape(version)}\] - (\S+)$", changelog, re.M)
    assert released is not None
    assert f"\nversion: {version}\n" in citation
    assert f'\ndate-released: "{released.group(1)}"\n' in citation


def test_version_flag_prints_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"visionblocks {visionblocks.__version__}\n"
