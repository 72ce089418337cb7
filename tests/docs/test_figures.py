"""Every figure the docs show exists, is small enough to commit, and was generated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
MAX_BYTES = 200_000
DIRECTIVE = re.compile(r"^\s*\.\. (figure|image|include|literalinclude)::\s*(\S+)", re.MULTILINE)


def _sources() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.rst") if "_build" not in p.parts)


def _resolve(source: Path, target: str) -> Path:
    return DOCS / target.lstrip("/") if target.startswith("/") else source.parent / target


def _references(kinds: set[str]) -> list[tuple[Path, Path]]:
    refs = []
    for source in _sources():
        for kind, target in DIRECTIVE.findall(source.read_text()):
            if kind in kinds:
                refs.append((source, _resolve(source, target)))
    return refs


def _shown_figures() -> set[Path]:
    """Images reached from a page, directly or through an included file."""
    pages = [p for p in _sources() if "_generated" not in p.parts]
    seen: set[Path] = set()
    images: set[Path] = set()
    todo = list(pages)
    while todo:
        source = todo.pop()
        if source in seen or not source.exists():
            continue
        seen.add(source)
        for kind, target in DIRECTIVE.findall(source.read_text()):
            path = _resolve(source, target)
            if kind in {"figure", "image"}:
                images.add(path.resolve())
            elif kind == "include" and path.suffix == ".rst":
                todo.append(path)
    return images


def test_every_referenced_figure_exists_and_is_small() -> None:
    refs = _references({"figure", "image"})
    assert refs, "no figure directive found under docs/: the parser or the docs broke"
    for source, path in refs:
        rel = source.relative_to(DOCS)
        assert path.is_file(), f"{rel} shows {path}, which does not exist"
        size = path.stat().st_size
        assert size < MAX_BYTES, f"{path.name} is {size:,} bytes; keep figures under 200 KB"


def test_every_included_file_exists() -> None:
    for source, path in _references({"include", "literalinclude"}):
        assert path.is_file(), f"{source.relative_to(DOCS)} includes {path}, which is missing"


def test_the_docs_show_at_least_ten_generated_figures() -> None:
    shown = {p for p in _shown_figures() if p.parent == (DOCS / "figures").resolve()}
    assert len(shown) >= 10, f"only {len(shown)} figures from docs/figures are shown"


@pytest.mark.parametrize("png", sorted((DOCS / "figures").glob("*.png")), ids=lambda p: p.name)
def test_every_generated_figure_is_shown_with_its_caption(png: Path) -> None:
    caption = DOCS / "_generated" / "figures" / f"{png.stem}.rst"
    assert caption.is_file(), f"{png.name} has no generated caption file {caption.name}"
    assert png.resolve() in _shown_figures(), f"{png.name} is not shown on any page"
