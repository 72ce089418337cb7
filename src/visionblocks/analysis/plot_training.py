"""Pictures of how training went: loss/accuracy curves, confusion matrix, misclassified images.

All functions need the optional matplotlib (``pip install visionblocks[viz]``),
return a :class:`matplotlib.figure.Figure` and write a PNG when given ``save=path``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from visionblocks.analysis._mpl import PathLike, finish, new_figure, to_display

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "HistoryLike",
    "plot_confusion_matrix",
    "plot_history",
    "plot_lr_find",
    "plot_misclassified",
]


class HistoryLike(Protocol):
    """Anything with ``to_dict()`` giving per-epoch lists, like the trainer's ``History``.

    Required keys: ``"epoch"``, ``"train_loss"``, ``"train_acc"``; optional:
    ``"val_loss"``, ``"val_acc"``, ``"lr"``. Accuracies are fractions in ``[0, 1]``.

    Example:
        >>> class Logged:  # e.g. metrics read back from another tool's log
        ...     def to_dict(self) -> dict[str, list[float]]:
        ...         return {"epoch": [1, 2], "train_loss": [1.0, 0.5], "train_acc": [0.6, 0.8],
        ...                 "lr": [0.1, 0.01]}
        >>> [ax.get_title() for ax in plot_history(Logged()).axes]
        ['Loss', 'Accuracy', 'Learning rate']
    """

    def to_dict(self) -> dict[str, list[float]]:
        """Per-epoch values by name."""
        ...


def plot_history(history: HistoryLike, *, save: PathLike | None = None) -> Figure:
    """Loss and accuracy per epoch (train and, if present, validation), plus the learning rate.

    Args:
        history: A ``History`` from ``fit()`` or any object with a matching ``to_dict()``.
        save: Write the figure to this path.

    Returns:
        The figure, with loss, accuracy and (if recorded) learning-rate panels.

    Raises:
        ValueError: a required key is missing or the lists have different lengths.

    Example:
        >>> class FakeHistory:
        ...     def to_dict(self):
        ...         return {"epoch": [1, 2], "train_loss": [1.0, 0.5], "train_acc": [0.6, 0.8]}
        >>> [ax.get_title() for ax in plot_history(FakeHistory()).axes]
        ['Loss', 'Accuracy']
    """
    data = history.to_dict()
    missing = [key for key in ("epoch", "train_loss", "train_acc") if key not in data]
    if missing:
        raise ValueError(
            f"history.to_dict() lacks {missing}; it needs 'epoch', 'train_loss', 'train_acc' "
            f"(got keys {sorted(data)})."
        )
    epochs = list(data["epoch"])
    for key, values in data.items():
        if len(values) != len(epochs):
            raise ValueError(f"history[{key!r}] has {len(values)} values for {len(epochs)} epochs.")
    panels = [("Loss", "loss"), ("Accuracy", "acc")] + (
        [("Learning rate", "")] if data.get("lr") else []
    )
    fig = new_figure(4.0 * len(panels), 3.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, key) in zip(axes, panels, strict=True):
        if key:
            for split, style in (("train", "-o"), ("val", "-s")):
                series = data.get(f"{split}_{key}")
                if series:
                    ax.plot(epochs, series, style, markersize=3, label=split)
            ax.legend()
        else:
            ax.plot(epochs, data["lr"], "-", color="tab:green")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    return finish(fig, save)


def plot_confusion_matrix(
    matrix: torch.Tensor,
    class_names: Sequence[str],
    *,
    normalize: bool = True,
    save: PathLike | None = None,
) -> Figure:
    """Draw a confusion matrix: rows are true classes, columns predicted classes.

    Args:
        matrix: ``(K, K)`` integer counts, ``matrix[true, predicted]``.
        class_names: ``K`` class names.
        normalize: Colour by the fraction of each true class (row); cells show
            the count and, if normalised, the percentage.
        save: Write the figure to this path.

    Returns:
        The figure.

    Raises:
        ValueError: ``matrix`` is not square or does not match ``class_names``.

    Example:
        >>> fig = plot_confusion_matrix(torch.tensor([[5, 1], [2, 7]]), ["cat", "dog"])
        >>> [t.get_text() for t in fig.axes[0].get_xticklabels()]
        ['cat', 'dog']
    """
    counts = matrix.detach().cpu()
    k = len(class_names)
    if counts.dim() != 2 or tuple(counts.shape) != (k, k):
        raise ValueError(
            f"matrix must be ({k}, {k}) for {k} class names; got shape {tuple(counts.shape)}."
        )
    rates = counts.float() / counts.sum(dim=1, keepdim=True).clamp(min=1)
    shown = rates if normalize else counts.float()
    size = max(4.0, 0.55 * k + 2.0)
    fig = new_figure(size + 1.0, size)
    ax = fig.subplots()
    image = ax.imshow(shown.numpy(), cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    ax.set_xticks(range(k), list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(k), list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = float(shown.max()) / 2
    for i in range(k):
        for j in range(k):
            text = f"{int(counts[i, j])}" + (f"\n{100 * rates[i, j]:.0f}%" if normalize else "")
            colour = "white" if float(shown[i, j]) > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    accuracy = float(counts.diag().sum()) / max(int(counts.sum()), 1)
    ax.set_title(f"Confusion matrix (accuracy {100 * accuracy:.1f}%)")
    return finish(fig, save)


def plot_misclassified(
    images: torch.Tensor,
    targets: torch.Tensor,
    predictions: torch.Tensor,
    class_names: Sequence[str],
    *,
    max_images: int = 25,
    ncols: int = 5,
    save: PathLike | None = None,
) -> Figure:
    """A gallery of the images the model got wrong, titled ``true -> predicted``.

    Args:
        images: ``(N, C, H, W)`` images (uint8 or floats; floats are min-max scaled).
        targets: ``(N,)`` true class indices.
        predictions: ``(N,)`` predicted class indices (or ``(N, K)`` logits).
        class_names: Names for the class indices.
        max_images: Show at most this many mistakes (the first ones).
        ncols: Images per row.
        save: Write the figure to this path.

    Returns:
        The figure; its title says how many of the ``N`` images were wrong.

    Example:
        >>> fig = plot_misclassified(
        ...     torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 1, 0]), torch.tensor([0, 0, 1, 1]),
        ...     ["a", "b"])
        >>> [ax.get_title() for ax in fig.axes if ax.has_data()]
        ['b -> a', 'a -> b']
    """
    if predictions.dim() == 2:
        predictions = predictions.argmax(dim=1)
    if not images.shape[0] == targets.shape[0] == predictions.shape[0]:
        raise ValueError(
            f"images, targets and predictions must have the same length; got "
            f"{images.shape[0]}, {targets.shape[0]}, {predictions.shape[0]}."
        )
    wrong = (targets.cpu() != predictions.cpu()).nonzero().flatten()
    shown = wrong[:max_images]
    cols = max(1, min(ncols, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    fig = new_figure(1.8 * cols, 1.9 * rows + 0.4)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes:
        ax.set_axis_off()
    for ax, index in zip(axes, shown.tolist(), strict=False):
        picture = to_display(images[index])
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        true, pred = int(targets[index]), int(predictions[index])
        ax.set_title(f"{class_names[true]} -> {class_names[pred]}", fontsize=8, color="tab:red")
    fig.suptitle(f"{len(wrong)} of {images.shape[0]} misclassified (true -> predicted)")
    return finish(fig, save)


def plot_lr_find(
    lrs: Sequence[float],
    losses: Sequence[float],
    suggestion: float,
    *,
    save: PathLike | None = None,
) -> Figure:
    """Loss against learning rate of a range test, on a log axis, with the suggestion marked.

    ``LRFinderResult.plot()`` (from :func:`~visionblocks.train.lr_find`) calls this.

    Example:
        >>> fig = plot_lr_find([1e-3, 1e-2, 1e-1], [2.3, 1.9, 2.8], 1e-2)
        >>> fig.axes[0].get_xscale()
        'log'
    """
    fig = new_figure(5, 3.5)
    ax = fig.add_subplot()
    ax.plot(list(lrs), list(losses))
    ax.axvline(suggestion, color="tab:red", linestyle="--", label=f"{suggestion:.2g}")
    ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed loss", title="LR range test")
    ax.legend()
    return finish(fig, save)
