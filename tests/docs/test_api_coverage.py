"""Every public name has an entry in the API reference (docs/api/).

The fast tests read the API pages' ``automodule`` directives: a page documents its
module's ``__all__``, plus what docs/_apigen.py adds (constants, names only a public
submodule exports). The slow test builds the docs and looks every name up in the
built inventory.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

import visionblocks

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS))
import _apigen  # noqa: E402

AUTOMODULE = re.compile(r"^\.\. automodule:: (\S+)\n((?:   :.*\n)*)", re.MULTILINE)


def _automodules() -> dict[str, str]:
    """``{module: options}`` of every ``automodule`` on the API pages."""
    found = {}
    for page in sorted((DOCS / "api").glob("*.rst")):
        for modname, options in AUTOMODULE.findall(page.read_text()):
            found[modname] = options
    return found


def _documented() -> tuple[set[int], set[str]]:
    """Ids of documented objects and dotted names of documented constants."""
    ids: set[int] = set()
    names: set[str] = set()
    for modname, options in _automodules().items():
        if ":members:" not in options or ":exclude-members:" in options:
            continue
        module = importlib.import_module(modname)
        for name, obj in _apigen.exported(module).items():
            ids.add(id(obj))
            names.add(f"{modname}.{name}")
        for _, target in _apigen.extra_entries(modname):
            owner, _, name = target.rpartition(".")
            ids.add(id(getattr(importlib.import_module(owner), name)))
            names.add(target)
    if "/_generated/api_toplevel.rst" in (DOCS / "api" / "index.rst").read_text():
        for _, target in _apigen.toplevel_orphans():
            ids.add(id(getattr(visionblocks, target.rpartition(".")[2])))
            names.add(target)
    return ids, names


def _all_public() -> list[tuple[str, str, Any]]:
    """(module, name, object) for the top level, every public module and submodule."""
    modules = ["visionblocks"]
    for modname in _apigen.public_modules():
        modules += [modname, *_apigen.public_submodules(modname)]
    out = []
    for modname in modules:
        for name, obj in _apigen.exported(importlib.import_module(modname)).items():
            out.append((modname, name, obj))
    return out


def test_every_public_module_has_an_api_page_with_members() -> None:
    pages = _automodules()
    for modname in _apigen.public_modules():
        assert modname in pages, (
            f"{modname} has no API page: add docs/api/{modname.rsplit('.', 1)[1]}.rst "
            "(the docs build writes one) with '.. automodule:: {modname}' and ':members:'"
        )
        assert ":members:" in pages[modname], f"the automodule of {modname} lacks :members:"
        assert ":exclude-members:" not in pages[modname], f"{modname}'s page excludes members"


def test_every_public_name_is_reachable_from_an_api_page() -> None:
    ids, names = _documented()
    missing = []
    for modname, name, obj in _all_public():
        if name == "__version__" or isinstance(obj, type(visionblocks)):
            continue
        if id(obj) not in ids and f"{modname}.{name}" not in names:
            missing.append(f"{modname}.{name}")
    assert missing == [], f"public names with no API entry: {missing}"


def test_the_coverage_check_sees_a_name_that_no_page_documents() -> None:
    ids, _ = _documented()
    assert id(visionblocks.fit) in ids
    assert id(_apigen.public_modules) not in ids


@pytest.mark.slow
def test_the_built_docs_have_an_entry_for_every_public_name(tmp_path: Path) -> None:
    from sphinx.cmd.build import build_main
    from sphinx.util.inventory import InventoryFile

    os.environ.setdefault("VISIONBLOCKS_DOCS_OFFLINE", "1")
    out = tmp_path / "html"
    assert build_main(["-W", "-q", "-b", "html", str(DOCS), str(out)]) == 0
    inventory = InventoryFile.loads((out / "objects.inv").read_bytes(), uri="")
    data = getattr(inventory, "data", inventory)
    entries = {name for kind, objs in data.items() if kind.startswith("py:") for name in objs}
    homes = _apigen.homes()
    canonical = {}
    for modname in _apigen.public_modules():
        for name, obj in _apigen.exported(importlib.import_module(modname)).items():
            if homes.get(id(obj), modname) == modname:
                canonical.setdefault(id(obj), f"{modname}.{name}")
    missing = []
    for modname, name, obj in _all_public():
        if name == "__version__" or isinstance(obj, type(visionblocks)):
            continue
        if f"{modname}.{name}" not in entries and canonical.get(id(obj)) not in entries:
            missing.append(f"{modname}.{name}")
    assert missing == [], f"public names without an entry in the built docs: {missing}"
