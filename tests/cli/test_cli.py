"""The ``visionblocks`` command line, run in-process with tiny budgets on the packaged sample."""

from __future__ import annotations

import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import visionblocks as vb
from visionblocks._cli import _train_plan
from visionblocks._cli import train as train_module
from visionblocks._cli._common import CLIError, parse_model_args
from visionblocks.cli import build_parser, main


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simple CNN trained for one epoch on 256 sample images by `visionblocks train`."""
    out = tmp_path_factory.mktemp("run")
    code = main(
        ["train", "--model", "simple_cnn", "--epochs", "1", "--limit", "256", "--out", str(out),
         "--precision", "fp32", "--no-progress", "--seed", "1"]
    )  # fmt: skip
    assert code == 0
    return out


def test_models_lists_the_registry_with_exact_parameter_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "resnet*"]) == 0
    rows = dict(line.split() for line in capsys.readouterr().out.splitlines()[1:])
    assert list(rows) == vb.list_models("resnet*")
    assert rows["resnet20"] == "272,474"
    assert rows["resnet18_cifar"] == "11,173,962"


def test_python_m_visionblocks_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "visionblocks", "models", "simple*"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "simple_cnn" in done.stdout
    assert "1,147,466" in done.stdout


def test_train_defaults_are_the_offline_resnet20_run() -> None:
    args = train_module.resolve_options(build_parser().parse_args(["train"]))
    assert (args.model, args.dataset, args.root, args.recipe) == (None, "sample", None, None)
    assert (args.seed, args.device, args.precision, args.no_progress) == (0, "auto", "auto", False)
    sample = vb.load_dataset("sample")
    plan = _train_plan.plan_model(args, sample)
    fit_kwargs = _train_plan.fit_arguments(args, sample, plan)
    assert (plan.name, plan.tta) == ("resnet20", False)
    # Catches a CLI default that drifted from fit()'s own, or an option left alone passed as None.
    # fit's augment="auto" is FIT_DEFAULTS.augment on the in-memory data the CLI passes.
    defaults = {**vb.train.fit.__kwdefaults__, "augment": vb.train.FIT_DEFAULTS.augment}
    for key in ("augment", "optimizer", "schedule", "momentum", "weight_decay", "label_smoothing"):
        assert fit_kwargs[key] == defaults[key], key
    # Catches a change to the documented one-minute run: 8 epochs in batches of 64, fit()'s lr.
    assert (fit_kwargs["epochs"], fit_kwargs["batch_size"], fit_kwargs["lr"]) == (8, 64, None)


def test_fit_arguments_hold_every_option_fit_gets_and_only_fit_parameters() -> None:
    argv = ["train", "--no-progress", "--grad-clip", "1.5", "--accumulate", "2", "--seed", "3"]
    args = train_module.resolve_options(build_parser().parse_args(argv))
    sample = vb.load_dataset("sample")
    stopper = vb.train.EarlyStopping()
    kwargs = _train_plan.fit_arguments(
        args, sample, _train_plan.plan_model(args, sample), [stopper]
    )
    # Catches an option added to the CLI but not passed on (or passed twice, by two callers).
    assert (kwargs["progress"], kwargs["seed"], kwargs["device"]) == ("lines", 3, "auto")
    assert (kwargs["grad_clip"], kwargs["accumulate"], kwargs["callbacks"]) == (1.5, 2, [stopper])
    # Catches a key fit() does not take (it would fail only when the run starts).
    assert set(kwargs) <= set(inspect.signature(vb.fit).parameters)


def test_train_writes_checkpoint_history_metrics_and_plots(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"model.pt", "history.csv", "history.json", "metrics.json"} <= names
    pytest.importorskip("matplotlib")
    assert {"curves.png", "confusion.png"} <= names
    assert (trained / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_checkpoint_rebuilds_the_model_with_its_normalization(trained: Path) -> None:
    state = vb.load_checkpoint(trained / "model.pt")
    assert state["model_name"] == "simple_cnn"
    assert state["model_kwargs"] == {"num_classes": 10, "in_channels": 1, "image_size": 28}
    assert state["classes"] == vb.load_dataset("sample").classes
    assert state["image_shape"] == [1, 28, 28]
    # The normalization fit used: a --limit subset keeps its parent dataset's statistics.
    sample = vb.load_dataset("sample")
    assert state["stats"] == [list(sample.mean), list(sample.std)]
    model = vb.create_model(state["model_name"], **state["model_kwargs"])
    vb.load_checkpoint(trained / "model.pt", model)  # strict: every key matches


def test_history_has_one_row_per_epoch(trained: Path) -> None:
    lines = (trained / "history.csv").read_text().splitlines()
    assert len(lines) == 2
    assert {"epoch", "train_loss", "val_acc"} <= set(lines[0].split(","))
    assert json.loads((trained / "history.json").read_text())["epoch"] == [1]


def test_eval_reproduces_the_accuracy_train_reported(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # eval rebuilds the model from the checkpoint and must normalize exactly like fit did.
    reported = json.loads((trained / "metrics.json").read_text())["test_accuracy"]
    code = main(["eval", str(trained / "model.pt"), "--limit", "256", "--precision", "fp32"])
    assert code == 0
    out = capsys.readouterr().out
    accuracy = float(re.search(r"accuracy ([\d.]+)%", out).group(1)) / 100  # type: ignore[union-attr]
    assert accuracy == pytest.approx(reported, abs=0.00005)
    matrix = [line for line in out.splitlines() if re.match(r"\d \S", line)]
    assert len(matrix) == 10
    assert sum(int(v) for line in matrix for v in line.split()[-10:]) == 256


def test_gradcam_writes_an_overlay_for_any_image_size(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    test = vb.load_dataset("sample", "test")
    # An RGB JPEG twice the training size: converted to grayscale and resized.
    gray = Image.fromarray(test.images[3, 0].numpy())
    gray.convert("RGB").resize((56, 56)).save(tmp_path / "coat.jpg")
    out = tmp_path / "cam" / "overlay.png"
    assert (
        main(["gradcam", str(trained / "model.pt"), str(tmp_path / "coat.jpg"), "--out", str(out)])
        == 0
    )
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "prediction:" in capsys.readouterr().out


def test_gradcam_predicts_like_evaluate(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    test = vb.load_dataset("sample", "test")
    state = vb.load_checkpoint(trained / "model.pt")
    model = vb.create_model(state["model_name"], **state["model_kwargs"])
    vb.load_checkpoint(trained / "model.pt", model)
    images = test.images[:4]
    result = vb.evaluate(model, (images, test.labels[:4]), stats=state["stats"], precision="fp32")
    for i in range(4):
        Image.fromarray(images[i, 0].numpy()).save(tmp_path / f"{i}.png")
        main(["gradcam", str(trained / "model.pt"), str(tmp_path / f"{i}.png"),
              "--out", str(tmp_path / f"{i}-cam.png")])  # fmt: skip
        # "prediction: 3 Dress 41.2%, 6 Shirt 16.5%, ...": the index of the top class first.
        predicted = int(capsys.readouterr().out.split("prediction: ")[1].split()[0])
        assert predicted == int(result.predictions[i])


def test_summary_of_a_name_and_of_a_checkpoint(
    trained: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", "resnet20", "--depth", "1"]) == 0
    assert "272,474" in capsys.readouterr().out
    assert main(["summary", str(trained / "model.pt")]) == 0
    out = capsys.readouterr().out
    assert "(1, 1, 28, 28)" in out  # the checkpoint's own input shape
    params = sum(p.numel() for p in vb.simple_cnn(in_channels=1, image_size=28).parameters())
    assert f"{params:,}" in out


def test_receptive_field_of_the_simple_cnn(capsys: pytest.CaptureFixture[str]) -> None:
    # Three (3x3 conv, 2x2 pool) stages: 3 -> 4 -> 8 -> 10 -> 18 -> 22 pixels.
    assert main(["receptive-field", "simple_cnn", "--in-channels", "1"]) == 0
    assert "sees 22x22 input pixels" in capsys.readouterr().out


def test_train_recipe_fast_trains_fast_cnn_and_eval_reproduces_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fast"
    argv = ["train", "--recipe", "fast", "--epochs", "3", "--limit", "1000", "--out", str(out),
            "--precision", "fp32", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "training fast_cnn with the fast recipe" in printed
    assert "3 epochs in batches of 64" in printed  # small data: the smaller batch
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["model"], metrics["recipe"], metrics["tta"]) == ("fast_cnn", "fast", True)
    # Measured 81.3% and 80.2% (seeds 0, 1; 0.2's preset: 78.2% and 77.4%; 0.1's: 66.5% and
    # 69.7%); chance is 0.1.
    assert metrics["test_accuracy"] > 0.6
    state = vb.load_checkpoint(out / "model.pt")
    assert state["model_name"] == "fast_cnn"
    preset = vb.recipes.RECIPE_PRESETS["fashion-mnist"]
    assert state["model_kwargs"]["widths"] == list(preset.widths)
    # Catches a model file that rebuilds the preset's network with other layers or init.
    assert state["model_kwargs"]["activation"] == preset.activation
    assert state["model_kwargs"]["identity_init"] is preset.identity_init
    code = main(["eval", str(out / "model.pt"), "--limit", "1000", "--precision", "fp32", "--tta"])
    assert code == 0
    shown = re.search(r"accuracy ([\d.]+)%", capsys.readouterr().out)
    assert shown is not None
    assert float(shown.group(1)) / 100 == pytest.approx(metrics["test_accuracy"], abs=0.00005)


def test_train_recipe_rejects_the_options_it_sets(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--recipe", "fast", "--optimizer", "adam", "--model", "resnet20"])
    assert code == 1
    err = capsys.readouterr().err
    assert "--model, --optimizer cannot be combined with --recipe fast" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--model", "resnet2"], "Did you mean 'resnet32', 'resnet20'"),
        (["summary", "resnett20"], "unknown model 'resnett20'"),
        (["train", "--dataset", "cifar10", "--root", "{tmp}"], "--root DIR"),
        (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["train", "--limit", "0"], "--limit must be a positive"),
        (["eval", "{tmp}/missing.pt"], "no checkpoint at"),
        (["train", "--model-arg", "width"], "--model-arg takes KEY=VALUE"),
        (["models", "nothing*"], "no model matches"),
    ],
)
def test_errors_are_one_line_with_a_non_zero_exit(
    argv: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"visionblocks {argv[0]}: error: ")
    assert expected in err
    assert "Traceback" not in err


def test_unreadable_image_is_one_line(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "notes.png").write_text("not an image")
    assert main(["gradcam", str(trained / "model.pt"), str(tmp_path / "notes.png")]) == 1
    err = capsys.readouterr().err
    # The message of the one decoder that training and predict use too.
    assert err.startswith(
        f"visionblocks gradcam: error: {tmp_path / 'notes.png'} is not an image file Pillow "
        f"can decode"
    )
    assert err.count("\n") == 1


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_exception(where: str) -> None:
    argv = ["train", "--model", "nope"]
    argv = ["--debug", *argv] if where == "before" else [*argv, "--debug"]
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        main(argv)


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_model_args_are_python_literals_or_strings() -> None:
    assert parse_model_args(["width=32", "shortcut=padding", "widths=(8, 16)"]) == {
        "width": 32,
        "shortcut": "padding",
        "widths": (8, 16),
    }
    with pytest.raises(CLIError, match="KEY=VALUE"):
        parse_model_args(["=3"])


@pytest.mark.slow
def test_default_train_command_learns_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The README's main command: ResNet-20 on the packaged sample with the defaults.
    # Measured 79.5% test accuracy (docs/getting_started.rst); the floor leaves room for seeds.
    assert main(["train", "--out", str(tmp_path), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_images"] == 1000
    assert metrics["test_accuracy"] > 0.70


def test_train_preset_selects_the_recipes_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    v1, default = (vb.recipes.RECIPE_PRESETS[k] for k in ("fashion-mnist-v1", "fashion-mnist"))
    assert v1.activation != default.activation  # what tells the two networks apart
    out = tmp_path / "v1"
    argv = ["train", "--recipe", "fast", "--preset", "fashion-mnist-v1", "--epochs", "1",
            "--limit", "300", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    assert "with the fast recipe (fashion-mnist-v1)" in capsys.readouterr().out
    assert vb.load_checkpoint(out / "model.pt")["model_kwargs"]["activation"] == v1.activation
    assert 'preset = "fashion-mnist-v1"' in (out / "config.toml").read_text()


def test_preset_without_a_recipe_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--preset", "fashion-mnist-94"]) == 1
    assert "--preset fashion-mnist-94 chooses a recipe's preset; add --recipe fast" in (
        capsys.readouterr().err
    )
