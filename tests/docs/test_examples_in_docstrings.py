"""Every public class and function of visionblocks has an ``Example:`` doctest.

The public surface is the one the API reference documents (``docs/_apigen.py``): the
``__all__`` of ``visionblocks``, of every public module and subpackage and of their
public submodules. Modules, constants and type aliases are left out, and so are
objects defined outside visionblocks (re-exported torch or torchvision names). The
doctests themselves run with ``pytest --doctest-modules src/visionblocks``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

import visionblocks

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS))
import _apigen  # noqa: E402

# A Google-style section header on a line of its own, followed by a doctest prompt.
EXAMPLE = re.compile(r"^\s*Examples?:\s*\n(?:.*\n)*?\s*>>> ", re.MULTILINE)


def _public_objects() -> dict[int, tuple[str, object]]:
    """``{id: (dotted name, object)}``: each public class or function once."""
    modules = ["visionblocks"]
    for modname in _apigen.public_modules():
        modules += [modname, *_apigen.public_submodules(modname)]
    found: dict[int, tuple[str, object]] = {}
    for modname in modules:
        for name, obj in _apigen.exported(importlib.import_module(modname)).items():
            if not (inspect.isclass(obj) or inspect.isroutine(obj) or hasattr(obj, "__wrapped__")):
                continue  # constants, type aliases (Literal, unions) and modules
            if not (getattr(obj, "__module__", None) or "").startswith("visionblocks"):
                continue  # defined elsewhere, documented there
            found.setdefault(id(obj), (f"{modname}.{name}", obj))
    return found


def has_example(obj: object) -> bool:
    """Whether ``obj`` (or the function it wraps) has an ``Example:`` section with a doctest."""
    while obj is not None:
        if EXAMPLE.search((inspect.getdoc(obj) or "") + "\n"):
            return True
        obj = getattr(obj, "__wrapped__", None)
    return False


def test_every_public_class_and_function_has_an_example() -> None:
    missing = sorted(name for name, obj in _public_objects().values() if not has_example(obj))
    assert missing == [], f"public names whose docstring has no 'Example:' doctest: {missing}"


def test_the_walk_covers_every_subpackage_and_the_top_level() -> None:
    names = {name for name, _ in _public_objects().values()}
    for expected in (
        "visionblocks.fit",
        "visionblocks.resnet20",
        "visionblocks.cli.main",
        "visionblocks.nas.SearchResult",
        "visionblocks.transfer.adapt_conv_weight",
        "visionblocks.train.cpu_supports_bf16",
    ):
        assert expected in names, f"{expected} is not among the public objects walked"
    assert not any(name.endswith(".__version__") for name in names)
    assert id(visionblocks.quantize.QuantizationBackend) not in _public_objects()


def test_has_example_rejects_prose_and_accepts_a_doctest() -> None:
    def prose() -> None:
        """Examples whose class is among the top 5 (no section, no doctest)."""

    def section_without_doctest() -> None:
        """Do it.

        Example:
            Call it once.
        """

    def documented() -> None:
        """Do it.

        Example:
            >>> documented()
        """

    def wrapper() -> None:
        pass

    wrapper.__wrapped__ = documented  # type: ignore[attr-defined]
    assert not has_example(prose)
    assert not has_example(section_without_doctest)
    assert has_example(documented)
    assert has_example(wrapper)
