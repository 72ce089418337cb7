"""fit() and evaluate() under torchrun on the CPU (gloo): one host, and two "nodes".

Each launch runs ``ddp_worker.py`` once and the tests read what its ranks wrote, so
three torchrun launches cover everything (about a minute on 2 busy cores).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import ddp_worker
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import visionblocks as vb

WORKER = Path(__file__).with_name("ddp_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *args]


def check(proc: subprocess.CompletedProcess[str] | tuple[int, str, str]) -> str:
    code, out, err = (
        (proc.returncode, proc.stdout, proc.stderr)
        if isinstance(proc, subprocess.CompletedProcess)
        else proc
    )
    assert code == 0, err[-4000:]
    return out + err


@pytest.fixture(scope="module")
def one_host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 processes on this host, every scenario."""
    out = tmp_path_factory.mktemp("one_host")
    cmd = torchrun("--nproc_per_node=2", f"--master_port={free_port()}")
    proc = subprocess.run(
        [*cmd, str(WORKER), str(out), "more"], capture_output=True, text=True, timeout=600, env=ENV
    )
    (out / "log.txt").write_text(check(proc))
    return out


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 "nodes" of 1 process each: two torchrun launches meeting at a c10d rendezvous."""
    out = tmp_path_factory.mktemp("two_nodes")
    port = free_port()
    launches = [
        subprocess.Popen(
            [
                *torchrun(
                    "--nnodes=2",
                    "--nproc_per_node=1",
                    f"--node_rank={rank}",
                    "--rdzv_backend=c10d",
                    f"--rdzv_endpoint=127.0.0.1:{port}",
                ),
                str(WORKER),
                str(out),
                "basic",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        for rank in (0, 1)
    ]
    logs = []
    for launch in launches:
        stdout, stderr = launch.communicate(timeout=600)
        logs.append(check((launch.returncode, stdout, stderr)))
    (out / "log.txt").write_text("\n".join(logs))
    return out


@pytest.fixture(params=["one_host", "two_nodes"])
def run(request: pytest.FixtureRequest) -> Path:
    return Path(request.getfixturevalue(request.param))


def read(out: Path, name: str) -> tuple[list[Any], list[dict[str, Any]]]:
    """Each rank's saved tensors and JSON record of scenario ``name``."""
    states = [torch.load(out / f"{name}_rank{r}.pt", weights_only=True) for r in (0, 1)]
    infos = [json.loads((out / f"{name}_rank{r}.json").read_text()) for r in (0, 1)]
    return states, infos


@pytest.mark.slow
def test_each_rank_trains_on_its_half_of_a_dataloader(run: Path) -> None:
    _, infos = read(run, "basic")
    size = ddp_worker.TRAIN_SIZE
    half = size // 2
    per_epoch = [[info["tags"][e * half : (e + 1) * half] for e in (0, 1)] for info in infos]
    for epoch in (0, 1):
        rank0, rank1 = (set(per_epoch[r][epoch]) for r in (0, 1))
        # Catches the DataLoader kept as given (both ranks on all 200) or shards that overlap.
        assert len(per_epoch[0][epoch]) == len(per_epoch[1][epoch]) == size // 2
        assert rank0.isdisjoint(rank1)
        assert rank0 | rank1 == set(range(size))
    # Catches a sampler that does not reshuffle (set_epoch not called) or does not shuffle.
    assert per_epoch[0][0] != per_epoch[0][1]
    # The user's batch size and collate function survive the re-created loader.
    assert all(info["batch_sizes"] == [10] for info in infos)
    assert all(info["marks"] == [ddp_worker.COLLATE_MARK] for info in infos)


@pytest.mark.slow
def test_ranks_end_with_identical_weights_and_history(run: Path) -> None:
    states, infos = read(run, "basic")
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key
    assert infos[0]["history"] == infos[1]["history"]
    assert infos[0]["history"]["epoch"] == [1, 2]


@pytest.mark.slow
def test_only_rank_0_writes_files(run: Path) -> None:
    # Each rank was given its own checkpoint_dir; rank 1's must stay unwritten.
    assert [p.name for p in (run / "ckpt_rank0").iterdir()] == ["last.pt"]
    assert not (run / "ckpt_rank1").exists()
    log = (run / "log.txt").read_text()
    assert log.count("epoch   2/2") == 1


@pytest.mark.slow
def test_evaluate_and_validation_count_each_image_once(run: Path) -> None:
    states, infos = read(run, "basic")
    model = ddp_worker.tiny_model()
    model.load_state_dict(states[0])
    val = ddp_worker.tagged_data(ddp_worker.VAL_SIZE, seed=1)
    alone = vb.evaluate(model, val, precision="fp32")
    # A Dataset is not normalized as in-memory data is: its own single-process reference.
    loader = DataLoader(TensorDataset(*val), batch_size=8)
    alone_loader = vb.evaluate(model, loader, precision="fp32")
    for info in infos:
        accuracy, confusion, predictions = info["eval_pair"]
        # An odd-sized set: a padded shard would count 102 images, a truncated one 100.
        assert sum(map(sum, confusion)) == ddp_worker.VAL_SIZE
        assert confusion == alone.confusion.tolist()
        assert accuracy == alone.accuracy
        assert predictions == alone.predictions.tolist()  # gathered back in order
        loader_accuracy, loader_confusion = info["eval_loader"]
        assert loader_confusion == alone_loader.confusion.tolist()
        assert loader_accuracy == alone_loader.accuracy
        # fit's validation of the final weights counts the same images.
        assert info["history"]["val_acc"][-1] == pytest.approx(alone.accuracy, abs=1e-12)


@pytest.mark.slow
def test_sync_batchnorm_makes_running_stats_identical(one_host: Path) -> None:
    rank0, rank1 = (torch.load(one_host / f"syncbn_rank{r}.pt") for r in (0, 1))
    assert bool(rank0["class1"])
    assert not bool(rank0["class0"])
    assert torch.equal(rank0["sync1"], rank1["sync1"])
    # The control: without sync each rank's last batch moves its own statistics.
    assert not torch.allclose(rank0["sync0"], rank1["sync0"], atol=1e-6)


@pytest.mark.slow
def test_gloo_sync_batchnorm_equals_batchnorm_on_the_whole_batch(one_host: Path) -> None:
    ranks = [torch.load(one_host / f"syncbn_math_rank{r}.pt") for r in (0, 1)]
    generator = torch.Generator().manual_seed(3)  # the batch and gradient ddp_worker made
    batch = (torch.randn(8, 3, 4, 4, generator=generator) * 2 + 1).requires_grad_(True)
    upstream = torch.randn(8, 3, 4, 4, generator=generator)
    norm = torch.nn.BatchNorm2d(3)
    out = norm(batch)
    (out * upstream).sum().backward()
    assert norm.weight.grad is not None
    assert norm.bias.grad is not None
    params = torch.cat([norm.weight.grad, norm.bias.grad])
    running = torch.stack([norm.running_mean, norm.running_var])
    for rank, saved in enumerate(ranks):
        half = slice(rank * 4, (rank + 1) * 4)
        # Catches statistics of the local half only, or a gradient that misses the terms
        # through the other rank's contribution to the mean and variance.
        torch.testing.assert_close(saved["y"], out[half].detach())
        torch.testing.assert_close(saved["x_grad"], batch.grad[half])  # type: ignore[index]
        torch.testing.assert_close(saved["param_grads"], params)
        torch.testing.assert_close(saved["running"], running)


@pytest.mark.slow
def test_resume_under_ddp_equals_the_uninterrupted_run(one_host: Path) -> None:
    states, infos = read(one_host, "resume")
    assert infos[0] == {"interrupted": True, "done": 1}
    for rank in (0, 1):
        whole = {k[6:]: v for k, v in states[rank].items() if k.startswith("whole.")}
        resumed = {k[8:]: v for k, v in states[rank].items() if k.startswith("resumed.")}
        assert whole
        assert whole.keys() == resumed.keys()
        for key, value in whole.items():
            assert torch.equal(value, resumed[key]), (rank, key)


@pytest.mark.slow
def test_fine_tune_runs_both_stages_under_ddp(one_host: Path) -> None:
    states, infos = read(one_host, "fine_tune")
    assert infos[0]["history"]["frozen"] == [1.0, 0.0]
    assert infos[0]["history"] == infos[1]["history"]
    for key, value in states[0].items():
        assert torch.equal(value, states[1][key]), key


@pytest.mark.slow
def test_accumulate_all_reduces_once_per_optimizer_step(one_host: Path) -> None:
    states, infos = read(one_host, "accumulate")
    # 200 images / 2 ranks = 100 per rank, batches of 10: 10 micro-batches, 3 steps (4+4+2).
    assert infos[0] == infos[1] == {"calls": 3, "steps": 3}  # catches an all-reduce per batch
    # The gradients were still averaged: the weights agree (BatchNorm's running statistics
    # are each rank's own without sync_batchnorm, so they are not compared).
    weights = [k for k in states[0] if "running" not in k and "num_batches" not in k]
    assert weights
    for key in weights:
        assert torch.equal(states[0][key], states[1][key]), key


@pytest.mark.slow
def test_bad_input_fails_alike_on_every_rank(one_host: Path) -> None:
    messages = [json.loads((one_host / f"bad_rank{r}.json").read_text()) for r in (0, 1)]
    assert messages[0] == messages[1]
    assert messages[0]["too_few_images"].startswith("1 images cannot be shared by 2 processes")
    params = [sum(p.numel() for p in ddp_worker.tiny_model(w).parameters()) for w in (4, 5)]
    assert (
        f"rank 0 has {params[0]:,} parameters, rank 1 has {params[1]:,}"
        in (messages[0]["mismatched_models"])
    )


def test_dataloader_that_cannot_be_sharded_says_what_to_do() -> None:
    from torch.utils.data import WeightedRandomSampler

    from visionblocks.train._data import shard_loader

    data = TensorDataset(torch.zeros(6, 1, 2, 2), torch.zeros(6, dtype=torch.int64))
    weighted = DataLoader(data, sampler=WeightedRandomSampler([1.0] * 6, 6), batch_size=2)
    with pytest.raises(TypeError, match=r"sampler WeightedRandomSampler .*DistributedSampler"):
        shard_loader(weighted, train=True, rank=0, world_size=2)
    batched = DataLoader(data, batch_sampler=[[0, 1], [2, 3]])
    with pytest.raises(TypeError, match=r"batch_sampler list .*DistributedSampler"):
        shard_loader(batched, train=True, rank=0, world_size=2)
    # The opt-out: a loader already on a DistributedSampler is used as it is.
    mine = DataLoader(data, sampler=torch.utils.data.DistributedSampler(data, 2, 1), batch_size=2)
    assert shard_loader(mine, train=True, rank=1, world_size=2) is mine


LEGACY_WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import visionblocks as vb

    out = sys.argv[1]
    torch.manual_seed(0)  # the same initial weights on both ranks (DDP also broadcasts rank 0's)
    model = vb.ResNet(vb.BasicBlock, widths=(8, 16), depths=(1, 1), stem_width=8, in_channels=1)
    train = vb.subset(vb.load_dataset("sample"), 0.2, seed=0)
    history = vb.fit(
        model, train, train, epochs=2, batch_size=32, seed=3, precision="fp32",
        progress=True, checkpoint_dir=os.path.join(out, "ckpt"),
    )
    rank = os.environ["RANK"]
    torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    timing = ("seconds", "images_per_second")
    with open(os.path.join(out, f"history{rank}.json"), "w") as f:
        json.dump({k: v for k, v in history.to_dict().items() if k not in timing}, f)
    """
)


@pytest.mark.slow
def test_two_process_ddp_on_in_memory_data(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(LEGACY_WORKER)
    cmd = torchrun("--nproc_per_node=2", f"--master_port={free_port()}")
    proc = subprocess.run(
        [*cmd, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600, env=ENV
    )
    log = check(proc)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key
    # Metrics are reduced over both shards: both ranks report the same numbers.
    h0 = json.loads((tmp_path / "history0.json").read_text())
    h1 = json.loads((tmp_path / "history1.json").read_text())
    assert h0 == h1
    assert h0["epoch"] == [1, 2]
    # Only rank 0 writes checkpoints and prints epoch lines.
    assert [p.name for p in (tmp_path / "ckpt").iterdir()] == ["last.pt"]
    assert log.count("epoch   2/2") == 1
