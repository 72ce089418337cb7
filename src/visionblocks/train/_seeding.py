"""Seeds: one call that seeds every generator, and the named random streams of a run.

A run's randomness comes from a few independent streams. Each epoch of each stream
draws from its own generator, seeded with ``epoch_seed(seed, epoch, stream)``, so that
a run resumed at epoch ``e`` draws exactly what the uninterrupted run drew, whatever
happened before ``e``.
"""

from __future__ import annotations

import enum
import os
import random

import torch

__all__ = ["Stream", "fresh_seed", "rng_state", "seed_everything", "set_rng_state"]


class Stream(enum.IntEnum):
    """The named random streams of a :func:`~visionblocks.train.fit` run.

    ``ORDER`` and ``AUGMENT`` are drawn by :class:`~visionblocks.data.DeviceLoader`
    (the order of the images, and the batch augmentation); ``MIX`` picks MixUp or
    CutMix and draws their mixing.

    Example:
        >>> from visionblocks.data import epoch_seed
        >>> [stream.name for stream in Stream]
        ['ORDER', 'AUGMENT', 'MIX']
        >>> epoch_seed(0, 1, Stream.AUGMENT) == epoch_seed(0, 1, 1) != epoch_seed(0, 1, Stream.MIX)
        True
    """

    ORDER = 0
    AUGMENT = 1
    MIX = 2


def seed_everything(seed: int, deterministic: bool = False) -> int:
    """Seed Python's ``random``, NumPy and torch (CPU and every CUDA device).

    Call it before building the model so that the initial weights are reproducible
    (``visionblocks train --seed`` does). ``fit(seed=...)`` seeds only what happens
    inside ``fit``: the order of the data, augmentation, MixUp/CutMix and dropout.

    Args:
        seed: A non-negative integer.
        deterministic: Also make torch choose deterministic algorithms (slower on GPUs,
            an error for operations that have none) and fix cuDNN's algorithm choice.

    Returns:
        The seed, for logging.

    Example:
        >>> _ = seed_everything(7)
        >>> a = torch.rand(2)
        >>> _ = seed_everything(7)
        >>> torch.equal(a, torch.rand(2))
        True
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an int in [0, 2**63); got {seed!r}.")
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)  # NumPy's legacy global seed is 32-bit
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        # cuBLAS needs a fixed workspace to be deterministic (CUDA docs, "Reproducibility").
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return seed


def fresh_seed() -> int:
    """A random 31-bit seed from the operating system, for runs started without one."""
    return int.from_bytes(os.urandom(4), "little") >> 1


def rng_state() -> dict[str, object]:
    """The global generators' states, for a training checkpoint.

    Torch's CPU generator, Python's, and the current CUDA device's once CUDA is in use:
    dropout on a GPU draws from it, so a resumed run without it draws other masks.
    """
    state: dict[str, object] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, object]) -> None:
    """Restore what :func:`rng_state` returned (a CUDA state only where CUDA is available)."""
    torch.set_rng_state(state["torch"])  # type: ignore[arg-type]
    random.setstate(state["python"])  # type: ignore[arg-type]
    cuda = state.get("cuda")
    if isinstance(cuda, torch.Tensor) and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda)
