"""fit() under torchrun: 2 CPU processes with gloo end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

WORKER = textwrap.dedent(
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
def test_two_process_ddp_on_cpu(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2"]
    cmd.append("--master_port=29517")
    proc = subprocess.run(
        [*cmd, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
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
    assert proc.stderr.count("epoch   2/2") + proc.stdout.count("epoch   2/2") == 1
