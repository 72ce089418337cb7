"""Check where a file will be written before any work, so a bad path fails in one line.

Checked up front rather than where the file is finally written: there a bad path fails
with a raw ``OSError`` after the predicting or exporting is done, and a path that names
one of the caller's own inputs silently replaces it (``predict model.pt --csv model.pt``).
The library's :func:`~visionblocks.export` and the ``predict``/``export``/``train``
commands share these checks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["check_output_file", "write_probe"]


def write_probe(folder: Path) -> str | None:
    """Create ``folder`` and a file in it; ``None`` if that worked, else why not (strerror).

    Only writing tells: a folder can look writable and not be (``/proc``, a read-only mount).
    """
    probe = folder / f".visionblocks-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        return err.strerror or type(err).__name__
    return None


def check_output_file(
    path: str | os.PathLike[str], name: str, *, inputs: Iterable[str | os.PathLike[str]] = ()
) -> Path:
    """``path`` as a :class:`~pathlib.Path`, if a file can be written there without harm.

    Refused: a path that is one of ``inputs`` (also through a symbolic or hard link), a
    folder, a path under a file, and a place that cannot be written. Nothing is created
    or changed.

    Args:
        path: The file to be written.
        name: What the caller calls it in messages, e.g. ``"--csv"`` or ``"path"``.
        inputs: The files the caller reads; only looked at when ``path`` exists.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: The path is refused; the message names it and says what to do.

    Example:
        >>> import tempfile
        >>> check_output_file(f"{tempfile.mkdtemp()}/predictions.csv", "--csv").name
        'predictions.csv'
        >>> check_output_file(".", "--csv")
        Traceback (most recent call last):
            ...
        ValueError: --csv '.' is a folder; give the path of a file, in it or elsewhere.
    """
    target = Path(path)
    if target.exists():
        for source in inputs:
            # samefile compares device and inode: symbolic and hard links are caught too.
            if Path(source).exists() and os.path.samefile(target, source):
                raise ValueError(
                    f"{name} {str(target)!r} is the input {str(source)!r}, which writing it "
                    f"would replace; choose another path."
                )
    if target.is_dir():
        raise ValueError(
            f"{name} {str(target)!r} is a folder; give the path of a file, in it or elsewhere."
        )
    folder = target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(
            f"{name} {str(target)!r} is under {str(folder)!r}, which is a file, not a folder; "
            f"choose another path."
        )
    reason = _append_probe(target) if target.exists() else write_probe(folder)
    if reason is not None:
        raise ValueError(
            f"{name} {str(target)!r} cannot be written ({reason}); choose another path."
        )
    return target


def _append_probe(file: Path) -> str | None:
    """Open an existing ``file`` for appending, which changes nothing; why that failed."""
    try:
        with file.open("ab"):
            pass
    except OSError as err:
        return err.strerror or type(err).__name__
    return None
