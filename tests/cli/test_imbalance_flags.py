"""``train --class-weight/--sampler/--loss/--focal-gamma``: passed to fit, recorded, checked."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import pytest
from cli_helpers import error_of

import visionblocks as vb
from visionblocks._cli import _train_plan
from visionblocks._cli import train as train_module
from visionblocks.cli import build_parser, main
from visionblocks.train import FocalLoss

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def fit_kwargs(*flags: str) -> dict[str, object]:
    args = train_module.resolve_options(build_parser().parse_args(["train", *flags]))
    _train_plan.check_options(args, train_module.train_options(args).specs)
    sample = vb.load_dataset("sample")
    return _train_plan.fit_arguments(args, sample, _train_plan.plan_model(args, sample))


def test_the_flags_reach_fit() -> None:
    kwargs = fit_kwargs("--class-weight", "balanced", "--sampler", "balanced", "--loss", "focal")
    # Catches a flag parsed but not passed on (the run would silently train without it).
    assert (kwargs["class_weight"], kwargs["sampler"], kwargs["loss"]) == (
        "balanced", "balanced", "focal",
    )  # fmt: skip
    assert set(kwargs) <= set(inspect.signature(vb.fit).parameters)
    gamma = fit_kwargs("--loss", "focal", "--focal-gamma", "1.5", "--label-smoothing", "0.05")
    loss = gamma["loss"]
    # The gamma given, with the run's label smoothing (as loss="focal" takes fit's).
    assert isinstance(loss, FocalLoss)
    assert (loss.gamma, loss.label_smoothing) == (1.5, 0.05)
    recipe = fit_kwargs("--recipe", "fast", "--sampler", "balanced")
    assert recipe["sampler"] == "balanced"
    plain = fit_kwargs()
    assert not {"class_weight", "sampler", "loss"} & set(plain)  # fit's defaults stay


def test_bad_combinations_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    err = error_of(["train", "--focal-gamma", "1"], capsys)
    assert "--focal-gamma is the focal loss's gamma; add --loss focal" in err
    err = error_of(["train", "--loss", "focal", "--focal-gamma", "-1"], capsys)
    assert "--focal-gamma: gamma must be a number >= 0" in err
    with pytest.raises(SystemExit):  # argparse: not a choice
        build_parser().parse_args(["train", "--sampler", "oversample"])


def test_a_run_records_the_flags_and_its_config_repeats_them(tmp_path: Path) -> None:
    argv = ["train", "--model", "simple_cnn", "--limit", "200", "--epochs", "1",
            "--precision", "fp32", "--no-progress", "--class-weight", "balanced",
            "--sampler", "balanced", "--loss", "focal", "--focal-gamma", "1.0"]  # fmt: skip
    assert main([*argv, "--out", str(tmp_path / "run")]) == 0
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    # Catches a flag left out of config.toml: --config and --resume would train without it.
    assert (config["class_weight"], config["sampler"]) == ("balanced", "balanced")
    assert (config["loss"], config["focal_gamma"]) == ("focal", 1.0)
    assert config["fit"]["sampler"] == "balanced"
    assert config["fit"]["loss"].startswith("FocalLoss(gamma=1.0")
