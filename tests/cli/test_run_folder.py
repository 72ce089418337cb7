"""A run folder you can trust: one owner, never silently overwritten, resumed exactly.

Each test here failed on 0.2 (issue 24, items 1-3 and 6): two runs into one folder mixed
their files, a new run replaced a finished one without a word and left an old ``last.pt``
for ``--resume`` to pick up, an edited ``config.toml`` was resumed into a hybrid run, and
Ctrl-C mid-epoch wrote half-trained weights labelled as the last completed epoch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import error_of, interrupting_fit

import visionblocks as vb
from visionblocks._cli import train as train_module
from visionblocks._cli._run_folder import RunFolder
from visionblocks.cli import main
from visionblocks.model_file import atomic_save

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# 220 images, 200 of them for training (20 validate): 3 steps of 64 per epoch.
QUICK = ["train", "--model", "simple_cnn", "--limit", "220", "--batch-size", "64",
         "--precision", "fp32", "--no-progress"]  # fmt: skip


def model_weights(path: Path) -> dict[str, torch.Tensor]:
    return vb.load_checkpoint(path)["model"]  # type: ignore[no-any-return]


# --- item 1: one owner --------------------------------------------------------------------------


def test_a_folder_in_use_is_refused_before_any_data_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from visionblocks._cli._run_folder import RunFolder; "
         f"held = RunFolder(Path({str(run)!r}), flag='--out'); held.claim(); "
         "print('held', flush=True); "
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(train_module, "fit", lambda *a, **k: pytest.fail("trained"))
        err = error_of([*QUICK, "--epochs", "1", "--out", str(run)], capsys)
        assert f"'{run}' is in use by another visionblocks run (process {holder.pid})" in err
    finally:
        holder.kill()
        holder.wait()
    # The lock died with its process (as after kill -9): the folder is free again.
    with RunFolder(run, flag="--out"):
        pass


@pytest.mark.slow  # two trainings at once, ~20 s each on 2 cores
def test_two_trainings_into_one_folder_leave_exactly_one_runs_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "visionblocks", *QUICK, "--epochs", "2", "--out", str(run)]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": env}
    procs = {seed: subprocess.Popen([*argv, "--seed", seed], **pipes) for seed in ("1", "2")}
    done = {seed: proc.communicate(timeout=600) for seed, proc in procs.items()}
    codes = {seed: proc.returncode for seed, proc in procs.items()}
    assert sorted(codes.values()) == [0, 1], done
    winner = next(seed for seed, code in codes.items() if code == 0)
    loser = next(seed for seed, code in codes.items() if code == 1)
    assert "is in use by another visionblocks run" in done[loser][1]
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["seed"] == int(winner)
    assert vb.load_checkpoint(run / "model.pt")["seed"] == int(winner)
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
    assert not list(run.glob(".*.tmp"))


def test_atomic_save_leaves_a_live_writers_temporary_alone(tmp_path: Path) -> None:
    target = tmp_path / "model.pt"
    live = tmp_path / f".model.pt.{os.getppid()}.abcd.tmp"  # the parent process runs
    show_pid = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead_pid = subprocess.run(show_pid, capture_output=True, text=True, check=True).stdout.strip()
    dead = tmp_path / f".model.pt.{dead_pid}.efgh.tmp"
    live.write_bytes(b"being written")
    dead.write_bytes(b"left by kill -9")
    atomic_save({"a": 1}, target)
    # 0.2 swept both: the other writer's rename then failed with "No such file".
    assert live.exists()
    assert not dead.exists()


# --- item 2: never silently overwritten --------------------------------------------------


def test_a_finished_run_is_not_overwritten_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main([*QUICK, "--epochs", "1", "--seed", "1", "--out", str(run)]) == 0
    before = model_weights(run / "model.pt")
    err = error_of([*QUICK, "--epochs", "1", "--seed", "2", "--out", str(run)], capsys)
    assert "holds another run (config.toml, last.pt, model.pt" in err
    assert f"--resume {run}" in err
    assert "--overwrite" in err
    for key, value in model_weights(run / "model.pt").items():
        assert torch.equal(value, before[key]), key
    assert main([*QUICK, "--epochs", "1", "--seed", "2", "--out", str(run), "--overwrite"]) == 0
    assert tomllib.loads((run / "config.toml").read_text())["seed"] == 2
    assert vb.load_checkpoint(run / "model.pt")["seed"] == 2


def test_overwrite_removes_the_old_last_pt_so_resume_cannot_pick_it_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main([*QUICK, "--epochs", "1", "--seed", "1", "--out", str(run)]) == 0
    # A new run, stopped in its first epoch (before any last.pt of its own).
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "fit", interrupting_fit(1))
        argv = [*QUICK, "--epochs", "2", "--seed", "2", "--out", str(run), "--overwrite"]
        assert main(argv) == 130
    assert not (run / "last.pt").exists()  # 0.2 left the old run's, which --resume took up
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 0
    assert "no last.pt (no epoch had completed): starting it again" in capsys.readouterr().out
    assert vb.load_checkpoint(run / "model.pt")["seed"] == 2
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


def test_resume_and_overwrite_do_not_combine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = error_of(["train", "--resume", str(tmp_path), "--overwrite"], capsys)
    assert "pass one of them" in err or "no config.toml there" in err


# --- item 3: resume continues exactly the stored run, or refuses ---------------------------------


@pytest.mark.parametrize(
    ("key", "line"), [("epochs", "epochs = 3"), ("lr", "lr = 0.05"), ("seed", "seed = 9")]
)
def test_resume_refuses_an_edited_config_naming_the_keys(
    key: str,
    line: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "fit", interrupting_fit(4))  # inside epoch 2 of 2
        assert main([*QUICK, "--epochs", "2", "--out", str(run)]) == 130
    config = run / "config.toml"
    lines = [x for x in config.read_text().splitlines() if not x.startswith(f"{key} =")]
    config.write_text("\n".join([line, *lines]) + "\n")
    capsys.readouterr()
    err = error_of(["train", "--resume", str(run)], capsys)
    assert f"config.toml was edited after the run started ({key} = " in err
    assert "(the run: " in err
    assert f"--config {config} --out OTHER" in err


def test_resume_of_a_finished_run_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main([*QUICK, "--epochs", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    err = error_of(["train", "--resume", str(run)], capsys)
    assert "the run finished all 1 epochs, nothing to continue" in err


# --- item 6: an interrupted run's outputs say what they hold ------------------------------


def test_ctrl_c_mid_epoch_writes_the_last_completed_epochs_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3 steps per epoch: step 5 is inside epoch 2.
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "fit", interrupting_fit(5))
        assert main([*QUICK, "--epochs", "3", "--out", str(run)]) == 130
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["interrupted"], metrics["partial_epoch"]) == (1, True, None)
    last = model_weights(run / "last.pt")
    for key, value in model_weights(run / "model.pt").items():
        assert torch.equal(value, last[key]), key  # 0.2 wrote mid-epoch-2 weights here


def test_ctrl_c_in_the_first_epoch_marks_the_outputs_partial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(train_module, "fit", interrupting_fit(2))
        assert main([*QUICK, "--epochs", "2", "--out", str(run)]) == 130
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["epochs"], metrics["partial_epoch"]) == (0, 1)
    assert "after 0 epochs and part of epoch 1 (half-trained weights)" in capsys.readouterr().out
