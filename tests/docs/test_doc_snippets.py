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


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_examples_on_the_page_run(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = page.read_text()
    test = doctest.DocTestParser().get_doctest(text, {}, page.name, str(page), 0)
    if not test.examples:
        pytest.skip("no examples on this page")
    monkeypatch.chdir(tmp_path)
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
def test_every_python_block_is_a_doctest(page: Path) -> None:
    for _, body in CODE_BLOCK.findall(page.read_text()):
        if body.strip():
            assert ">>>" in body, (
                f"a Python code block in {page.name} is not a doctest, so nothing runs it; "
                f"write it as '>>>' examples:\n{body}"
            )
