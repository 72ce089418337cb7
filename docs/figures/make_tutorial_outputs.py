"""Write docs/_generated/outputs/*.txt: the output the tutorials quote, from running the examples.

Each file is what one example prints, run from a fresh folder with the command in its
first line, so no output on a page is pasted by hand: the pages include these files
(``.. literalinclude::``) and ``tests/docs/test_tutorial_outputs.py`` fails when a number
quoted in a page's prose is not in the output it quotes. The second line names the
machine, torch and visionblocks versions; seconds vary with the machine's load. The
accuracies are seeded: the lab's exercises print the same digits on a rerun on the
same machine, examples 08's and 09's fine-tuned runs can move by a few images.

Run from the repository root after a change that moves the numbers (about 20 minutes
on 2 CPU cores, a third of it the full Fashion-MNIST run; ``--only NAME ...`` reruns
a few)::

    .venv/bin/python docs/figures/make_tutorial_outputs.py
    .venv/bin/python docs/figures/make_tutorial_outputs.py --only 01_simple_cnn 03_resnet
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "_generated" / "outputs"

# Output file name -> the example and its arguments (without progress bars where it has
# them), or the ``visionblocks`` command line and its arguments.
RUNS: dict[str, list[str]] = {
    "cli_train": ["visionblocks", "train", "--no-progress"],
    "cli_inspect": ["visionblocks", "inspect", "fashion-mnist"],
    "01_simple_cnn": ["examples/01_simple_cnn.py", "--no-progress"],
    "02_batch_norm": ["examples/02_batch_norm.py", "--no-progress"],
    "02_batch_norm_full": [
        *("examples/02_batch_norm.py", "--dataset", "fashion-mnist", "--epochs", "3"),
        "--no-progress",
    ],
    "03_resnet": ["examples/03_resnet.py", "--plain", "--no-progress"],
    "05_transfer_learning": ["examples/05_transfer_learning.py"],
    "08_own_images": ["examples/08_own_images.py", "--no-progress"],
    "08_own_images_quick": [
        *("examples/08_own_images.py", "--per-class", "40", "--epochs", "3"),
        *("--pretrain-epochs", "2", "--no-progress"),
    ],
    "09_photos": ["examples/09_photos.py", "--no-progress"],
}


def machine() -> str:
    """One line: CPU model and cores (or the GPU), torch and visionblocks versions."""
    import torch

    import visionblocks

    cpu = platform.processor() or platform.machine()
    try:
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    where = f"{os.cpu_count()} CPU cores ({cpu})"
    if torch.cuda.is_available():
        where += f", {torch.cuda.get_device_name()}"
    return f"torch {torch.__version__}, visionblocks {visionblocks.__version__}, {where}"


def shown_command(name: str) -> str:
    """The command line of ``RUNS[name]`` as the output file's first line shows it."""
    script, *args = RUNS[name]
    return " ".join([script, *args] if script == "visionblocks" else ["python", script, *args])


def run(name: str, header: str) -> str:
    """Run one example from an empty folder; return its header lines and stdout."""
    script, *args = RUNS[name]
    # The console script installed next to this Python, or the example run by it.
    argv = (
        [str(Path(sys.executable).parent / script)]
        if script == "visionblocks"
        else [sys.executable, str(ROOT / script)]
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"} | {"MPLBACKEND": "Agg"}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [*argv, *args],
            cwd=folder, env=env, capture_output=True, text=True, check=False,
        )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{shown_command(name)} failed:\n{done.stderr[-3000:]}")
    print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    lines = [line.rstrip() for line in done.stdout.splitlines()]
    return "\n".join([f"$ {shown_command(name)}", f"# {header}", *lines]).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(RUNS), help="rerun these only")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    header = machine()
    for name in args.only or RUNS:
        (OUT / f"{name}.txt").write_text(run(name, header))
        print(f"wrote {(OUT / f'{name}.txt').relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
