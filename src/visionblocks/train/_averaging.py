"""``WeightAveraging``: 0.2's weight-average callback, deprecated for ``fit(ema=EMA(...))``.

A run has one average, :func:`~visionblocks.train.fit`'s (``train/_ema.py``); this
callback only tells ``fit`` which one to keep, so that it can never average a second
time on top of ``fit(ema=...)`` (asking for both is an error).
"""

from __future__ import annotations

from visionblocks._deprecation import warn_deprecated
from visionblocks.train._callbacks import Callback
from visionblocks.train._ema import EMA

__all__ = ["WeightAveraging"]


class WeightAveraging(Callback):
    """Deprecated: ``fit(ema=EMA(decay, every=every, warmup=True))`` is the one average.

    Passed in ``fit(callbacks=...)`` it makes ``fit`` keep that average (with the
    warm-up it always had); together with ``fit(ema=...)`` it is an error.

    Args:
        decay: Per-step decay in (0, 1); 0.99 averages over roughly the last 100 steps.
        every: Update the average every this many steps.
        apply_at_end: Must be ``True``: ``fit`` leaves the averaged weights in the model.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", DeprecationWarning)
        ...     WeightAveraging(0.9, every=2).fit_ema()
        EMA(decay=0.9, every=2, warmup=True)
    """

    def __init__(self, decay: float = 0.99, *, every: int = 1, apply_at_end: bool = True) -> None:
        warn_deprecated("WeightAveraging(decay, every=...)", "fit(ema=EMA(decay, every=...))")
        if not apply_at_end:
            raise ValueError(
                "apply_at_end=False is gone with WeightAveraging: fit(ema=...) leaves the "
                "average in the model; keep a copy of the live weights yourself if needed."
            )
        self.options = EMA(decay, every=every, warmup=True)
        self.decay, self.every = decay, every

    def fit_ema(self) -> EMA:
        """The :class:`~visionblocks.train.EMA` ``fit`` keeps for this callback."""
        return self.options
