"""Which public names the API reference documents, and how: shared by conf.py and tests.

The API pages (``docs/api/*.rst``) are one ``automodule`` with ``:members:`` per public
module of ``visionblocks``, so each page documents its module's ``__all__``. autodoc
leaves out two kinds of public name, which :func:`extra_entries` lists so that conf.py
writes a directive for each (into ``docs/_generated/api/<module>.rst``, included by
the page):

* constants and aliases re-exported from a private module: autodoc documents a
  module-level value only when that module gives it a ``#:`` comment;
* names in the ``__all__`` of a public submodule (``visionblocks.models.vgg``) that
  the package itself does not re-export (``VGG_CONFIGS``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

PACKAGE = "visionblocks"


def public_modules() -> list[str]:
    """``visionblocks.<name>`` for every module or subpackage not starting with ``_``."""
    package = importlib.import_module(PACKAGE)
    return sorted(
        f"{PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def public_submodules(modname: str) -> list[str]:
    """The public modules inside a subpackage (none for a plain module)."""
    module = importlib.import_module(modname)
    path = getattr(module, "__path__", None)
    if path is None:
        return []
    return sorted(
        f"{modname}.{info.name}"
        for info in pkgutil.iter_modules(path)
        if not info.name.startswith("_")
    )


def exported(module: ModuleType) -> dict[str, object]:
    """``{name: object}`` for the module's ``__all__``."""
    return {name: getattr(module, name) for name in getattr(module, "__all__", ())}


def _is_value(obj: object) -> bool:
    return not (inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj))


def _directive(obj: object) -> str:
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return "autoexception"
    if inspect.isclass(obj):
        return "autoclass"
    if inspect.isroutine(obj):
        return "autofunction"
    return "autodata"


def _commented_attributes(modname: str) -> set[str]:
    from sphinx.pycode import ModuleAnalyzer

    try:
        docs = ModuleAnalyzer.for_module(modname).find_attr_docs()
    except Exception:
        return set()
    return {name for (scope, name) in docs if scope == ""}


def homes() -> dict[int, str]:
    """``{id(object): module}``: the one public module that documents each exported object.

    An object several modules export (``FastCNN`` in ``models`` and ``recipes``) gets
    one entry, in the module it is defined under (the longest prefix of its
    ``__module__``), else in the first of them in :data:`ORDER`; the others link to it.
    """
    exporters: dict[int, list[str]] = {}
    objects: dict[int, object] = {}
    for modname in public_modules():
        for obj in exported(importlib.import_module(modname)).values():
            if not _is_value(obj):
                exporters.setdefault(id(obj), []).append(modname)
                objects[id(obj)] = obj
    out = {}
    for key, modnames in exporters.items():
        defined_in = getattr(objects[key], "__module__", "") or ""
        under = [m for m in modnames if defined_in == m or defined_in.startswith(m + ".")]
        ranked = sorted(modnames, key=lambda m: _rank(m))
        out[key] = max(under, key=len) if under else ranked[0]
    return out


def _rank(modname: str) -> int:
    short = modname.rsplit(".", 1)[1]
    return ORDER.index(short) if short in ORDER else len(ORDER)


def elsewhere(modname: str) -> list[tuple[str, str]]:
    """``(name, documented as)`` for this module's exports documented in another module."""
    home = homes()
    out = []
    for name, obj in exported(importlib.import_module(modname)).items():
        where = home.get(id(obj))
        if where is not None and where != modname:
            owner = exported(importlib.import_module(where))
            documented = next(n for n, o in owner.items() if o is obj)
            out.append((name, f"{where}.{documented}"))
    return out


def extra_entries(modname: str) -> list[tuple[str, str]]:
    """``(directive, dotted name)`` for the public names ``automodule`` would leave out."""
    module = importlib.import_module(modname)
    names = exported(module)
    commented = _commented_attributes(modname)
    entries = [
        ("autodata", f"{modname}.{name}")
        for name, obj in names.items()
        if _is_value(obj) and name not in commented
    ]
    covered: set[object] = set(homes()) | {id(obj) for obj in names.values() if not _is_value(obj)}
    covered |= {name for name, obj in names.items() if _is_value(obj)}
    for submodule in public_submodules(modname):
        for name, obj in exported(importlib.import_module(submodule)).items():
            key = name if _is_value(obj) else id(obj)
            if key in covered or inspect.ismodule(obj):
                continue
            covered.add(key)
            entries.append((_directive(obj), f"{submodule}.{name}"))
    return entries


def render_extra_entries(modname: str) -> str:
    lines = [".. Generated by docs/conf.py (docs/_apigen.py); do not edit.", ""]
    shared = elsewhere(modname)
    if shared:
        lines += [f"Also exported by ``{modname}``, documented once where they are defined:", ""]
        lines += [f"* ``{name}``: :py:obj:`{target}`" for name, target in shared]
        lines += [""]
    for directive, target in extra_entries(modname):
        lines += [f".. {directive}:: {target}"]
        if directive == "autoclass":
            lines += ["   :members:"]
        lines += [""]
    return "\n".join(lines)


def toplevel_orphans() -> list[tuple[str, str]]:
    """``(directive, dotted name)`` for top-level names that no public module exports.

    They are documented on the API index page, as ``visionblocks.<name>``.
    """
    package = importlib.import_module(PACKAGE)
    homes = {
        id(obj)
        for modname in public_modules()
        for obj in exported(importlib.import_module(modname)).values()
    }
    return [
        (_directive(obj), f"{PACKAGE}.{name}")
        for name, obj in exported(package).items()
        if name != "__version__" and not inspect.ismodule(obj) and id(obj) not in homes
    ]


def page_stub(modname: str) -> str:
    """A page for a public module that has none yet (conf.py writes it into docs/api/)."""
    title = f"``{modname}``"
    return (
        f"{title}\n{'=' * len(title)}\n\n"
        f".. automodule:: {modname}\n   :members:\n   :show-inheritance:\n\n"
        f".. include:: /_generated/api/{modname}.rst\n"
    )


ORDER = [
    "models", "model_file", "data", "train", "transfer", "analysis", "inference", "recipes",
    "quantize", "nas", "cli",
]  # fmt: skip


def render_toctree(modnames: list[str]) -> str:
    """The API pages' toctree: the usual order first, any newer module after."""
    short = [m.rsplit(".", 1)[1] for m in modnames]
    pages = [s for s in ORDER if s in short] + sorted(s for s in short if s not in ORDER)
    lines = [".. Generated by docs/conf.py (docs/_apigen.py); do not edit.", ""]
    lines += [".. toctree::", "   :maxdepth: 1", ""] + [f"   /api/{p}" for p in pages]
    return "\n".join(lines) + "\n"
