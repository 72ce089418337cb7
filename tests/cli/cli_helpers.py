"""What the command-line tests share: a command's one-line error, and Ctrl-C at a step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import visionblocks as vb
from visionblocks.cli import main


def error_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one-line error of a failing command."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"visionblocks {argv[0]}: error: "), err
    assert "Traceback" not in err
    return err


class Interrupt(vb.train.Callback):
    """Press Ctrl-C after optimizer step ``at`` (1-based, counted over the whole run)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_end(self, trainer: Any, step: int) -> None:
        if step == self.at:
            raise KeyboardInterrupt


def interrupting_fit(at: int) -> Callable[..., Any]:
    """``fit`` with an :class:`Interrupt` at step ``at`` added to its callbacks."""

    def patched(*args: Any, callbacks: list[Any], **kwargs: Any) -> Any:
        return vb.train.fit(*args, callbacks=[*callbacks, Interrupt(at)], **kwargs)

    return patched
