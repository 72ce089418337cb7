"""Every Python example in the docs runs: each docs page is run as a doctest file.

Code on a page is written as ``>>>`` examples, so this test runs it and compares
what it prints. Examples that train for minutes carry ``# doctest: +SKIP`` and have a
smaller runnable variant next to them. Each page runs in a fresh temporary folder
with one torch thread.
"""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest
import torch

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.rst") if not {"_build", "_generated"} & set(p.parts))
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
CODE_BLOCK = re.compile(r"^\.\. code-block:: (python|pycon)\n((?:\n|   .*\n)+)", re.MULTILINE)


def _run(page: Path) -> None:
    """Run the page's examples as a doctest in the current folder, with one torch thread."""
    test = doctest.DocTestParser().get_doctest(page.read_text(), {}, page.name, str(page), 0)
    if not test.examples:
        pytest.skip("no examples on this page")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    try:
        result = runner.run(test, out=report.append, clear_globs=True)
    finally:
        torch.set_num_threads(threads)
    assert result.failed == 0, "".join(report)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_examples_on_the_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _run(page)


def test_the_own_data_page_runs_twice_in_one_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader runs the page again in the same folder: its folders already exist then.
    monkeypatch.chdir(tmp_path)
    _run(DOCS / "own_data.rst")
    _run(DOCS / "own_data.rst")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_folders_are_made_so_a_second_run_works(page: Path) -> None:
    calls = re.findall(r"(?:mkdir|makedirs)\(.*", page.read_text())
    # mkdir without exist_ok fails with FileExistsError when the example is run twice.
    assert all("exist_ok=True" in call for call in calls), calls


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_python_block_is_a_doctest(page: Path) -> None:
    for _, body in CODE_BLOCK.findall(page.read_text()):
        if body.strip():
            assert ">>>" in body, (
                f"a Python code block in {page.name} is not a doctest, so nothing runs it; "
                f"write it as '>>>' examples:\n{body}"
            )
