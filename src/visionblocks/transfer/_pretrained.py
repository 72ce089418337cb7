"""``pretrained()``: a backbone with pretrained weights and a new head, ready to fine-tune."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from visionblocks.model_file import (
    ModelCard,
    attach_card,
    card_in,
    card_of,
    is_plain,
    read_weights,
    state_dict_of,
)
from visionblocks.models import create_model, first_conv, list_models
from visionblocks.transfer._freeze import freeze as freeze_model
from visionblocks.transfer._heads import adapt_input_channels, get_head, replace_head
from visionblocks.transfer._preprocessing import (
    Preprocessing,
    card_preprocessing,
    lite_preprocessing,
    torchvision_preprocessing,
)
from visionblocks.transfer._rebuild import TORCHVISION_PREFIX as _TORCHVISION_PREFIX
from visionblocks.transfer._timm import (
    TIMM_PREFIX,
    build_timm,
    cached_timm_weights,
    is_timm_name,
    timm_preprocessing,
)
from visionblocks.transfer._weights import load_weights

__all__ = ["pretrained", "resolve_torchvision_weights"]

# File names, as opposed to weights enum names.
_SUFFIXES = {".pt", ".pth", ".bin", ".ckpt", ".safetensors"}


def _torchvision_models() -> list[str]:
    import torchvision.models

    return list(torchvision.models.list_models(module=torchvision.models))


def resolve_torchvision_weights(name: str, weights: Any) -> Any:
    """Turn ``"DEFAULT"``, a member name or a weights enum into torchvision's weights enum.

    Nothing is downloaded: this only picks the entry (its URL, hash, categories and
    transforms). ``None`` stays ``None``.

    Args:
        name: A torchvision classification model name, e.g. ``"resnet18"``.
        weights: ``"DEFAULT"``, a member name (``"IMAGENET1K_V1"``), a qualified name
            (``"ResNet18_Weights.IMAGENET1K_V1"``), a member of the model's enum, or ``None``.

    Raises:
        ValueError: ``weights`` is not one of the model's weights; the message lists them.

    Example:
        >>> resolve_torchvision_weights("resnet18", "DEFAULT")
        ResNet18_Weights.IMAGENET1K_V1
    """
    from torchvision.models import WeightsEnum, get_model_weights, get_weight

    if weights is None:
        return None
    enum = get_model_weights(name)
    available = ", ".join(["DEFAULT", *enum.__members__])
    if isinstance(weights, str) and "." in weights:
        try:
            weights = get_weight(weights)
        except (ValueError, KeyError):
            raise ValueError(f"unknown torchvision weights {weights!r}.") from None
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum):
            raise ValueError(
                f"{weights} are weights for another model, not {name!r}; use one of {available}."
            )
        return weights
    if isinstance(weights, str) and weights in {"DEFAULT", *enum.__members__}:
        return enum[weights]
    raise ValueError(
        f"unknown weights {weights!r} for {name!r}; use one of {available}, or a path."
    )


def _is_path(weights: object) -> bool:
    # exists(), not is_file(): a folder passed as weights is refused by the reader, by name.
    return isinstance(weights, os.PathLike) or (isinstance(weights, str) and Path(weights).exists())


def pretrained(
    name: str | nn.Module,
    num_classes: int,
    *,
    weights: Any = "DEFAULT",
    in_channels: int = 3,
    freeze: bool = False,
    keep_head: bool = False,
    sha256: str | None = None,
    strict: bool = True,
    model_kwargs: Mapping[str, Any] | None = None,
    preprocessing: Preprocessing | None = None,
) -> nn.Module:
    """Build a model with pretrained weights and a new head for ``num_classes`` classes.

    Four kinds of model, tried in this order:

    * a timm model, ``"timm:<name>"`` (any ``timm.list_models()`` name, optionally with
      a pretrained tag: ``"timm:resnet50.a1_in1k"``; the ``timm`` extra), with
      ``weights`` a local ``.safetensors``/``.pth``/``.bin`` file, or ``"DEFAULT"``: the
      file the local Hugging Face cache holds for it (never downloaded; a missing one
      is an error that says how to get it);
    * a visionblocks model name (``list_models()``), with ``weights`` the path of a
      checkpoint saved by ``save_checkpoint`` (its ``model_kwargs`` are reused);
    * a torchvision classification model name (``"resnet18"``; prefix
      ``"torchvision."`` to skip the visionblocks registry), with ``weights`` from
      torchvision's weights API (``"DEFAULT"``, ``"IMAGENET1K_V1"``, an enum member:
      downloaded by torchvision, so online only) or a local file;
    * a model instance (e.g. an EfficientNet from another package), with ``weights``
      a local file or state dict.

    A local file is read with ``weights_only=True`` (a ``.safetensors`` file holds
    tensors only) and, if ``sha256`` is given, checked first. The head is always new
    (freshly initialised, ``num_classes`` outputs) unless ``keep_head=True``: a source
    head trained for other classes, even as many, would start the new task from
    confidently wrong logits.
    For ``in_channels`` other than the weights' (grayscale from RGB), the first conv
    is adapted by summing the pretrained filters (:func:`adapt_conv_weight`), which
    keeps the features the rest of the network was trained on.

    The model's card names the builder that rebuilds the network for
    :func:`~visionblocks.load_model` (``"timm:<name>"``, ``"torchvision.<name>"`` or the
    visionblocks name; none for a model instance) and records where the weights came
    from (``source``: the file, the
    weights name, or ``"timm:<name>"`` with the file in ``training["weights"]``) and
    the preprocessing they were trained with: ``mean``, ``std`` and ``image_shape``
    (the weights' crop and interpolation in ``training["weights_preprocessing"]``).
    Each source declares it: timm's ``pretrained_cfg``, torchvision's weights
    ``transforms()`` (for a local file, those of the model's ``DEFAULT`` weights),
    EfficientNet-Lite's ``(x - 127) / 128`` for the ``efficientnet_lite_pytorch``
    models, a visionblocks checkpoint's card; ``preprocessing`` overrides it. ``fit``
    then normalizes with these statistics (its ``stats="auto"``); ``weights=None``
    declares none, so a from-scratch baseline uses the data's.

    Args:
        name: Model name or instance.
        num_classes: Classes of the new task; ``0`` gives a feature extractor (the head
            is removed and the model returns pooled features; the file's head is ignored).
        weights: ``"DEFAULT"``, a torchvision weights name or enum, a file path, a
            state dict, or ``None`` (random initialisation: the same architecture
            from scratch, for a baseline).
        in_channels: Input channels of the new task.
        freeze: Freeze everything but the new head (:func:`freeze`).
        keep_head: Keep the pretrained classifier (e.g. ImageNet's 1000 classes, to
            predict with the model as it is); ``num_classes`` must match it.
        sha256: Expected SHA-256 of the weights file (or a prefix of >= 8 hex digits).
        strict: Raise on missing/unexpected keys (see :func:`load_weights`).
        model_kwargs: Extra keyword arguments for a visionblocks model's builder or for
            ``timm.create_model`` (e.g. ``drop_path_rate``).
        preprocessing: What the weights expect of their inputs, when the source does
            not say it (another package's model, a file of other weights).

    Returns:
        The model, in training mode.

    Raises:
        ValueError: Unknown model name or weights, a hash mismatch, or keys that do
            not fit the model.
        ImportError: A ``"timm:"`` name without timm installed (``pip install
            'visionblocks[timm]'``).
        FileNotFoundError: A weights file that does not exist, or timm weights that are
            not in the local Hugging Face cache.
        ConnectionError: torchvision weights could not be downloaded (offline); the
            message gives the URL and how to pass the downloaded file instead.

    Example:
        >>> from visionblocks import resnet20
        >>> source = resnet20(num_classes=10).state_dict()
        >>> model = pretrained("resnet20", 5, weights=source, in_channels=1, freeze=True)
        >>> model.num_classes, model.in_channels
        (5, 1)
        >>> [n for n, p in model.named_parameters() if p.requires_grad]
        ['head.weight', 'head.bias']
    """
    if is_timm_name(name) and weights == "DEFAULT":
        weights = cached_timm_weights(str(name))
    state, saved_card, kwargs = _local_weights(name, weights, sha256, model_kwargs)
    model = _build(name, num_classes, in_channels, weights, state, kwargs)
    reinitialized = _load(model, state, keep_head=keep_head, strict=strict)
    _adapt(model, num_classes, in_channels, keep_head=keep_head, weights=weights,
           reinitialized=reinitialized)  # fmt: skip
    if freeze:
        freeze_model(model, except_head=True)
    if weights is not None and preprocessing is None:
        preprocessing = _declared_preprocessing(name, weights, model, saved_card)
    attach_card(model, _card(model, name, weights, num_classes, in_channels, kwargs,
                             preprocessing))  # fmt: skip
    return model.train()


def _card(
    model: nn.Module,
    name: str | nn.Module,
    weights: Any,
    num_classes: int,
    in_channels: int,
    kwargs: dict[str, Any],
    preprocessing: Preprocessing | None,
) -> ModelCard:
    """The model's card: its builder (timm's rebuilt from ``"timm:<name>"``), source, inputs."""
    card = card_of(model) or ModelCard()
    fields: dict[str, Any] = {"source": _describe(weights)}
    training = dict(card.training)
    if is_timm_name(name):
        bare = str(name).removeprefix(TIMM_PREFIX)
        plain = {k: v for k, v in kwargs.items() if is_plain(v)}
        fields.update(
            builder=TIMM_PREFIX + bare, source=TIMM_PREFIX + bare,
            builder_kwargs={**plain, "num_classes": num_classes, "in_channels": in_channels},
        )  # fmt: skip
        if weights is not None:
            training["weights"] = _weights_name(weights)
    elif isinstance(name, str) and _torchvision_name(name) is not None:
        fields.update(
            builder=_TORCHVISION_PREFIX + str(_torchvision_name(name)),
            builder_kwargs={"num_classes": num_classes, "in_channels": in_channels},
        )
    if preprocessing is not None:
        preprocessing = preprocessing.for_channels(in_channels)
        fields.update(preprocessing.card_fields())
        training["weights_preprocessing"] = preprocessing.resize_facts()
    return card.replace(training=training, **fields)


def _torchvision_name(name: str) -> str | None:
    """The torchvision model ``name`` stands for (``None``: a visionblocks or timm name)."""
    if is_timm_name(name) or (not name.startswith(_TORCHVISION_PREFIX) and name in list_models()):
        return None
    return name.removeprefix(_TORCHVISION_PREFIX)


def _declared_preprocessing(
    name: str | nn.Module, weights: Any, model: nn.Module, saved_card: ModelCard | None
) -> Preprocessing | None:
    """What the source of ``weights`` says its inputs were: see :func:`pretrained`."""
    if isinstance(name, nn.Module):
        return lite_preprocessing(name)
    if is_timm_name(name):
        return timm_preprocessing(name)
    if not name.startswith(_TORCHVISION_PREFIX) and name in list_models():
        return card_preprocessing(saved_card)
    tv_name = name.removeprefix(_TORCHVISION_PREFIX)
    local = _is_path(weights) or isinstance(weights, Mapping)
    return torchvision_preprocessing(
        resolve_torchvision_weights(tv_name, "DEFAULT" if local else weights)
    )


def _weights_name(weights: Any) -> str:
    """A weights file's name; ``"<repo>/<file>"`` for one in the Hugging Face cache."""
    if isinstance(weights, Mapping):
        return "state dict"
    path = Path(weights)
    # The cache keeps a repo's files under models--<owner>--<repo>/snapshots/<commit>/.
    repo = next((p for p in path.parts if p.startswith("models--")), None)
    if repo is not None and "snapshots" in path.parts:
        return f"{repo.removeprefix('models--').replace('--', '/')}/{path.name}"
    return path.name


def _describe(weights: Any) -> str | None:
    """Where the weights came from, for the model's card."""
    if weights is None:
        return None
    return "state dict" if isinstance(weights, Mapping) else str(weights)


def _local_weights(
    name: str | nn.Module,
    weights: Any,
    sha256: str | None,
    model_kwargs: Mapping[str, Any] | None,
) -> tuple[dict[str, Any] | None, ModelCard | None, dict[str, Any]]:
    """A local file's or state dict's tensors (``None`` otherwise), its card, the builder kwargs.

    A visionblocks model file names its builder: it must be ``name``, and its builder
    arguments are reused (``model_kwargs`` win).
    """
    kwargs = dict(model_kwargs or {})
    if isinstance(weights, str) and not _is_path(weights) and Path(weights).suffix in _SUFFIXES:
        raise FileNotFoundError(f"weights file {weights!r} does not exist.")
    if sha256 is not None and not _is_path(weights):
        raise ValueError(
            f"sha256 checks a weights file, but weights={weights!r} is not one (torchvision "
            f"checks the hashes of its own downloads)."
        )
    if weights is None or not (_is_path(weights) or isinstance(weights, Mapping)):
        return None, None, kwargs
    checkpoint = weights if isinstance(weights, Mapping) else read_weights(weights, sha256=sha256)
    card = card_in(checkpoint)
    saved_name = card.builder if card is not None else None
    if (
        isinstance(name, str)
        and isinstance(saved_name, str)
        and name.removeprefix(_TORCHVISION_PREFIX) != saved_name
    ):
        raise ValueError(
            f"the checkpoint was saved from model {saved_name!r}, not {name!r}; "
            f"call pretrained({saved_name!r}, ...)."
        )
    if card is not None:
        kwargs = {**card.builder_kwargs, **kwargs}
    return state_dict_of(checkpoint), card, kwargs


def _build(
    name: str | nn.Module,
    num_classes: int,
    in_channels: int,
    weights: Any,
    state: dict[str, Any] | None,
    kwargs: dict[str, Any],
) -> nn.Module:
    """The network ``name`` stands for: an instance, a timm, visionblocks or torchvision model."""
    if is_timm_name(name):
        if state is None and weights is not None:
            raise ValueError(
                f"weights={weights!r}: a timm model takes 'DEFAULT' (the local Hugging Face "
                f"cache), a .safetensors/.pth/.bin file, a state dict, or None."
            )
        options = {k: v for k, v in kwargs.items() if k not in ("num_classes", "in_channels")}
        return build_timm(str(name), num_classes=num_classes, in_channels=in_channels, **options)
    if isinstance(name, nn.Module):
        if state is None and weights is not None:
            raise ValueError(
                f"weights={weights!r}: a model instance takes a local weights file or state dict "
                f"(or None); torchvision weight names only work with torchvision model names."
            )
        return name
    if not name.startswith(_TORCHVISION_PREFIX) and name in list_models():
        if state is None and weights is not None:
            raise ValueError(
                f"visionblocks model {name!r} has no published weights ({weights!r}); pass the "
                f"path of a checkpoint saved with save_checkpoint, or weights=None."
            )
        kwargs.update(num_classes=num_classes, in_channels=in_channels)
        return create_model(name, **kwargs)
    return _torchvision_model(name.removeprefix(_TORCHVISION_PREFIX), num_classes, weights, state)


def _torchvision_model(
    tv_name: str, num_classes: int, weights: Any, state: dict[str, Any] | None
) -> nn.Module:
    available = _torchvision_models()
    if tv_name not in available:
        close = difflib.get_close_matches(tv_name, available + list_models(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown model {tv_name!r}: neither a visionblocks model (list_models()) nor a "
            f"torchvision classification model.{hint}"
        )
    import torchvision.models

    builder = torchvision.models.get_model_builder(tv_name)
    if state is not None or weights is None:
        return builder(weights=None, num_classes=num_classes)  # type: ignore[no-any-return]
    # torchvision downloads (online) and applies its own key fixes (e.g. DenseNet).
    resolved = resolve_torchvision_weights(tv_name, weights)
    try:
        return builder(weights=resolved, progress=True)  # type: ignore[no-any-return]
    except OSError as err:  # urllib's URLError, timeouts, a full or read-only cache
        lines = str(getattr(err, "reason", err)).strip().splitlines()
        raise ConnectionError(
            f"could not download the {tv_name!r} weights {weights!r} from "
            f"{resolved.url} ({lines[0] if lines else type(err).__name__}); "
            f"download that file where there is a connection and pass "
            f'weights="path/to/file.pth", or weights=None for random initialisation.'
        ) from None


def _load(
    model: nn.Module, state: dict[str, Any] | None, *, keep_head: bool, strict: bool
) -> list[str]:
    """Load a local state dict into ``model``; return the head keys left re-initialized."""
    if state is None:
        return []
    conv_name, conv = first_conv(model)
    saved_conv = state.get(conv_name + ".weight")
    if saved_conv is not None and saved_conv.dim() == 4 and saved_conv.shape[1] != conv.in_channels:
        # Give the stem the file's channel count so it loads; _adapt sets it back.
        adapt_input_channels(model, int(saved_conv.shape[1]))
    if not keep_head:
        # The head is replaced next, so the file's head has no place to fit: with
        # num_classes=0 (a feature extractor) the model has no head parameters at all.
        head_prefix = get_head(model)[0] + "."
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own or not k.startswith(head_prefix)}
    return load_weights(model, state, strict=strict).reinitialized


def _adapt(
    model: nn.Module,
    num_classes: int,
    in_channels: int,
    *,
    keep_head: bool,
    weights: Any,
    reinitialized: list[str],
) -> None:
    """The one head and stem adaptation of every source: a new head, the task's channels."""
    if keep_head:
        head = get_head(model)[1]
        outputs = head.out_features if isinstance(head, nn.Linear) else 0
        reason = (
            "no weights were loaded (weights=None)"
            if weights is None
            else f"its weights do not fit ({', '.join(reinitialized)} not loaded)"
            if reinitialized
            else f"it has {outputs} outputs"
        )
        if weights is None or reinitialized or outputs != num_classes:
            raise ValueError(
                f"keep_head=True keeps the pretrained head, which needs num_classes to match "
                f"it; {reason}. Drop keep_head to get a new head for {num_classes} classes."
            )
    else:
        replace_head(model, num_classes)
    if first_conv(model)[1].in_channels != in_channels:
        adapt_input_channels(model, in_channels)
