"""The defaults of :func:`~visionblocks.train.fit`, defined once.

``fit``'s signature reads them from here, and so do the command line and the recipes,
so that a default changed here changes everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FIT_DEFAULTS", "FitDefaults"]


@dataclass(frozen=True)
class FitDefaults:
    """Default hyper-parameters of :func:`~visionblocks.train.fit`.

    Together they are a fast, robust recipe for the library's CNNs: SGD with Nesterov
    momentum, a one-cycle schedule, label smoothing and pad-and-crop + flip augmentation.

    Attributes:
        batch_size: Images per optimizer step (per process under DDP).
        optimizer: ``"sgd"``, ``"adamw"`` or ``"adam"``.
        momentum: SGD momentum (Nesterov).
        weight_decay: L2 penalty on weights (not on biases and norm scales).
        schedule: Learning-rate schedule.
        warmup: Fraction of the run spent warming up (one-cycle and cosine).
        label_smoothing: Cross-entropy label smoothing.
        augment: Batch augmentation preset where ``fit`` builds the batches (what its
            ``augment="auto"`` means there).

    Example:
        >>> FIT_DEFAULTS.optimizer, FIT_DEFAULTS.batch_size
        ('sgd', 128)
    """

    batch_size: int = 128
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "onecycle"
    warmup: float = 0.2
    label_smoothing: float = 0.1
    augment: str = "standard"


FIT_DEFAULTS = FitDefaults()
"""The one instance ``fit``, the CLI and the recipes read."""
