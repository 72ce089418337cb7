"""Run settings as TOML: read ``--config FILE`` against a command's options, write ``config.toml``.

A config file sets a command's options by name (``batch_size`` or ``batch-size``, not
both); the command line overrides it. The tables a run writes (``[fit]`` and
``[environment]``) are records of the run, not options, and are skipped when the file
is read back; any other table is an error, as its keys would set nothing. Reading uses the standard
library's ``tomllib`` (``tomli`` on Python 3.10); writing needs only the few value types
the command line has (strings, numbers, booleans, lists of them), so it is done here.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--batch-size", type=int)
    >>> specs = option_specs(parser)
    >>> specs["batch_size"].flag, specs["batch_size"].kind
    ('--batch-size', 'int')
    >>> print(dumps({"batch_size": 64, "environment": {"torch": "2.5.0"}}), end="")
    batch_size = 64
    <BLANKLINE>
    [environment]
    torch = "2.5.0"
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from visionblocks._cli._common import CLIError

__all__ = ["OptionSpec", "dumps", "option_specs", "read_config", "toml_value", "write_config"]

_RECORD_TABLES = ("fit", "environment")
"""The tables a run's ``config.toml`` holds: records of the run, skipped when read back."""

_KIND_NAMES = {
    "bool": "a boolean (true or false)",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "list": "a list of strings",
}


@dataclass(frozen=True)
class OptionSpec:
    """What a config key must hold: the option's flag, value kind and choices."""

    flag: str
    kind: str  # "bool", "int", "float", "str" or "list" (of strings)
    choices: tuple[Any, ...] | None = None


def option_specs(parser: argparse.ArgumentParser) -> dict[str, OptionSpec]:
    """The options of ``parser`` that a config file may set, by destination name."""
    specs: dict[str, OptionSpec] = {}
    for action in parser._actions:  # argparse has no public list of its actions
        if not action.option_strings or action.dest in ("help", argparse.SUPPRESS):
            continue
        flag = max(action.option_strings, key=len)
        choices = tuple(action.choices) if action.choices is not None else None
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            kind = "bool"
        elif isinstance(action, argparse._AppendAction):
            kind = "list"
        elif action.type is int:
            kind = "int"
        elif action.type is float:
            kind = "float"
        else:
            kind = "str"
        specs[action.dest] = OptionSpec(flag, kind, choices)
    return specs


def read_config(path: str | Path, specs: Mapping[str, OptionSpec]) -> dict[str, Any]:
    """The options a TOML file sets, checked against ``specs``; record tables are skipped.

    Raises:
        CLIError: The file is missing or not TOML, a key is not an option (the message
            suggests the nearest) or is set twice (``batch_size`` and ``batch-size``), a
            table is not one of a run's records, or a value has the wrong type or is not
            a choice.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CLIError(f"--config {str(path)!r}: no such file.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise CLIError(f"--config {str(path)!r} cannot be read: {err}.") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise CLIError(f"--config {str(path)!r} is not valid TOML: {err}.") from None
    _check_tables(path, table)
    options: dict[str, Any] = {}
    spelt: dict[str, str] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            continue  # [environment], [fit]: what a run recorded, not options
        dest = key.replace("-", "_")
        if dest not in specs:
            names = sorted(specs)
            close = difflib.get_close_matches(dest, names, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CLIError(f"--config {str(path)!r}: unknown option {key!r}.{hint}")
        if dest in spelt:
            raise CLIError(
                f"--config {str(path)!r}: {spelt[dest]} and {key} are the same option "
                f"({specs[dest].flag}); keep one of them."
            )
        spelt[dest] = key
        options[dest] = _checked(path, key, value, specs[dest])
    return options


def _check_tables(path: Path, table: Mapping[str, Any]) -> None:
    """Refuse a table that would be skipped although it looks like options (``[fit]`` alone).

    The tables a run records are ``[fit]`` and ``[environment]``, written together; any
    other table, or a ``[fit]`` without ``[environment]``, is someone's options put where
    they would set nothing.
    """
    tables = [key for key, value in table.items() if isinstance(value, dict)]
    records = set(_RECORD_TABLES) if set(_RECORD_TABLES) <= set(tables) else {"environment"}
    for name in tables:
        if name not in records:
            keys = ", ".join(list(table[name])[:3])
            raise CLIError(
                f"--config {str(path)!r}: the table [{name}] ({keys}) sets nothing: options are "
                f"top-level keys (e.g. batch_size = 64, before any [table]); the only tables "
                f"allowed are {' and '.join(f'[{t}]' for t in _RECORD_TABLES)} together, the "
                f"records of a run that its config.toml holds (skipped when read)."
            )


def _checked(path: Path, key: str, value: Any, spec: OptionSpec) -> Any:
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "list": isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[spec.kind]
    if not ok:
        raise CLIError(
            f"--config {str(path)!r}: {key} must be {_KIND_NAMES[spec.kind]} (as {spec.flag}); "
            f"got {value!r}."
        )
    if spec.kind == "float":
        value = float(value)
    if spec.choices is not None and value not in spec.choices:
        raise CLIError(
            f"--config {str(path)!r}: {key} must be one of {', '.join(map(str, spec.choices))}; "
            f"got {value!r}."
        )
    return value


def dumps(settings: Mapping[str, Any]) -> str:
    """``settings`` as TOML: plain values first, then one ``[table]`` per mapping value.

    ``None`` values are left out (TOML has no null: a missing key means the default).
    """
    lines: list[str] = []
    _dump_table(settings, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(table: Mapping[str, Any], prefix: list[str], lines: list[str]) -> None:
    plain = {k: v for k, v in table.items() if v is not None and not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if prefix and (plain or not tables):
        lines += ["", f"[{'.'.join(_key(p) for p in prefix)}]"]
    lines += [f"{_key(k)} = {_value(v)}" for k, v in plain.items()]
    for key, sub in tables.items():
        _dump_table(sub, [*prefix, key], lines)


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        # JSON's escapes (\" \\ \n \uXXXX) are valid in TOML's basic strings.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) to TOML.")


def toml_value(value: Any) -> Any:
    """``value`` as a value :func:`dumps` writes: objects (a recipe's augmentation) as text.

    Example:
        >>> toml_value((3, 32, 32)), toml_value(None), toml_value(range(2))
        ([3, 32, 32], None, 'range(0, 2)')
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str)) for v in value):
        return list(value)
    return repr(value)


def write_config(path: str | Path, settings: Mapping[str, Any]) -> Path:
    """Write ``settings`` (see :func:`dumps`) to ``path``; return the path."""
    path = Path(path)
    path.write_text(dumps(settings), encoding="utf-8")
    return path
