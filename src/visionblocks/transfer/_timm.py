"""timm backbones (the optional ``timm`` extra): build, find cached weights, declare preprocessing.

``pretrained("timm:<name>", ...)`` builds any timm classification model with
``pretrained=False`` (timm never downloads here) and loads the weights itself: from a
local file (read by :mod:`visionblocks.model_file`, ``.pth``/``.bin`` with
``weights_only=True``, or ``.safetensors``), or, for ``weights="DEFAULT"``, from the
file the local Hugging Face cache already holds for the model's ``hf_hub_id``. The
cache is only looked up (``try_to_load_from_cache`` never opens a connection), so a
missing file is a one-line error that says how to get it, not a download.

Every timm classifier has ``get_classifier``/``reset_classifier``, which is what
:func:`get_head`, :func:`replace_head`, :func:`freeze` and :func:`param_groups` use, and
a ``pretrained_cfg`` with the weights' ``mean``, ``std``, ``input_size``, ``crop_pct``
and ``interpolation`` (:func:`timm_preprocessing`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from visionblocks.transfer._preprocessing import Preprocessing, timm_cfg_preprocessing

__all__ = [
    "TIMM_PREFIX",
    "build_timm",
    "cached_timm_weights",
    "import_timm",
    "is_timm_name",
    "timm_preprocessing",
]

TIMM_PREFIX = "timm:"
"""Model names that start with this are timm's: ``"timm:resnet50.a1_in1k"``."""

# The files timm publishes on the Hugging Face Hub, in the order timm itself tries them.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def is_timm_name(name: object) -> bool:
    """Whether ``name`` names a timm model (``"timm:<name>"``).

    Example:
        >>> is_timm_name("timm:resnet10t"), is_timm_name("resnet18")
        (True, False)
    """
    return isinstance(name, str) and name.startswith(TIMM_PREFIX)


def import_timm() -> ModuleType:
    """The ``timm`` module, or an :class:`ImportError` that says how to install it."""
    try:
        import timm
    except ImportError:
        raise ImportError(
            "timm models need the timm package, which is not installed: "
            "pip install 'visionblocks[timm]'."
        ) from None
    return timm


def _checked_name(name: str) -> str:
    """``name`` without the prefix, or a ValueError listing the closest timm names."""
    timm = import_timm()
    bare = name.removeprefix(TIMM_PREFIX)
    if not timm.is_model(bare):
        close = difflib.get_close_matches(bare, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(TIMM_PREFIX + c) for c in close)}?" if close else ""
        raise ValueError(f"unknown timm model {bare!r} (timm.list_models() has them).{hint}")
    return str(bare)


def build_timm(name: str, *, num_classes: int, in_channels: int = 3, **kwargs: Any) -> nn.Module:
    """A timm model with random weights (``pretrained=False``: nothing is downloaded).

    Args:
        name: ``"timm:<name>"`` or a bare timm name, optionally with a pretrained tag
            (``"resnet50.a1_in1k"``).
        num_classes: Outputs of the head (``0``: pooled features).
        in_channels: Input channels (timm's ``in_chans``).
        **kwargs: More arguments of ``timm.create_model`` (``drop_rate``, ...).

    Raises:
        ImportError: timm is not installed (the message says how to install it).
        ValueError: timm has no such model; the message suggests close names.

    Example:
        >>> model = build_timm("timm:resnet10t", num_classes=3, in_channels=1)
        >>> model.num_classes, model.conv1[0].in_channels
        (3, 1)
    """
    timm = import_timm()
    bare = _checked_name(name)
    kwargs.pop("pretrained", None)
    model: nn.Module = timm.create_model(
        bare, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs
    )
    return model


def _pretrained_cfg(name: str) -> dict[str, Any]:
    timm = import_timm()
    bare = _checked_name(name)
    cfg = timm.models.get_pretrained_cfg(bare)
    return {} if cfg is None else dict(cfg.to_dict())


def timm_preprocessing(name: str) -> Preprocessing:
    """The preprocessing timm's ``pretrained_cfg`` declares for ``name``'s weights.

    Example:
        >>> p = timm_preprocessing("timm:resnet10t")
        >>> p.mean, p.input_size, p.crop_pct, p.interpolation
        ((0.485, 0.456, 0.406), (3, 176, 176), 0.875, 'bicubic')
    """
    return timm_cfg_preprocessing(_pretrained_cfg(name))


def cached_timm_weights(name: str) -> Path:
    """The weights file of ``name`` in the local Hugging Face cache, without downloading.

    Raises:
        FileNotFoundError: The cache does not hold them; the one-line message gives the
            ``hf`` command (or URL) that downloads them where there is a connection, and
            the ``weights=`` to pass then.

    Example:
        >>> try:  # nothing is downloaded: an empty cache says how to get the file
        ...     cached_timm_weights("resnet10t.c3_in1k")
        ... except FileNotFoundError as err:
        ...     print("hf download timm/resnet10t.c3_in1k" in str(err))
        True
    """
    cfg = _pretrained_cfg(name)
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = str(hub_id).partition("@")
        files = [cfg["hf_hub_filename"]] if cfg.get("hf_hub_filename") else list(_HUB_FILES)
        for filename in files:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
        how, target = f"hf download {repo} {files[0]} (pip install huggingface_hub)", files[0]
    elif cfg.get("url"):
        how, target = f"download {cfg['url']}", Path(str(cfg["url"])).name
    else:
        raise FileNotFoundError(
            f"timm publishes no weights for {name!r}; pass weights='path/to/file' or weights=None."
        )
    raise FileNotFoundError(
        f"the weights of {name!r} are not in the local Hugging Face cache and nothing is "
        f"downloaded here: {how} where there is a connection, then pass "
        f"weights='path/to/{target}' (or copy the cache here)."
    )
