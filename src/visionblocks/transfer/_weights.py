"""Load pretrained weights from a local file into a model, tolerating only a new head.

Reading (the one ``torch.load``, ``weights_only=True``, optional SHA-256 check) and the
diff of keys live in :mod:`visionblocks.model_file`; what this module adds is the
transfer-learning rule: a head of another shape is re-initialized, not an error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from torch import nn

from visionblocks.model_file import (
    LoadReport,
    load_state_checked,
    read_weights,
    state_dict_of,
)
from visionblocks.transfer._heads import get_head

__all__ = ["LoadReport", "load_weights", "read_checkpoint", "state_dict_of"]

_WeightsSource = str | os.PathLike[str] | Mapping[str, Any]

read_checkpoint = read_weights
"""Read a weights file safely (0.2's name of :func:`visionblocks.model_file.read_weights`)."""


def load_weights(
    model: nn.Module,
    source: _WeightsSource,
    *,
    strict: bool = True,
    sha256: str | None = None,
    skip_mismatched_head: bool = True,
) -> LoadReport:
    """Load a state dict or weights file into ``model``, tolerating only a new head.

    Head parameters whose shape differs from the model's (a checkpoint trained for
    another number of classes) are skipped and reported, since replacing the head
    is the point of transfer learning. Every other difference is an error that
    lists the keys, unless ``strict=False``.

    Args:
        model: The model to load into, changed in place.
        source: A state dict, a checkpoint dict, or the path of a file holding either.
        strict: Raise on missing or unexpected keys (shape mismatches outside the head
            always raise). ``False`` loads what matches and reports the rest.
        sha256: Expected SHA-256 (or a prefix of >= 8 hex digits) of the file.
        skip_mismatched_head: Skip head keys of a different shape instead of raising.

    Returns:
        A :class:`~visionblocks.model_file.LoadReport` of the keys that were not loaded.

    Raises:
        ValueError: Missing or unexpected keys (``strict``) or mismatched shapes; the
            message lists them.

    Example:
        >>> from visionblocks import resnet20
        >>> source = resnet20(num_classes=10).state_dict()
        >>> load_weights(resnet20(num_classes=3), source).reinitialized
        ['head.weight', 'head.bias']
        >>> partial = {"stem.0.weight": source["stem.0.weight"]}
        >>> load_weights(resnet20(), partial, strict=False).missing[:2]
        ['stem.1.weight', 'stem.1.bias']
    """
    raw = source if isinstance(source, Mapping) else read_weights(source, sha256=sha256)
    head = get_head(model)[0] if skip_mismatched_head else None
    return load_state_checked(model, state_dict_of(raw), strict=strict, head_prefix=head)
