"""Training images per second of ``fit`` with 1 and with 2 DDP processes, and their ratio.

Each configuration is a real ``torchrun`` launch of this file, training ``--model`` on
the packaged Fashion-MNIST sample (2,000 images, 1x28x28) for ``--epochs`` epochs,
``--batch-size`` images per process per step (so 2 processes take steps of twice the
images: the usual weak scaling of DDP). The number is ``fit``'s own ``images_per_second``
of the fastest epoch after the first (the first pays for warm-up): all processes'
images over the training pass's time, validation excluded. On the CPU the backend is
gloo and each process gets ``--threads`` threads; on CUDA, NCCL and one GPU per process.

Three rows: 1 process with ``--threads`` threads, 1 process with ``2 * --threads``
threads (the same cores as the 2-process run, used by intra-op threads instead), and
2 processes. The ratios compare the 2-process row with both.

Usage::

    .venv/bin/python benchmarks/bench_ddp_scaling.py [--epochs 4] [--model simple_cnn_bn]

Results and the machine they came from: ``docs/distributed.rst``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def worker(out: Path, args: argparse.Namespace) -> None:
    """What each torchrun process runs: train, and rank 0 writes the throughput."""
    import torch

    import visionblocks as vb

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = vb.load_dataset("sample")
    model = vb.models.get_model_builder(args.model)(num_classes=10, in_channels=1, image_size=28)
    history = vb.fit(
        model,
        data,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=0,
        precision="fp32" if args.device == "cpu" else "auto",
        device=args.device,
        progress=False,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        rates = history["images_per_second"][1:] or history["images_per_second"]
        out.write_text(json.dumps({"images_per_second": max(rates)}))


def launch(processes: int, threads: int, args: argparse.Namespace) -> float:
    """One torchrun launch; returns its images per second."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
            f"--master_port={port}", __file__, "--worker", str(out), "--threads", str(threads),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
            "--model", args.model, "--device", args.device,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
        return float(json.loads(out.read_text())["images_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--threads", type=int, default=1, help="per process, on the CPU")
    parser.add_argument("--model", default="simple_cnn_bn")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args)
        return
    rows = [
        (f"1 process  x {args.threads} thread(s)", launch(1, args.threads, args)),
        (f"1 process  x {2 * args.threads} thread(s)", launch(1, 2 * args.threads, args)),
        (f"2 processes x {args.threads} thread(s)", launch(2, args.threads, args)),
    ]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.model}, batch {args.batch_size}/process, {args.device}, {cores} usable cores")
    for name, rate in rows:
        print(f"  {name}: {rate:8.0f} images/s")
    print(f"  2 processes / 1 process, same threads each: {rows[2][1] / rows[0][1]:.2f}x")
    print(f"  2 processes / 1 process, same cores:        {rows[2][1] / rows[1][1]:.2f}x")


if __name__ == "__main__":
    main()
