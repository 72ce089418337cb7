"""Sphinx configuration for the visionblocks documentation."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

project = "visionblocks"
author = "visionblocks developers"
copyright = "2026, visionblocks developers"
release = importlib.import_module("visionblocks").__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "myst_parser",  # renders CHANGELOG.md (docs/changelog.md includes it)
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 2

nitpicky = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields, so they never duplicate documented members
html_theme = "alabaster"
exclude_patterns = ["_build", "_generated", "figures"]

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "torch": ("https://docs.pytorch.org/docs/stable", None),
    "torchvision": ("https://docs.pytorch.org/vision/stable", None),
}
# Attributes are documented as fields of their class (napoleon_use_ivar), not as
# targets, so ``:attr:`name``` in a docstring links nowhere; the same goes for type
# aliases and private helpers that appear in signatures but are not documented pages.
nitpick_ignore_regex = [
    (r"py:.*", r"(.*\.)?_\w+"),
    (r"py:attr", r"\w+"),
    # Defined on a private base class, so autodoc does not list it on BasicBlock's entry.
    (r"py:meth", r"BasicBlock\.zero_init_last"),
    # Named without its module in signatures: torch's SWA helper.
    (r"py:class", r"AveragedModel"),
    (r"py:.*", r"(.*\.)?(DistContext|Block|NormLayer|ShortcutKind|PathLike|DataLike|PresetName)"),
]
# Build machines without internet (CI here) cannot fetch the inventories: set
# VISIONBLOCKS_DOCS_OFFLINE=1 to skip intersphinx and accept references into
# Python, torch and numpy as unresolved instead of failing the -W build.
if os.environ.get("VISIONBLOCKS_DOCS_OFFLINE"):
    intersphinx_mapping = {}
    nitpick_ignore_regex += [
        (
            r"py:.*",
            r"(torch|torchvision|numpy|np|nn|optuna|matplotlib|PIL|collections|os|pathlib|typing|argparse|enum)(\..*)?",
        ),
        (
            r"py:.*",
            r"(int|float|str|bool|bytes|object|list|dict|tuple|set|type|None|Callable|Iterable|Iterator|Sequence|Mapping|Any|Path|Literal|Protocol|TypeVar|Tensor|Module|Figure|Generator)",
        ),
    ]


# --------------------------------------------------------------------------- API reference
# One page per public module (docs/api/*.rst; written here for a new module that has
# none), each an ``automodule`` with ``:members:`` driven by the module's ``__all__``.
# What autodoc leaves out (undocumented names, re-exported constants, names only a
# public submodule exports) is kept or written here, see docs/_apigen.py; the
# top-level names are listed in a table generated from ``visionblocks.__all__``, each
# linked to the subpackage entry of the same object.

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _apigen  # noqa: E402 - docs/_apigen.py, shared with tests/docs

SUBPACKAGES = _apigen.public_modules()


def _public_members() -> set[tuple[str, int]]:
    """(name, id(object)) of every name in a documented subpackage's ``__all__``."""
    members = set()
    for modname in SUBPACKAGES:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            members.add((name, id(getattr(module, name))))
    return members


def _current_module(app: Any) -> str:
    document = getattr(app.env, "current_document", None)
    module = getattr(document, "autodoc_module", "") if document is not None else ""
    return module or app.env.temp_data.get("autodoc:module", "")


def _keep_public(app: Any, what: str, name: str, obj: Any, skip: bool, options: Any) -> Any:
    """Document each public object once, in its home module, even without a docstring."""
    if what != "module" or (name, id(obj)) not in PUBLIC:
        return None
    home = HOMES.get(id(obj))
    # Skipped elsewhere: listed under "Also exported by", linked to its home entry.
    return home is not None and home != _current_module(app)


def _resolve_public(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve ``visionblocks.load_model`` or ``RunState``-style names to their entry.

    A docstring may name an object by any public path (the top level, a private
    module, a re-export); each object has one entry, under its home module.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    documented = None
    if target.startswith("visionblocks."):
        parts = target.split(".")
        for cut in range(len(parts), 1, -1):  # the longest prefix that has an entry
            obj = _import_dotted(".".join(parts[:cut]))
            if obj is not None and id(obj) in DOCUMENTED:
                documented = ".".join([DOCUMENTED[id(obj)], *parts[cut:]])
                break
    elif "." not in target and target in UNIQUE_NAMES:
        documented = UNIQUE_NAMES[target]
    if documented is None or documented == target:
        return None
    domain = env.domains["py"]
    node = node.deepcopy()
    node["reftarget"] = documented
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], documented, node, contnode
    )


def _import_dotted(target: str) -> Any:
    parts = target.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


def _documented_entries() -> tuple[dict[int, str], dict[str, str]]:
    """``{id: entry}`` of every documented object, and ``{name: entry}`` for unique names."""
    entries: dict[int, str] = {}
    by_name: dict[str, set[str]] = {}
    for modname in SUBPACKAGES:
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            home = HOMES.get(id(obj), modname)
            if home == modname:
                entries.setdefault(id(obj), f"{modname}.{name}")
                by_name.setdefault(name, set()).add(f"{modname}.{name}")
    unique = {name: next(iter(found)) for name, found in by_name.items() if len(found) == 1}
    return entries, unique


def _write_toplevel_table() -> None:
    """docs/_generated/api_toplevel.rst: every name of ``visionblocks.__all__``, linked."""
    import visionblocks

    rows = []
    for name in visionblocks.__all__:
        obj = getattr(visionblocks, name)
        if name == "__version__":
            rows.append(("``__version__``", f"the installed version, ``{obj}``"))
        elif isinstance(obj, type(visionblocks)):
            rows.append((f":mod:`{obj.__name__}`", "subpackage"))
        elif id(obj) in DOCUMENTED:
            entry = DOCUMENTED[id(obj)]
            where = entry.rpartition(".")[0]
            rows.append((f":py:obj:`{name} <{entry}>`", f":mod:`{where}`"))
        else:
            rows.append((f":py:obj:`{name} <visionblocks.{name}>`", "below"))
    lines = [
        ".. Generated by docs/conf.py from visionblocks.__all__ at every build; do not edit.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 40 60",
        "",
        "   * - Name",
        "     - Documented in",
    ]
    for left, right in rows:
        lines += [f"   * - {left}", f"     - {right}"]
    orphans = _apigen.toplevel_orphans()
    if orphans:
        lines += ["", "Defined at the top level only:", ""]
        for directive, target in orphans:
            lines += [f".. {directive}:: {target}"]
            lines += ["   :members:", ""] if directive == "autoclass" else [""]
    out = HERE / "_generated" / "api_toplevel.rst"
    out.parent.mkdir(exist_ok=True)
    text = "\n".join(lines) + "\n"
    if not out.exists() or out.read_text() != text:
        out.write_text(text)


def _write_api_pages() -> None:
    """The extra entries of each public module, and a page for a module that has none."""
    folder = HERE / "_generated" / "api"
    folder.mkdir(parents=True, exist_ok=True)
    for modname in SUBPACKAGES:
        _write_if_changed(folder / f"{modname}.rst", _apigen.render_extra_entries(modname))
        page = HERE / "api" / f"{modname.rsplit('.', 1)[1]}.rst"
        if not page.exists():
            page.write_text(_apigen.page_stub(modname))
    _write_if_changed(HERE / "_generated" / "api_toctree.rst", _apigen.render_toctree(SUBPACKAGES))


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


PUBLIC = _public_members()
HOMES = _apigen.homes()
DOCUMENTED, UNIQUE_NAMES = _documented_entries()
_write_toplevel_table()
_write_api_pages()


def _drop_type_docstring(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """A constant has no docstring of its own: do not show its type's (``dict``'s)."""
    type_doc = getattr(type(obj), "__doc__", None)
    if what == "data" and lines and type_doc and lines[0].strip() in type_doc:
        lines[:] = []


def _no_inline_type(
    app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """Keep napoleon from reading a sentence before a colon as the constant's type.

    napoleon takes ``"type: description"`` on the first line of an attribute's
    docstring; "How a block matches shapes when ...: ..." is a sentence, not a type.
    """
    if what in {"data", "attribute", "property"} and lines and ":" in lines[0]:
        head, rest = lines[0].split(":", 1)
        words = head.split()
        is_type = len(words) == 1 or "[" in head or "`" in head
        is_type = is_type or (" or " in head and len(words) <= 5)  # "int or None"
        if not is_type:
            # A first line ending in a colon is read as a description, not a type.
            lines[0:1] = [head + ":", rest.strip()]


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _no_inline_type, priority=100)
    app.connect("autodoc-skip-member", _keep_public)
    app.connect("missing-reference", _resolve_public)
    app.connect("autodoc-process-docstring", _drop_type_docstring)
