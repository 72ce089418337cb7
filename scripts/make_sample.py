"""Regenerate the offline Fashion-MNIST sample shipped in ``visionblocks/data/_sample``.

The sample is a real, class-balanced subset of Fashion-MNIST (Xiao et al. 2017,
https://arxiv.org/abs/1708.07747): 200 training and 100 test images per class, drawn
with a fixed seed from the full dataset and kept in their original order, stored as
gzip'd IDX files (about 1.3 MB) so the package runs its examples and tests offline.

Usage (the full dataset comes from ``apt-get install dataset-fashion-mnist``)::

    .venv/bin/python scripts/make_sample.py [--source /usr/share/datasets/fashion-mnist]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from visionblocks.data._idx import read_idx, write_idx

OUT = Path(__file__).resolve().parents[1] / "src" / "visionblocks" / "data" / "_sample"
PER_CLASS = {"train": 200, "t10k": 100}


def balanced_indices(labels: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(int(labels.max()) + 1):
        members = torch.nonzero(labels == c).flatten()
        order = torch.randperm(len(members), generator=generator)
        picks.append(members[order[:per_class]])
    return torch.cat(picks).sort().values  # original order keeps the classes interleaved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT, help="default: the package's _sample")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for split, per_class in PER_CLASS.items():
        images = read_idx(args.source / f"{split}-images-idx3-ubyte.gz", ndim=3)
        labels = read_idx(args.source / f"{split}-labels-idx1-ubyte.gz", ndim=1)
        keep = balanced_indices(labels, per_class, args.seed)
        write_idx(out / f"{split}-images-idx3-ubyte.gz", images[keep])
        write_idx(out / f"{split}-labels-idx1-ubyte.gz", labels[keep])
        print(f"{split}: {len(keep)} images, {torch.bincount(labels[keep]).tolist()} per class")
    for f in sorted(out.iterdir()):
        print(f"{f.name}: {f.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
