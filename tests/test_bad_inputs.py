"""Bad inputs are refused up front, each with one line that names the value and the fix.

One table of misuses across the public API. Every case checks the exception type, that
the message names the bad argument or value, that it is a single line, and that it
carries no torch internals (a message from deep inside torch names none of our
arguments, spans lines, or advises ``weights_only=False``). The data and models are
tiny so the whole table runs in seconds.
"""

from __future__ import annotations

import math
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks.data import CutMix, DeviceLoader, MixUp, augmentation, load_dataset, subset
from visionblocks.train import Callback, CheckpointError

INTERNALS = ("aten::", "Traceback", "torch/", "weights_only=False", "site-packages")
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
TINY = {"in_channels": 1, "image_size": 28, "widths": (4, 8, 8), "hidden": 16}


def tiny(num_classes: int = 10) -> nn.Module:
    return vb.simple_cnn(num_classes, **TINY)


class _CodeOnLoad:
    """Pickles as a call to ``open(marker, "w")``: loading it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


class _Images(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """A plain map-style Dataset (read batch by batch, not checked as a whole)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], index % 10


class _Returns(nn.Module):
    """A model whose forward returns ``output(x)``: shapes a classifier never returns."""

    def __init__(self, output: Callable[[torch.Tensor], Any]) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.output = output

    def forward(self, x: torch.Tensor) -> Any:
        return self.output(x * self.scale)


@dataclass
class Ctx:
    """What the cases use: tiny data, bad files, the marker a malicious file would write."""

    data: vb.ImageDataset
    pair: tuple[torch.Tensor, torch.Tensor]
    files: dict[str, Path]
    marker: Path
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def fit(self, model: nn.Module | None = None, data: Any = None, **kwargs: Any) -> Any:
        kwargs = {"epochs": 1, "progress": False, "precision": "fp32", "device": "cpu", **kwargs}
        return vb.fit(model or tiny(), self.data if data is None else data, **kwargs)

    def evaluate(self, model: nn.Module | None = None, data: Any = None, **kwargs: Any) -> Any:
        kwargs = {"precision": "fp32", "device": "cpu", **kwargs}
        return vb.evaluate(model or tiny(), self.data if data is None else data, **kwargs)

    def offline(self) -> None:
        """No network and an empty download cache, whatever the machine running the tests."""

        def refuse(*args: object, **kwargs: object) -> None:
            raise urllib.error.URLError("[Errno -2] Name or service not known")

        self.monkeypatch.setattr(torch.hub, "urlopen", refuse)
        self.monkeypatch.setattr(torch.hub, "get_dir", lambda: str(self.tmp / "hub"))


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    torch.manual_seed(0)
    data = subset(load_dataset("sample"), 0.02)  # 40 images, 4 per class
    folder = tmp_path_factory.mktemp("bad_files")
    good = folder / "good.pt"
    vb.save_checkpoint(good, tiny(), model_name="simple_cnn", model_kwargs=dict(TINY))
    raw = good.read_bytes()
    files = {
        "truncated": folder / "truncated.pt",
        "random": folder / "random.pt",
        "empty": folder / "empty.pt",
        "directory": folder / "directory.pt",
        "code": folder / "code.pt",
        "state_dict": folder / "state_dict.pt",
        "good": good,
    }
    files["truncated"].write_bytes(raw[: len(raw) // 2])
    files["random"].write_bytes(np.random.default_rng(0).bytes(4096))
    files["empty"].write_bytes(b"")
    files["directory"].mkdir()
    marker = folder / "MARKER_code_ran"
    torch.save({"model": _CodeOnLoad(marker)}, files["code"])
    torch.save(tiny().state_dict(), files["state_dict"])
    return {"data": data, "files": files, "marker": marker}


@pytest.fixture
def ctx(shared: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    data = shared["data"]
    return Ctx(
        data, (data.images, data.labels), shared["files"], shared["marker"], tmp_path, monkeypatch
    )


@dataclass(frozen=True)
class Case:
    """One misuse: what is called, the exception it must raise, and what its message names."""

    call: Callable[[Ctx], object]
    error: type[BaseException]
    names: str


def _float_pair(ctx: Ctx, images: torch.Tensor | None = None, labels: Any = None) -> Any:
    x = ctx.pair[0].float() / 255 if images is None else images
    return (x, ctx.pair[1] if labels is None else labels)


def _nan_images(ctx: Ctx) -> torch.Tensor:
    x = ctx.pair[0].float() / 255
    x[3, 0, 5, 5] = math.nan
    return x


def _empty(ctx: Ctx) -> tuple[torch.Tensor, torch.Tensor]:
    return ctx.pair[0][:0], ctx.pair[1][:0]


def _calibration(shape: tuple[int, ...] = (8, 1, 28, 28)) -> torch.Tensor:
    return torch.rand(shape)


CASES: dict[str, Any] = {
    # fit: data
    "fit/empty-train": Case(lambda c: c.fit(data=_empty(c)), ValueError, "training data is empty"),
    "fit/empty-val": Case(lambda c: c.fit(val=_empty(c)), ValueError, "validation data is empty"),
    "fit/nan-images": Case(lambda c: c.fit(data=_float_pair(c, _nan_images(c))), ValueError, "NaN"),
    "fit/float-0-255": Case(
        lambda c: c.fit(data=_float_pair(c, c.pair[0].float())), ValueError, "divide by 255"
    ),
    "fit/soft-labels": Case(
        lambda c: c.fit(data=_float_pair(c, labels=c.pair[1].float() + 0.5)),
        ValueError,
        "non-integer",
    ),
    "fit/labels-beyond-head": Case(
        lambda c: c.fit(tiny(num_classes=3)), ValueError, "num_classes=10"
    ),
    "fit/val-labels-beyond-head": Case(
        lambda c: c.fit(
            tiny(num_classes=3),
            data=(c.pair[0][c.pair[1] < 3], c.pair[1][c.pair[1] < 3]),
            val=c.data,
        ),
        ValueError,
        "validation labels",
    ),
    "fit/zero-output-head": Case(lambda c: c.fit(tiny(num_classes=0)), ValueError, "0 outputs"),
    "fit/wrong-channels": Case(
        lambda c: c.fit(vb.simple_cnn(10, **{**TINY, "in_channels": 3})),
        ValueError,
        "in_channels=1",
    ),
    "fit/dataset-name": Case(lambda c: c.fit(data="sample"), TypeError, "load_dataset('sample')"),
    "fit/numpy-channels-last": Case(
        lambda c: c.fit(data=(c.pair[0].permute(0, 2, 3, 1).numpy(), c.pair[1].numpy())),
        ValueError,
        "transpose(0, 3, 1, 2)",
    ),
    # fit: hyper-parameters
    "fit/lr-inf": Case(lambda c: c.fit(lr=math.inf), ValueError, "lr"),
    "fit/weight-decay-nan": Case(
        lambda c: c.fit(weight_decay=math.nan), ValueError, "weight_decay"
    ),
    "fit/mixup-nan": Case(lambda c: c.fit(mixup=math.nan), ValueError, "mixup"),
    "fit/cutmix-nan": Case(lambda c: c.fit(cutmix=math.nan), ValueError, "cutmix"),
    "fit/epochs-0": Case(lambda c: c.fit(epochs=0), ValueError, "epochs"),
    "fit/batch-size-0": Case(lambda c: c.fit(batch_size=0), ValueError, "batch_size"),
    "fit/accumulate-0": Case(lambda c: c.fit(accumulate=0), ValueError, "accumulate"),
    "fit/ema-1.5": Case(lambda c: c.fit(ema=1.5), ValueError, "ema"),
    "fit/precision": Case(lambda c: c.fit(precision="fp8"), ValueError, "'fp8'"),
    "fit/augment": Case(lambda c: c.fit(augment="nope"), ValueError, "'nope'"),
    "fit/device-cuda": pytest.param(
        Case(lambda c: c.fit(device="cuda"), ValueError, "device='cuda'"), marks=NO_CUDA
    ),
    "fit/device-name": Case(lambda c: c.fit(device="gpu0"), ValueError, "'gpu0'"),
    "fit/resume-missing": Case(
        lambda c: c.fit(resume=c.tmp / "none.pt"), FileNotFoundError, "none.pt"
    ),
    # evaluate
    "evaluate/empty": Case(lambda c: c.evaluate(data=_empty(c)), ValueError, "empty"),
    "evaluate/nan-images": Case(
        lambda c: c.evaluate(data=_float_pair(c, _nan_images(c))), ValueError, "NaN"
    ),
    "evaluate/nan-images-dataset": Case(
        lambda c: c.evaluate(data=_Images(_nan_images(c))), ValueError, "NaN"
    ),
    "evaluate/zero-std": Case(
        lambda c: c.evaluate(stats=((0.3,), (0.0,))), ValueError, "std must be > 0"
    ),
    "evaluate/negative-std": Case(
        lambda c: c.evaluate(stats=((0.3,), (-0.2,))), ValueError, "std=(-0.2,)"
    ),
    "evaluate/nan-std": Case(
        lambda c: c.evaluate(stats=((0.3,), (math.nan,))), ValueError, "finite"
    ),
    "evaluate/stats-channels": Case(
        lambda c: c.evaluate(stats=((0.3,) * 3, (0.2,) * 3)), ValueError, "one per channel"
    ),
    "evaluate/stats-not-pair": Case(lambda c: c.evaluate(stats=(0.3, 0.2)), TypeError, "mean=0.3"),
    "evaluate/output-4d": Case(
        lambda c: c.evaluate(_Returns(lambda x: x)), ValueError, "(B, num_classes)"
    ),
    "evaluate/output-tuple": Case(
        lambda c: c.evaluate(_Returns(lambda x: (x.flatten(1), x))), ValueError, "a tuple"
    ),
    "evaluate/output-too-narrow": Case(
        lambda c: c.evaluate(_Returns(lambda x: x.flatten(1)[:, :3])), ValueError, "3 outputs"
    ),
    "evaluate/labels-beyond-head": Case(
        lambda c: c.evaluate(tiny(num_classes=4)), ValueError, "num_classes=10"
    ),
    "evaluate/batch-size-0": Case(lambda c: c.evaluate(batch_size=0), ValueError, "batch_size"),
    "evaluate/device-cuda": pytest.param(
        Case(lambda c: c.evaluate(device="cuda"), ValueError, "device='cuda'"), marks=NO_CUDA
    ),
    "evaluate/numpy-strings": Case(
        lambda c: c.evaluate(data=(c.pair[0].numpy().astype(str), c.pair[1].numpy())),
        TypeError,
        "numeric dtype",
    ),
    # lr_find
    "lr_find/empty": Case(
        lambda c: vb.lr_find(tiny(), _empty(c), device="cpu"), ValueError, "empty"
    ),
    "lr_find/nan-images": Case(
        lambda c: vb.lr_find(tiny(), _float_pair(c, _nan_images(c)), device="cpu"),
        ValueError,
        "NaN",
    ),
    "lr_find/lr-range": Case(
        lambda c: vb.lr_find(tiny(), c.data, start_lr=1.0, end_lr=0.1), ValueError, "start_lr"
    ),
    "lr_find/num-steps": Case(
        lambda c: vb.lr_find(tiny(), c.data, num_steps=1), ValueError, "num_steps"
    ),
    # DeviceLoader
    "DeviceLoader/device-cuda": pytest.param(
        Case(lambda c: DeviceLoader(c.data, batch_size=8, device="cuda"), ValueError, "CUDA"),
        marks=NO_CUDA,
    ),
    "DeviceLoader/device-name": Case(
        lambda c: DeviceLoader(c.data, batch_size=8, device="nope"), ValueError, "'nope'"
    ),
    "DeviceLoader/batch-size-0": Case(
        lambda c: DeviceLoader(c.data, batch_size=0), ValueError, "batch_size"
    ),
    "DeviceLoader/batch-size-str": Case(
        lambda c: DeviceLoader(c.data, batch_size="8"), ValueError, "batch_size"
    ),
    "DeviceLoader/seed": Case(
        lambda c: DeviceLoader(c.data, batch_size=8, seed=-1), ValueError, "seed"
    ),
    "DeviceLoader/rank": Case(
        lambda c: DeviceLoader(c.data, batch_size=8, rank=2, world_size=2), ValueError, "rank=2"
    ),
    "DeviceLoader/zero-std": Case(
        lambda c: DeviceLoader(c.data, batch_size=8, mean=(0.3,), std=(0.0,)), ValueError, "std"
    ),
    "DeviceLoader/mean-length": Case(
        lambda c: DeviceLoader(c.data, batch_size=8, mean=(0.3, 0.3), std=(1.0, 1.0)),
        ValueError,
        "one per channel",
    ),
    "DeviceLoader/empty": Case(
        lambda c: DeviceLoader(_empty(c), batch_size=8), ValueError, "empty"
    ),
    "DeviceLoader/soft-labels": Case(
        lambda c: DeviceLoader(_float_pair(c, labels=c.pair[1] + 0.7), batch_size=8),
        ValueError,
        "non-integer",
    ),
    "DeviceLoader/num-classes": Case(
        lambda c: DeviceLoader(c.data, batch_size=8, num_classes=2), ValueError, "num_classes=2"
    ),
    "DeviceLoader/not-a-pair": Case(
        lambda c: DeviceLoader([c.pair[0]], batch_size=8), TypeError, "got list"
    ),
    "DeviceLoader/augment": Case(
        lambda c: DeviceLoader(c.data, batch_size=8, augment="nope"), ValueError, "'nope'"
    ),
    # datasets, augmentation, mixing
    "load_dataset/name": Case(lambda c: load_dataset("nope"), ValueError, "'nope'"),
    "load_dataset/split": Case(lambda c: load_dataset("sample", split="dev"), ValueError, "'dev'"),
    "load_dataset/val-fraction": Case(
        lambda c: load_dataset("sample", val_fraction=0.2), ValueError, "val_fraction"
    ),
    "subset/fraction-0": Case(lambda c: subset(c.data, 0.0), ValueError, "fraction"),
    "subset/fraction-str": Case(lambda c: subset(c.data, "half"), TypeError, "'half'"),
    "augmentation/name": Case(lambda c: augmentation("nope"), ValueError, "'nope'"),
    "MixUp/alpha-nan": Case(lambda c: MixUp(alpha=math.nan), ValueError, "alpha"),
    "MixUp/alpha-negative": Case(lambda c: MixUp(alpha=-1.0), ValueError, "-1.0"),
    "MixUp/alpha-str": Case(lambda c: MixUp(alpha="0.2"), TypeError, "'0.2'"),
    "CutMix/alpha-nan": Case(lambda c: CutMix(alpha=math.nan), ValueError, "alpha"),
    "CutMix/alpha-0": Case(lambda c: CutMix(alpha=0), ValueError, "alpha"),
    "MixUp/float-labels": Case(
        lambda c: MixUp(0.2)(torch.rand(2, 1, 4, 4), torch.tensor([0.5, 1.0]), 10),
        ValueError,
        "int64",
    ),
    # models and inspection
    "create_model/name": Case(lambda c: vb.create_model("nope"), ValueError, "'nope'"),
    "create_model/keyword": Case(
        lambda c: vb.create_model("simple_cnn", depthx=3), TypeError, "'depthx'"
    ),
    "create_model/num-classes": Case(
        lambda c: vb.create_model("simple_cnn", num_classes=-1), ValueError, "num_classes"
    ),
    "summary/device-cuda": pytest.param(
        Case(lambda c: vb.summary(tiny(), (1, 28, 28), device="cuda"), ValueError, "CUDA"),
        marks=NO_CUDA,
    ),
    "summary/input-size": Case(lambda c: vb.summary(tiny(), (1, 0, 28)), ValueError, "input_size"),
    "summary/batch-size": Case(
        lambda c: vb.summary(tiny(), (1, 28, 28), batch_size=0), ValueError, "batch_size"
    ),
    "summary/channels": Case(
        lambda c: vb.summary(tiny(), (3, 28, 28)), ValueError, "in_channels=1"
    ),
    "receptive_field/input-size": Case(
        lambda c: vb.receptive_field(tiny(), (1, -28, 28)), ValueError, "input_size"
    ),
    "grad_cam/no-batch": Case(
        lambda c: vb.grad_cam(tiny(), torch.rand(1, 28, 28)), ValueError, "unsqueeze(0)"
    ),
    "grad_cam/class": Case(
        lambda c: vb.grad_cam(tiny(), torch.rand(2, 1, 28, 28), class_idx=99),
        ValueError,
        "class_idx",
    ),
    "grad_cam/layer": Case(
        lambda c: vb.grad_cam(tiny(), torch.rand(2, 1, 28, 28), target_layer="nope"),
        ValueError,
        "'nope'",
    ),
    # transfer
    "pretrained/offline-default": Case(
        lambda c: (c.offline(), vb.pretrained("resnet18", 3, weights="DEFAULT")),
        ConnectionError,
        'weights="path/to/file.pth"',
    ),
    "pretrained/missing-file": Case(
        lambda c: vb.pretrained("simple_cnn", 3, weights=str(c.tmp / "x.pth")),
        FileNotFoundError,
        "x.pth",
    ),
    "pretrained/no-published-weights": Case(
        lambda c: vb.pretrained("simple_cnn", 3, weights="DEFAULT"), ValueError, "'DEFAULT'"
    ),
    "pretrained/unknown-model": Case(
        lambda c: vb.pretrained("nope_net", 3), ValueError, "'nope_net'"
    ),
    "pretrained/num-classes": Case(
        lambda c: vb.pretrained("simple_cnn", -1, weights=None), ValueError, "num_classes"
    ),
    "load_weights/architecture": Case(
        lambda c: vb.load_weights(tiny(), vb.resnet20().state_dict()), ValueError, "strict=False"
    ),
    "load_model/raw-state-dict": Case(
        lambda c: vb.load_model(c.files["state_dict"]), CheckpointError, "load_weights"
    ),
    # quantization
    "quantize_int8/empty": Case(
        lambda c: vb.quantize_int8(tiny(), _calibration((0, 1, 28, 28))), ValueError, "empty"
    ),
    "quantize_int8/channels": Case(
        lambda c: vb.quantize_int8(tiny(), _calibration((8, 3, 28, 28))),
        ValueError,
        "in_channels=1",
    ),
    "quantize_int8/nan": Case(
        lambda c: vb.quantize_int8(tiny(), torch.full((4, 1, 28, 28), math.nan)),
        ValueError,
        "NaN",
    ),
    "quantize_int8/3d-list": Case(
        lambda c: vb.quantize_int8(tiny(), [torch.rand(1, 28, 28)] * 3),
        ValueError,
        "torch.stack",
    ),
    "quantize_int8/batch-size": Case(
        lambda c: vb.quantize_int8(tiny(), _calibration(), batch_size=0), ValueError, "batch_size"
    ),
    # saving
    "save_checkpoint/folder": Case(
        lambda c: vb.save_checkpoint(c.tmp, tiny()), IsADirectoryError, "model.pt"
    ),
    "save_checkpoint/file-in-the-way": Case(
        lambda c: (
            (c.tmp / "taken").write_text(""),
            vb.save_checkpoint(c.tmp / "taken" / "m.pt", tiny()),
        ),
        NotADirectoryError,
        "taken",
    ),
    "save_checkpoint/not-a-model": Case(
        lambda c: vb.save_checkpoint(c.tmp / "m.pt", "model"), TypeError, "nn.Module"
    ),
    "load_checkpoint/missing": Case(
        lambda c: vb.load_checkpoint(c.tmp / "none.pt"), FileNotFoundError, "none.pt"
    ),
}

# Every way in which a file is read, against every kind of bad file: one CheckpointError
# line that names the file; the file holding code is refused without running it.
READERS: dict[str, Callable[[Ctx, Path], object]] = {
    "load_checkpoint": lambda c, path: vb.load_checkpoint(path),
    "load_weights": lambda c, path: vb.load_weights(tiny(), path),
    "pretrained": lambda c, path: vb.pretrained("simple_cnn", 3, weights=str(path)),
    "load_model": lambda c, path: vb.load_model(path),
    "fit-resume": lambda c, path: c.fit(resume=path),
}
BAD_FILES = ("truncated", "random", "empty", "directory", "code")
for _reader, _read in READERS.items():
    for _kind in BAD_FILES:
        CASES[f"{_reader}/{_kind}-file"] = Case(
            lambda c, read=_read, kind=_kind: read(c, c.files[kind]),
            CheckpointError,
            f"{_kind}.pt",
        )


def _params(cases: dict[str, Any]) -> list[Any]:
    out = []
    for name, case in cases.items():
        if isinstance(case, Case):
            out.append(pytest.param(case, id=name))
        else:  # a pytest.param carrying marks
            out.append(pytest.param(*case.values, marks=case.marks, id=name))
    return out


def test_the_table_is_large() -> None:
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", _params(CASES))
def test_bad_input_is_refused_with_one_clear_line(case: Case, ctx: Ctx) -> None:
    with pytest.raises(case.error) as caught:
        case.call(ctx)
    message = str(caught.value)
    assert case.names in message, message
    assert "\n" not in message.strip(), message
    leaked = [word for word in INTERNALS if word in message]
    assert not leaked, f"torch internals {leaked} in: {message}"
    assert not ctx.marker.exists(), "a checkpoint's code ran while it was being refused"


def test_the_code_file_would_run_code_if_loaded_unsafely(shared: dict[str, Any]) -> None:
    # Control for the marker assertion above: torch's unsafe load does run the file's code.
    marker = shared["marker"]
    torch.load(shared["files"]["code"], weights_only=False)
    try:
        assert marker.exists()
    finally:
        marker.unlink(missing_ok=True)


def test_only_the_model_file_reader_calls_torch_load() -> None:
    src = Path(vb.__file__).parent
    callers = sorted(
        str(path.relative_to(src))
        for path in src.rglob("*.py")
        if "torch.load(" in path.read_text(encoding="utf-8")
    )
    assert callers == ["model_file/_read.py"]


class _StepRecorder(Callback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, trainer: Any, step: int) -> None:
        self.steps.append(step)


BEFORE_TRAINING: dict[str, tuple[Callable[[Ctx], dict[str, Any]], str]] = {
    "val-labels-beyond-head": (
        lambda c: {
            "data": (c.pair[0][c.pair[1] < 3], c.pair[1][c.pair[1] < 3]),
            "val": c.data,
            "num_classes": 3,
        },
        "validation labels",
    ),
    "empty-val": (lambda c: {"val": _empty(c)}, "validation data is empty"),
    "nan-val-images": (lambda c: {"val": _float_pair(c, _nan_images(c))}, "NaN"),
    "soft-val-labels": (
        lambda c: {"val": _float_pair(c, labels=c.pair[1].float() + 0.5)},
        "non-integer",
    ),
    "mixup-nan": (lambda c: {"mixup": math.nan}, "mixup"),
    "resume-code-file": (lambda c: {"resume": c.files["code"]}, "could run code"),
}


@pytest.mark.parametrize(("make", "names"), BEFORE_TRAINING.values(), ids=list(BEFORE_TRAINING))
def test_fit_refuses_before_any_optimizer_step(
    make: Callable[[Ctx], dict[str, Any]], names: str, ctx: Ctx
) -> None:
    kwargs = make(ctx)
    model = tiny(kwargs.pop("num_classes", 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recorder = _StepRecorder()
    with pytest.raises(ValueError, match=names):  # CheckpointError is a ValueError
        ctx.fit(model, kwargs.pop("data", None), callbacks=[recorder], **kwargs)
    assert recorder.steps == []
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_step_recorder_does_see_steps(ctx: Ctx) -> None:
    # Control: the recorder above would have caught a step taken before the error.
    recorder = _StepRecorder()
    ctx.fit(tiny(), callbacks=[recorder], batch_size=16)
    assert recorder.steps == [1, 2]


def test_numpy_arrays_are_accepted_like_tensors(ctx: Ctx) -> None:
    images, labels = ctx.pair
    model = tiny()
    from_tensors = ctx.evaluate(model, (images, labels))
    from_arrays = ctx.evaluate(model, (images.numpy(), labels.numpy()))
    assert torch.equal(from_arrays.predictions, from_tensors.predictions)
    assert from_arrays.loss == pytest.approx(from_tensors.loss, rel=1e-6)
    history = ctx.fit(tiny(), (images.numpy(), labels.numpy().astype(np.int32)), seed=0)
    assert history.last["epoch"] == 1


def test_pretrained_with_zero_classes_is_the_source_backbone(ctx: Ctx) -> None:
    source = vb.load_model(ctx.files["good"])
    features = vb.pretrained("simple_cnn", 0, weights=str(ctx.files["good"]), in_channels=1)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        expected = source.forward_head(source.forward_features(x), pre_logits=True)
        got = features.eval()(x)
    assert got.shape == (3, TINY["hidden"])
    torch.testing.assert_close(got, expected)
