"""Bad output paths and inputs of predict and export are refused up front, in one line.

The companion of ``test_bad_inputs.py`` for the commands that write a file. An output path
that is one of the command's own inputs (also through a symbolic or hard link), a folder,
a path under a file, or a place that cannot be written (``/proc``) is refused before any
work: nothing is printed, nothing is written, the inputs keep their bytes. A NaN image, an
``input_shape`` with the wrong channels, an INT8 model and a model that returns a tuple
get a message that names the value and the fix, not advice about control flow or
"too many values to unpack" from deep inside the exporters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import visionblocks as vb
from visionblocks.cli import main

TINY = {"in_channels": 1, "image_size": 28, "widths": (4, 8, 8), "hidden": 16}
# What the old messages said: torch internals, a raw errno, advice that did not apply.
INTERNALS = ("aten::", "Traceback", "torch/", "site-packages", "Errno", "--debug")
MISLEADING = ("control flow", "too many values to unpack", "has no attribute")
HAS_PROC = Path("/proc/self").is_dir()


def tiny(num_classes: int = 10) -> nn.Module:
    return vb.simple_cnn(num_classes, **TINY)


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("model") / "model.pt"
    vb.save_checkpoint(path, tiny(), model_name="simple_cnn", model_kwargs=dict(TINY))
    return path.read_bytes()


@dataclass
class Run:
    """A fresh model file and folder of images per test, so an overwrite cannot leak."""

    model: Path
    images: Path
    tmp: Path

    def image(self, i: int = 0) -> Path:
        return self.images / f"{i}.png"

    def link(self, name: str, target: Path, *, hard: bool = False) -> Path:
        path = self.tmp / name
        if hard:
            os.link(target, path)
        else:
            path.symlink_to(target)
        return path

    def folder(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir()
        return path

    def inputs(self) -> list[Path]:
        return [self.model, *sorted(self.images.iterdir())]


@pytest.fixture
def run(model_bytes: bytes, tmp_path: Path) -> Run:
    model = tmp_path / "run" / "model.pt"
    model.parent.mkdir()
    model.write_bytes(model_bytes)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.new("L", (28, 28), 40 * i).save(images / f"{i}.png")
    return Run(model, images, tmp_path)


def _predict(r: Run, csv: Path | str, *inputs: Path) -> list[str]:
    return ["predict", str(r.model), *map(str, inputs or (r.images,)), "--csv", str(csv)]


def _export(r: Run, out: Path | str, *options: str) -> list[str]:
    return ["export", str(r.model), "--out", str(out), *options]


@dataclass(frozen=True)
class Refusal:
    """A command line that must fail before any work; its message names ``flag`` and the path."""

    argv: Callable[[Run], list[str]]
    flag: str
    says: str


PROC = pytest.mark.skipif(not HAS_PROC, reason="needs /proc")

CLI_CASES: dict[str, object] = {
    # item 4: a command never overwrites its own input
    "predict/csv-is-the-model": Refusal(lambda r: _predict(r, r.model), "--csv", "is the input"),
    "predict/csv-is-a-symlink-to-the-model": Refusal(
        lambda r: _predict(r, r.link("p.csv", r.model)), "--csv", "is the input"
    ),
    "predict/csv-is-a-hardlink-of-the-model": Refusal(
        lambda r: _predict(r, r.link("p.csv", r.model, hard=True)), "--csv", "is the input"
    ),
    "predict/csv-is-an-input-image": Refusal(
        lambda r: _predict(r, r.image(1), r.image(0), r.image(1)), "--csv", "is the input"
    ),
    "predict/csv-is-an-image-in-an-input-folder": Refusal(
        lambda r: _predict(r, r.image(2)), "--csv", "one of the images read from"
    ),
    "export/out-is-the-model-onnx": Refusal(
        lambda r: _export(r, r.model, "--format", "onnx"), "--out", "is the input"
    ),
    "export/out-is-the-model-pt2": Refusal(
        lambda r: _export(r, r.model, "--format", "pt2"), "--out", "is the input"
    ),
    "export/out-is-the-model-no-format": Refusal(
        lambda r: _export(r, r.model), "--out", "is the input"
    ),
    "export/out-is-a-symlink-to-the-model": Refusal(
        lambda r: _export(r, r.link("m.onnx", r.model)), "--out", "is the input"
    ),
    "export/out-is-a-hardlink-of-the-model": Refusal(
        lambda r: _export(r, r.link("m.pt2", r.model, hard=True)), "--out", "is the input"
    ),
    # item 8: output paths are checked before any work
    "predict/csv-under-a-file": Refusal(
        lambda r: _predict(r, r.model / "p.csv"), "--csv", "which is a file, not a folder"
    ),
    "predict/csv-is-a-folder": Refusal(
        lambda r: _predict(r, r.folder("out")), "--csv", "is a folder"
    ),
    "predict/csv-is-an-input-folder": Refusal(
        lambda r: _predict(r, r.images), "--csv", "is a folder"
    ),
    "predict/csv-in-proc": pytest.param(
        Refusal(lambda r: _predict(r, "/proc/p.csv"), "--csv", "cannot be written"), marks=PROC
    ),
    "export/out-under-a-file": Refusal(
        lambda r: _export(r, r.model / "m.onnx"), "--out", "which is a file, not a folder"
    ),
    "export/out-is-a-folder": Refusal(
        lambda r: _export(r, r.folder("m.onnx")), "--out", "is a folder"
    ),
    "export/out-in-proc": pytest.param(
        Refusal(lambda r: _export(r, "/proc/m.pt2"), "--out", "cannot be written"), marks=PROC
    ),
}


def _ids(cases: dict[str, object]) -> list[str]:
    return list(cases)


@pytest.mark.parametrize("case", list(CLI_CASES.values()), ids=_ids(CLI_CASES))
def test_cli_refuses_a_bad_output_path_before_any_work(
    case: Refusal, run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {path: path.read_bytes() for path in run.inputs()}
    argv = case.argv(run)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 1, (argv, out, err)
    assert out == "", "the command worked before refusing its output path"
    assert err.count("\n") == 1, err
    message = err.removeprefix(f"visionblocks {argv[0]}: error: ")
    path = argv[argv.index(case.flag) + 1]
    assert message.startswith(f"{case.flag} {path!r} "), message
    assert case.says in message, message
    assert not [word for word in INTERNALS if word in message], message
    assert {path: path.read_bytes() for path in run.inputs()} == before, "an input was changed"


def test_cli_still_replaces_an_earlier_output_that_is_no_input(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    # Control: the checks refuse inputs, not every existing file.
    old_csv, old_pt2 = run.tmp / "old.csv", run.tmp / "old.pt2"
    old_csv.write_text("stale\n")
    old_pt2.write_bytes(b"stale")
    assert main(_predict(run, old_csv)) == 0
    assert old_csv.read_text().startswith("image,index,class,probability")
    assert main(_export(run, old_pt2)) == 0
    assert torch.export.load(old_pt2).module()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_refuses_a_read_only_folder(run: Run, capsys: pytest.CaptureFixture[str]) -> None:
    locked = run.folder("locked")
    locked.chmod(0o500)
    try:
        assert main(_predict(run, locked / "p.csv")) == 1
    finally:
        locked.chmod(0o700)
    assert "cannot be written (Permission denied)" in capsys.readouterr().err


# The Python API: vb.export and vb.predict


@dataclass(frozen=True)
class Case:
    """One misuse of the Python API: the call, the exception, what its message names."""

    call: Callable[[Run], object]
    error: type[BaseException]
    names: tuple[str, ...]


class _Pair(nn.Module):
    """Returns ``(logits, features)``, as some detection-style heads do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(4, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.conv(x).mean((2, 3))
        return self.head(features), features


def _plain_conv_net() -> nn.Module:
    """No model card: the channels come from the first convolution."""
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def _int8() -> nn.Module:
    return vb.quantize_int8(tiny().eval(), torch.rand(8, 1, 28, 28))


def _nan_batch() -> torch.Tensor:
    x = torch.rand(4, 1, 28, 28)
    x[2, 0, 5, 5] = torch.nan
    return x


API_CASES: dict[str, Case] = {}
for _fmt in ("onnx", "pt2"):
    API_CASES |= {
        # item 4
        f"export/onto-its-model-file-{_fmt}": Case(
            lambda r, f=_fmt: vb.export(r.model, r.model, format=f), ValueError, ("path", "input")
        ),
        f"export/onto-a-hardlink-of-its-model-file-{_fmt}": Case(
            lambda r, f=_fmt: vb.export(r.model, r.link(f"m.{f}", r.model, hard=True)),
            ValueError,
            ("path", "is the input"),
        ),
        # item 8
        f"export/into-a-folder-{_fmt}": Case(
            lambda r, f=_fmt: vb.export(tiny(), r.folder(f"m.{f}")), ValueError, ("is a folder",)
        ),
        f"export/under-a-file-{_fmt}": Case(
            lambda r, f=_fmt: vb.export(tiny(), r.model / f"m.{f}"),
            ValueError,
            ("model.pt", "is a file, not a folder"),
        ),
        # item 12
        f"export/wrong-channels-{_fmt}": Case(
            lambda r, f=_fmt: vb.export(tiny(), r.tmp / f"m.{f}", input_shape=(3, 28, 28)),
            ValueError,
            ("input_shape=(3, 28, 28)", "takes 1", "(1, 28, 28)"),
        ),
        f"export/int8-{_fmt}": Case(
            lambda r, f=_fmt: vb.export(_int8(), r.tmp / f"m.{f}"),
            ValueError,
            ("INT8", "not supported", "float model"),
        ),
        f"export/tuple-output-{_fmt}": Case(
            lambda r, f=_fmt: vb.export(_Pair(), r.tmp / f"m.{f}", input_shape=(1, 16, 16)),
            ValueError,
            ("returns a tuple of 2", "one logits tensor"),
        ),
    }
API_CASES |= {
    "export/wrong-channels-without-a-card": Case(
        lambda r: vb.export(_plain_conv_net(), r.tmp / "m.pt2", input_shape=(3, 16, 16)),
        ValueError,
        ("input_shape=(3, 16, 16)", "first convolution '0'", "(1, 16, 16)"),
    ),
    "predict/nan-in-a-batch": Case(
        lambda r: vb.predict(tiny(), _nan_batch()), ValueError, ("tensor[2]", "NaN")
    ),
    "predict/infinity-in-a-list": Case(
        lambda r: vb.predict(tiny(), [torch.rand(1, 28, 28), torch.full((1, 28, 28), torch.inf)]),
        ValueError,
        ("tensor 1", "infinite"),
    ),
}
if HAS_PROC:
    API_CASES["export/into-proc"] = Case(
        lambda r: vb.export(tiny(), "/proc/m.pt2"), ValueError, ("/proc/m.pt2", "cannot be written")
    )


@pytest.mark.filterwarnings("ignore::UserWarning")  # predict's "no class names" warning
@pytest.mark.parametrize("case", list(API_CASES.values()), ids=_ids(API_CASES))
def test_api_refuses_with_one_clear_line(case: Case, run: Run) -> None:
    before = {path: path.read_bytes() for path in run.inputs()}
    with pytest.raises(case.error) as caught:
        case.call(run)
    message = str(caught.value)
    assert all(name in message for name in case.names), message
    assert "\n" not in message.strip(), message
    assert not [word for word in INTERNALS + MISLEADING if word in message], message
    assert {path: path.read_bytes() for path in run.inputs()} == before, "an input was changed"
