"""The ``fast`` recipe: a network and a training configuration that reach high accuracy quickly.

Every idea is borrowed from the CIFAR-10 speed records and runs through the
ordinary :func:`~visionblocks.train.fit`:

==========================================  ==================================================
Ingredient                                  Where it comes from
==========================================  ==================================================
Data resident on the device, augmented a    airbench (Keller Jordan, 2024); visionblocks'
batch at a time (pad-crop + flip)           :class:`~visionblocks.data.DeviceLoader`
Whitening 2x2 first layer, few wide conv    David Page, "How to train your ResNet" (2018);
groups, max-pool + scaled logits            airbench's network (:func:`fast_cnn`)
Fixed whitening filters, convs started as   airbench94
partial identities (``dirac_``)
bf16 autocast + channels_last               ``fit(precision="auto")``
One-cycle SGD with Nesterov momentum,       Smith & Topin 2017 (super-convergence); Page
label smoothing, no decay on BN/biases
Muon steps for the conv filters             Keller Jordan et al. 2024; airbench94_muon
(``optimizer="muon"``)
Optional weight averaging (EMA)             Page; ``fit(ema=EMA(...))``
Flip test-time augmentation                 Page; airbench (``evaluate(tta=True)``)
==========================================  ==================================================

Measured numbers are in ``docs/speed.rst`` (``benchmarks/time_to_accuracy.py``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from visionblocks.data import (
    BatchAugment,
    DataLike,
    describe_data,
    is_in_memory,
    normalization_stats,
    normalize,
    tensors_of,
)
from visionblocks.models import FastCNN, fast_cnn
from visionblocks.train import EMA, FIT_DEFAULTS, Callback, History, evaluate, fit

__all__ = ["RECIPE_PRESETS", "FastRecipe", "FastResult", "fast_recipe", "train_fast"]


@dataclass(frozen=True)
class FastRecipe:
    """The hyper-parameters of the ``fast`` recipe (one preset per dataset: :func:`fast_recipe`).

    Attributes:
        widths: Channels of :func:`fast_cnn`'s three conv groups.
        activation: :func:`fast_cnn`'s activation, ``"gelu"`` or ``"relu"``.
        identity_init: Start :func:`fast_cnn`'s convs as partial identities (airbench94).
        epochs: Passes over the training set (the one-cycle schedule spans all of them).
        batch_size: Images per optimizer step.
        optimizer: ``"sgd"`` (Nesterov) or ``"muon"`` (:class:`~visionblocks.train.Muon`:
            orthogonalized steps for the conv filters, Nesterov SGD for the rest).
        lr: Peak SGD learning rate (for ``batch_size``; scale it linearly with the batch);
            with ``"muon"``, that of the SGD steps (the filters take Muon's own).
        momentum: Nesterov momentum (of the SGD steps).
        weight_decay: L2 on conv/linear weights (not on BN parameters or biases).
        warmup: Fraction of the run spent warming the learning rate up.
        label_smoothing: Cross-entropy label smoothing.
        padding: Random-crop padding in pixels (0: no crops).
        flip: Flip training images left-right at random.
        ema: Per-step decay of the weight average, or ``None`` for no averaging.
        whiten: Initialize the first layer as a whitening of the training patches.
        whiten_images: Training images used to estimate the patch covariance.
        freeze_whitening: Keep the whitening filters fixed once fitted (airbench): only
            their bias trains, and the backward pass skips the first layer's weights.
        tta: Validate with flip test-time augmentation (every validation, the last included).
        val_every: Validate every ``val_every`` epochs and after the last
            (``fit(val_every=...)``); validations count in the recipe's time.

    Example:
        >>> recipe = fast_recipe("fashion-mnist")
        >>> recipe.epochs, recipe.optimizer, recipe.widths, recipe.identity_init
        (3, 'muon', (16, 64, 96), True)
        >>> fast_recipe("fashion-mnist-v2").averaging()
        EMA(decay=0.99, every=2, warmup=True)
        >>> FastRecipe(epochs=0)
        Traceback (most recent call last):
            ...
        ValueError: epochs must be an int >= 1; got 0.
    """

    widths: tuple[int, ...] = (32, 128, 128)
    activation: str = "gelu"
    identity_init: bool = False
    epochs: int = 8
    batch_size: int = 256
    optimizer: str = "sgd"
    lr: float = 0.2
    momentum: float = FIT_DEFAULTS.momentum
    weight_decay: float = FIT_DEFAULTS.weight_decay
    warmup: float = FIT_DEFAULTS.warmup
    label_smoothing: float = 0.2
    padding: int = 2
    flip: bool = True
    ema: float | None = None
    whiten: bool = True
    whiten_images: int = 5000
    freeze_whitening: bool = False
    tta: bool = True
    val_every: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be an int >= 1; got {self.epochs!r}.")
        if self.padding < 0:
            raise ValueError(f"padding must be >= 0; got {self.padding}.")
        if self.whiten_images < 2:
            raise ValueError(f"whiten_images must be >= 2; got {self.whiten_images}.")
        if self.optimizer not in ("sgd", "muon"):
            raise ValueError(f"optimizer must be 'sgd' or 'muon'; got {self.optimizer!r}.")

    def build_model(self, num_classes: int = 10, in_channels: int = 3) -> FastCNN:
        """The recipe's network (first layer not yet whitened: see :meth:`init_model`).

        Example:
            >>> fast_recipe("fashion-mnist").build_model(in_channels=1).num_features
            96
        """
        return fast_cnn(
            num_classes, in_channels, widths=self.widths, activation=self.activation,
            identity_init=self.identity_init,
        )  # fmt: skip

    def averaging(self) -> EMA | None:
        """The recipe's weight average (``fit(ema=...)``): every 2 steps, with warm-up.

        Example:
            >>> fast_recipe("fashion-mnist-v2").averaging()
            EMA(decay=0.99, every=2, warmup=True)
            >>> fast_recipe("fashion-mnist").averaging() is None
            True
        """
        return None if self.ema is None else EMA(self.ema, every=2, warmup=True)

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`~visionblocks.train.fit`.

        Example:
            >>> kwargs = fast_recipe("fashion-mnist").fit_kwargs()
            >>> kwargs["optimizer"], kwargs["schedule"], kwargs["batch_size"]
            ('muon', 'onecycle', 512)
        """
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "schedule": "onecycle",
            "warmup": self.warmup,
            "label_smoothing": self.label_smoothing,
            "augment": BatchAugment(padding=self.padding, flip=self.flip),
            "val_tta": self.tta,
            "val_every": self.val_every,
            "ema": self.averaging(),
        }

    def init_model(self, model: nn.Module, train: DataLike) -> None:
        """Whiten ``model``'s first layer on ``train`` (a no-op unless both allow it).

        Needs a :class:`FastCNN` and in-memory data (an
        :class:`~visionblocks.data.ImageDataset` or an ``(images, labels)`` pair).
        """
        if not (self.whiten and isinstance(model, FastCNN)):
            return
        images = _normalized_head(train, self.whiten_images)
        if images is not None:
            model.init_whitening(images)
            model.whiten.weight.requires_grad_(not self.freeze_whitening)


# visionblocks 0.2's preset: two epochs of ReLU (cheaper than GELU on a CPU) with convs that
# start as partial identities and fixed whitening filters (airbench94), a 4x higher learning
# rate with 5x less weight decay than 0.1's preset, flips only (Fashion-MNIST's garments are
# centred), smoothing 0.1, a weight EMA, and one validation at the end.
_FASHION_MNIST_V2 = FastRecipe(
    activation="relu",
    identity_init=True,
    freeze_whitening=True,
    epochs=2,
    lr=0.8,
    weight_decay=1e-4,
    padding=0,
    label_smoothing=0.1,
    ema=0.99,
    val_every=2,
)

# 93% in less time than one epoch of the lab's pipeline (docs/speed.rst): 0.2's network made
# cheaper (a 16-channel first group, 64 and 96 after it: a third of 0.2's FLOPs per image)
# and trained for 3 epochs instead of 2 by Muon (the conv filters) and Nesterov SGD (the
# rest) in batches of 512, with airbench94_muon's linear decay from the start, label
# smoothing 0.2 and no weight average. Chosen on 10,000 images held out of the training set
# (benchmarks/recipe_sweep.py), never on the test set.
_FASHION_MNIST = dataclasses.replace(
    _FASHION_MNIST_V2,
    widths=(16, 64, 96),
    epochs=3,
    batch_size=512,
    optimizer="muon",
    lr=0.67,
    momentum=0.85,
    weight_decay=0.0,
    warmup=0.0,
    label_smoothing=0.2,
    ema=None,
    val_every=3,
)

RECIPE_PRESETS: dict[str, FastRecipe] = {
    "fashion-mnist": _FASHION_MNIST,
    # 94%: the Muon preset's training with 0.2's widths for 5 epochs, validated after each.
    # In batches of 512 it takes half the steps of 0.2's 94% preset, which a GPU (bound by
    # kernel launches for a network this small) turns into time.
    "fashion-mnist-94": dataclasses.replace(
        _FASHION_MNIST, widths=_FASHION_MNIST_V2.widths, epochs=5, val_every=1
    ),
    # 94% on a GPU, where a network this small waits on kernel launches, not arithmetic: the
    # same training on twice 0.2's widths (4x its FLOPs) for 4 epochs. Slow on a CPU.
    "fashion-mnist-94-gpu": dataclasses.replace(
        _FASHION_MNIST, widths=(64, 256, 256), epochs=4, val_every=4
    ),
    # visionblocks 0.2's and 0.1's presets, kept by name (0.2's 94% preset: SGD, 5 epochs).
    "fashion-mnist-v2": _FASHION_MNIST_V2,
    "fashion-mnist-94-v2": dataclasses.replace(_FASHION_MNIST_V2, epochs=5, val_every=1),
    "fashion-mnist-v1": FastRecipe(epochs=5, padding=0, label_smoothing=0.1, ema=0.99),
    # airbench's widths and schedule, scaled to its batch size; unmeasured here (docs/speed.rst).
    "cifar10": FastRecipe(widths=(64, 256, 256), epochs=10, batch_size=512, lr=0.4, padding=2),
}


def fast_recipe(dataset: str = "fashion-mnist", **overrides: Any) -> FastRecipe:
    """The ``fast`` recipe's preset for ``dataset``, with any field overridden.

    Args:
        dataset: A key of ``visionblocks.recipes.RECIPE_PRESETS``: ``"fashion-mnist"``
            (3 epochs, 93%), ``"fashion-mnist-94"`` (5 epochs, 94%),
            ``"fashion-mnist-94-gpu"`` (4 epochs of a wider network, 94% on a GPU),
            ``"fashion-mnist-v2"``, ``"fashion-mnist-94-v2"`` and ``"fashion-mnist-v1"``
            (visionblocks 0.2's and 0.1's presets) or ``"cifar10"``.
        **overrides: :class:`FastRecipe` fields to change, e.g. ``epochs=12``.

    Example:
        >>> fast_recipe("fashion-mnist", epochs=3).epochs
        3
    """
    if dataset not in RECIPE_PRESETS:
        raise ValueError(f"no fast recipe for {dataset!r}; choose one of {sorted(RECIPE_PRESETS)}.")
    fields = {f.name for f in dataclasses.fields(FastRecipe)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"unknown FastRecipe field(s) {unknown}; valid fields: {sorted(fields)}.")
    return dataclasses.replace(RECIPE_PRESETS[dataset], **overrides)


@dataclass
class FastResult:
    """What :func:`train_fast` returns.

    Attributes:
        model: The trained model (with averaged weights if the recipe averages).
        history: The per-epoch :class:`~visionblocks.train.History`.
        accuracy: Validation accuracy at the end (with flip TTA if the recipe says so),
            or ``None`` without validation data.
        seconds: Wall time of the whole call.

    Example:
        >>> import visionblocks as vb
        >>> result = train_fast(vb.load_dataset("sample"),
        ...                     recipe=fast_recipe(epochs=1, widths=(8, 16, 16)),
        ...                     progress=False, seed=0)
        >>> type(result.model).__name__, len(result.history), result.accuracy
        ('FastCNN', 1, None)
        >>> result.seconds >= result.history.last["seconds"]
        True
    """

    model: nn.Module
    history: History
    accuracy: float | None
    seconds: float


def train_fast(
    train: DataLike,
    val: DataLike | None = None,
    *,
    recipe: FastRecipe | str = "fashion-mnist",
    model: nn.Module | None = None,
    callbacks: Sequence[Callback] = (),
    device: str | torch.device = "auto",
    precision: str = "auto",
    progress: bool = True,
    seed: int | None = None,
) -> FastResult:
    """Train the ``fast`` recipe's network on ``train`` with :func:`~visionblocks.train.fit`.

    Args:
        train: Training data (see :func:`~visionblocks.train.fit`); in-memory data is
            needed for the whitening first layer and is what makes it fast.
        val: Validation data, evaluated after every epoch and at the end.
        recipe: A :class:`FastRecipe` or the name of a preset (:func:`fast_recipe`).
        model: A model to train instead of the recipe's network.
        callbacks: More :class:`~visionblocks.train.Callback` s (after the recipe's own).
        device: See :func:`~visionblocks.train.fit`.
        precision: See :func:`~visionblocks.train.fit`.
        progress: Show progress bars.
        seed: Random seed (``None``: a fresh one).

    Returns:
        A :class:`FastResult`.

    Example:
        >>> import visionblocks as vb
        >>> train, test = vb.load_dataset("sample"), vb.load_dataset("sample", split="test")
        >>> result = train_fast(train, test, recipe=fast_recipe(epochs=1, widths=(8, 16, 16)),
        ...                     progress=False, seed=0)
        >>> len(result.history), result.accuracy == result.history.last["val_acc"]
        (1, True)
    """
    started = time.perf_counter()
    if isinstance(recipe, str):
        recipe = fast_recipe(recipe)
    if model is None:
        if not is_in_memory(train):
            raise TypeError(
                f"cannot tell the number of classes and channels of a {type(train).__name__}; "
                f"pass model=recipe.build_model(num_classes, in_channels)."
            )
        info = describe_data(train)
        model = recipe.build_model(info.num_classes, info.in_channels)
    recipe.init_model(model, train)
    kwargs = recipe.fit_kwargs()
    kwargs["callbacks"] = list(callbacks)
    history = fit(
        model, train, val, device=device, precision=precision, progress=progress, seed=seed,
        **kwargs,
    )  # fmt: skip
    accuracy = None
    if val is not None and history and not history.interrupted:
        # fit() validated the final weights (the average, if any) with the recipe's TTA.
        accuracy = history.last["val_acc"]
    elif val is not None:  # Ctrl-C mid-epoch: the weights changed since the last validation
        accuracy = evaluate(model, val, tta=recipe.tta, device=device, precision=precision).accuracy
    return FastResult(model, history, accuracy, time.perf_counter() - started)


def _normalized_head(data: DataLike, n: int) -> torch.Tensor | None:
    """The first ``n`` images of in-memory data, normalized as ``fit`` will normalize them."""
    if not is_in_memory(data):
        return None
    return normalize(tensors_of(data)[0][:n], *normalization_stats(data))
