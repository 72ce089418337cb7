"""Checkpoints of training: model files from the Python API, and ``fit``'s training state.

The file format, the model card, safe reading (the one ``torch.load``, always
``weights_only=True``) and the diff of keys live in :mod:`visionblocks.model_file`; this
module adds what training needs on top of it:

* :func:`save_checkpoint` / :func:`load_checkpoint`: a model file written from Python, with
  the card the model carries (what ``fit`` and the builders filled in), rebuilt by
  :func:`~visionblocks.inference.load_model` exactly like a CLI run's ``model.pt``;
* a *training state* (``fit(checkpoint_dir=...)``'s ``last.pt``): a model file plus the
  optimizer, schedule, scaler, history, RNG states, callback states and the epoch, so
  that ``fit(resume=...)`` continues exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from visionblocks.model_file import (
    CheckpointError,
    ModelCard,
    ModelFile,
    card_of,
    load_state_checked,
    read_model_file,
    unwrap_model,
    write_model_file,
)
from visionblocks.train._history import History
from visionblocks.train._seeding import rng_state, set_rng_state

if TYPE_CHECKING:
    from visionblocks.train._state import RunState

__all__ = [
    "TRAINING_STATE_KEYS",
    "card_for_saving",
    "load_checkpoint",
    "load_state",
    "read_training_state",
    "restore_training_state",
    "save_checkpoint",
    "save_training_state",
]

TRAINING_STATE_KEYS = frozenset({"optimizer", "epoch", "seed", "rng", "history"})
"""Entries that make a checkpoint a training state (what ``fit(resume=...)`` needs)."""
# Facts 0.2's ``save_checkpoint(extra=...)`` stored at the top of the file; now card fields.
_CARD_EXTRAS = ("classes", "stats", "image_shape")


def card_for_saving(model: nn.Module, card: ModelCard | None = None) -> ModelCard:
    """``card`` (default: the one ``model`` carries) as ``model`` is now.

    A head replaced after building (``reset_classifier``, ``replace_head``) changes the
    number of outputs: the builder's ``num_classes`` (and ``in_channels``) are taken from
    the model, so that the saved file rebuilds what was trained.

    Example:
        >>> import visionblocks as vb
        >>> model = vb.resnet20()
        >>> model.reset_classifier(4)
        >>> card_for_saving(model).builder_kwargs
        {'num_classes': 4, 'in_channels': 3}
    """
    card = card if card is not None else card_of(model) or ModelCard()
    inner = unwrap_model(model)
    if card.builder is None:
        return card
    kwargs = dict(card.builder_kwargs)
    for key in ("num_classes", "in_channels"):
        value = getattr(inner, key, None)
        if isinstance(value, int) and not isinstance(value, bool):
            kwargs[key] = value
    classes = card.classes
    if classes is not None and kwargs.get("num_classes") not in (None, 0, len(classes)):
        classes = None  # the class names described the old head
    return card.replace(builder_kwargs=kwargs, classes=classes)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    *,
    card: ModelCard | None = None,
    model_name: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a model's weights and its :class:`~visionblocks.model_file.ModelCard`, atomically.

    The card is the one the model carries: registered builders name themselves and their
    arguments, and :func:`~visionblocks.train.fit` adds the classes, input shape,
    normalization and how it trained. A file saved here, by ``fit``'s ``BestCheckpoint``
    or by ``visionblocks train`` rebuilds with :func:`~visionblocks.load_model`.

    A ``path`` ending in ``.safetensors`` writes a safetensors file: the weights as its
    tensors, the card as JSON in its metadata, so that reading it back unpickles nothing
    (``pip install 'visionblocks[safetensors]'``).

    Args:
        path: Target file (``.pt``, or ``.safetensors``); parent folders are created.
        model: The model (DDP/compiled wrappers are unwrapped).
        card: The card to store instead of the model's own.
        model_name: Registry name of the builder (overrides the card's ``builder``).
        model_kwargs: Builder arguments (with ``model_name``).
        extra: More facts: ``classes``, ``stats`` (``[mean, std]``) and ``image_shape`` set
            those card fields; any other plain entries (``epoch``, ``metrics``, ...) go
            into the card's ``training``.

    Returns:
        The path written.

    Raises:
        ValueError: A card field out of range (the message names it).

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = save_checkpoint(f"{tempfile.mkdtemp()}/m.pt", vb.resnet20(num_classes=3),
        ...                        extra={"classes": ["a", "b", "c"], "epoch": 4})
        >>> saved = load_checkpoint(path)
        >>> saved["card"].builder, saved["card"].classes, saved["card"].training
        ('resnet20', ('a', 'b', 'c'), {'epoch': 4})
        >>> path = save_checkpoint(f"{tempfile.mkdtemp()}/m.safetensors", vb.resnet20())
        >>> vb.model_card(vb.load_model(path)).builder
        'resnet20'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module; got {type(model).__name__}.")
    base = card if card is not None else card_of(model) or ModelCard()
    if model_name is not None:
        base = base.replace(builder=model_name, builder_kwargs=dict(model_kwargs or {}))
    facts = dict(extra or {})
    fields: dict[str, Any] = {}
    if facts.get("classes") is not None:
        fields["classes"] = tuple(str(c) for c in facts["classes"])
    if facts.get("image_shape") is not None:
        fields["image_shape"] = tuple(facts["image_shape"])
    if facts.get("stats") is not None:
        fields["mean"], fields["std"] = (tuple(float(v) for v in s) for s in facts["stats"])
    training = {k: v for k, v in facts.items() if k not in _CARD_EXTRAS}
    if training:
        fields["training"] = {**base.training, **training}
    full = card_for_saving(model, base).replace(**fields)
    return write_model_file(path, model, full)


def load_checkpoint(
    path: str | Path, model: nn.Module | None = None, *, strict: bool = True
) -> dict[str, Any]:
    """Read a visionblocks model file and optionally load its weights into ``model``.

    Args:
        path: A file written by :func:`save_checkpoint`, ``fit(checkpoint_dir=...)``,
            ``BestCheckpoint`` or ``visionblocks train``.
        model: If given, its weights are replaced by the file's.
        strict: Require the file's keys to match the model's exactly.

    Returns:
        A dict of the file's entries, ``"model"`` (the state dict), ``"card"`` (its
        :class:`~visionblocks.model_file.ModelCard`), a training state's entries
        (``"epoch"``, ``"history"``, ...), and, read from the card, ``"model_name"``,
        ``"model_kwargs"``, ``"classes"``, ``"stats"``, ``"image_shape"`` and the training
        facts, for code written against 0.2's flat files.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: The file cannot be read or is not a visionblocks model file.
        ValueError: (``strict``) its keys do not match the model; the message lists the
            missing, unexpected and mis-shaped keys.

    Example:
        >>> import tempfile, visionblocks as vb
        >>> path = save_checkpoint(f"{tempfile.mkdtemp()}/m.pt", vb.resnet20())
        >>> load_checkpoint(path, vb.resnet20())["model_name"]
        'resnet20'
    """
    saved = read_model_file(path)
    if model is not None:
        load_state(model, saved.state_dict, strict=strict)
    return _flat_view(saved)


def _flat_view(saved: ModelFile) -> dict[str, Any]:
    card = saved.card
    return {
        **card.training,
        "model_name": card.builder,
        "model_kwargs": dict(card.builder_kwargs),
        "classes": None if card.classes is None else list(card.classes),
        "stats": None if card.stats is None else [list(s) for s in card.stats],
        "image_shape": None if card.image_shape is None else list(card.image_shape),
        **saved.entries,
        "card": card,
        "model": saved.state_dict,
    }


def read_training_state(path: str | Path) -> dict[str, Any]:
    """Read a training state written by ``fit(checkpoint_dir=...)`` (for ``resume``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: Unreadable, or a model file rather than a training state.
    """
    state = load_checkpoint(path)
    missing = TRAINING_STATE_KEYS - set(state)
    if missing:
        raise CheckpointError(
            f"{str(path)!r} is a model checkpoint, not a training state (missing "
            f"{sorted(missing)}); load it with load_checkpoint() and start a new fit()."
        )
    return state


def load_state(model: nn.Module, state_dict: Mapping[str, Any], *, strict: bool = True) -> None:
    """Load ``state_dict`` into ``model``; an error lists missing, unexpected, mis-shaped keys.

    With ``strict=False`` every tensor whose name and shape match is loaded and missing
    or unexpected keys are left as they are (shapes that differ are still an error).
    """
    load_state_checked(model, state_dict, strict=strict)


def save_training_state(path: str | Path, run: RunState) -> Path:
    """Write everything ``fit(resume=...)`` needs to continue ``run`` after its epoch ``run.epoch``.

    Called at the end of an epoch only: a state saved mid-epoch could not be continued
    exactly (the position in the epoch's data order and augmentation is not saved).
    """
    return write_model_file(
        path,
        run.model,
        card_for_saving(run.model),
        state={
            "optimizer": run.optimizer.state_dict(),
            "schedule": run.scheduler.state_dict() if run.scheduler is not None else None,
            "scaler": run.scaler.state_dict(),
            "history": run.history.state_dict(),
            "epoch": run.epoch,
            "step": run.step,
            "seed": run.seed,
            "rng": rng_state(),
            "ema": run.ema.state_dict() if run.ema is not None else None,
            "callbacks": [_callback_state(cb) for cb in run.callbacks],
        },
    )


def _callback_state(callback: object) -> dict[str, Any] | None:
    state_dict = getattr(callback, "state_dict", None)
    if state_dict is None:
        return None
    return {"class": type(callback).__name__, "state": state_dict()}


def restore_training_state(run: RunState, state: Mapping[str, Any]) -> None:
    """Load a training state into a freshly set-up ``run`` (same arguments as the saved run).

    Raises:
        ValueError: The run does not match the saved one (its callbacks, or ``ema`` on one
            side only); the message says what differs.
    """
    load_state(run.model, state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    if run.scheduler is not None and state.get("schedule") is not None:
        run.scheduler.load_state_dict(state["schedule"])
    run.scaler.load_state_dict(state["scaler"])
    run.history = History.from_state_dict(state["history"])
    run.history.interrupted = False
    run.epoch = int(state["epoch"])
    run.step = int(state.get("step", 0))
    saved_ema = state.get("ema")
    if (saved_ema is None) != (run.ema is None):
        raise ValueError(
            f"the checkpoint was written {'with' if saved_ema is not None else 'without'} ema; "
            f"resume with the same ema= setting as the run that wrote it."
        )
    if run.ema is not None:
        run.ema.load_state_dict(saved_ema)  # type: ignore[arg-type]
    _restore_callbacks(run, state.get("callbacks") or [])
    set_rng_state(state["rng"])


def rewind_to_saved(run: RunState, path: Path) -> None:
    """Put the weights (and average) of the checkpoint at ``path`` back into ``run``.

    After an interruption mid-epoch this makes the returned model the last completed
    epoch's, the one ``last.pt`` holds and that ``history`` describes.
    """
    state = read_training_state(path)
    load_state(run.model, state["model"])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.load_state_dict(state["ema"])


def _restore_callbacks(run: RunState, saved: list[dict[str, Any] | None]) -> None:
    if not saved:  # a checkpoint written before callbacks had state
        return
    stateful = [(i, cb) for i, cb in enumerate(run.callbacks) if hasattr(cb, "load_state_dict")]
    for i, cb in stateful:
        entry = saved[i] if i < len(saved) else None
        if entry is None or entry.get("class") != type(cb).__name__:
            raise ValueError(
                f"callback {i} ({type(cb).__name__}) has no saved state in the checkpoint; "
                f"resume with the same callbacks, in the same order, as the run that wrote it."
            )
        cb.load_state_dict(entry["state"])
