"""What pretrained weights expect of their inputs: :class:`Preprocessing`, per source.

Weights are trained on images prepared one way, and features computed on images
prepared another way are shifted. EfficientNet-Lite0's ImageNet weights give
``skimage.data.coffee()`` "espresso" at 0.90 with their own ``(x - 127) / 128`` and
at 0.81 with the statistics of a dataset of that photo and ``chelsea()`` (mean 0.60,
0.39, 0.27; std 0.19); chelsea's "Egyptian cat" drops from 0.79 to 0.77 (measured by
``tests/transfer/test_weights_preprocessing.py``). So every pretrained source declares
its preprocessing, as torchvision's ``Weights.transforms()`` and timm's
``pretrained_cfg`` do, :func:`~visionblocks.transfer.pretrained` writes it into the
model's card, and ``fit`` normalizes with it (``fit(stats="auto")``).

The card holds the statistics, the image shape and the resize rule: a source that
evaluates by resizing the shorter side and cutting the centre (every ImageNet source
here) gets ``"shorter-side+center-crop"``, so ``predict`` with the pretrained head keeps
a photo's aspect ratio; ``fit`` replaces shape and rule by the data's. The card's rule
crops the whole shorter side; the weights' own crop fraction (``crop_pct``, e.g. 224 of
256) and interpolation are kept in the card's ``training["weights_preprocessing"]``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from visionblocks.data import RESIZE_RULES
from visionblocks.model_file import ModelCard

__all__ = [
    "EFFICIENTNET_LITE",
    "IMAGENET",
    "Preprocessing",
    "lite_preprocessing",
    "torchvision_preprocessing",
]


@dataclass(frozen=True)
class Preprocessing:
    """How the images a model's weights were trained on were prepared.

    Attributes:
        mean: Per-channel mean in [0, 1] units the inputs were normalized with.
        std: Per-channel standard deviation (``> 0``) in [0, 1] units.
        input_size: ``(C, H, W)`` the weights were trained (or evaluated) at, if known.
        crop_pct: Evaluation crop: resize the shorter side to ``H / crop_pct``, then take
            the centre ``H x W`` (timm's rule; torchvision's 224-of-256 is 0.875). ``1.0``:
            no crop.
        interpolation: Resampling of that resize (``"bilinear"``, ``"bicubic"``, ...).
        resize: The card's resize rule for these inputs (one of
            :data:`~visionblocks.data.RESIZE_RULES`): ``"shorter-side+center-crop"`` for
            the ImageNet sources; a visionblocks checkpoint keeps its own.

    Raises:
        ValueError: Statistics of different lengths, a ``std`` that is not positive, a
            ``crop_pct`` outside ``(0, 1]``, an unknown ``resize`` rule.

    Example:
        >>> IMAGENET.mean, IMAGENET.crop_pct
        ((0.485, 0.456, 0.406), 0.875)
        >>> IMAGENET.for_channels(1).mean
        (0.449,)
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int] | None = None
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    resize: str = "shorter-side+center-crop"

    def __post_init__(self) -> None:
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if not mean or len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel; got {mean} and {std}.")
        if not all(math.isfinite(v) for v in mean) or not all(
            math.isfinite(v) and v > 0 for v in std
        ):
            raise ValueError(f"mean must be finite and std finite and > 0; got {mean}, {std}.")
        if not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1]; got {self.crop_pct!r}.")
        if self.resize not in RESIZE_RULES:
            raise ValueError(f"resize must be one of {RESIZE_RULES}; got {self.resize!r}.")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if self.input_size is not None:
            object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))

    def for_channels(self, in_channels: int) -> Preprocessing:
        """The same preprocessing for ``in_channels`` inputs, the way the stem is adapted.

        One channel gets the average of the statistics (the stem sums its filters,
        :func:`~visionblocks.transfer.adapt_conv_weight`); more channels repeat them
        cyclically, as the stem's filters are.

        Example:
            >>> Preprocessing((0.2, 0.4), (0.1, 0.3)).for_channels(3).std
            (0.1, 0.3, 0.1)
        """
        if in_channels == len(self.mean):
            return self
        mean: tuple[float, ...]
        std: tuple[float, ...]
        if in_channels == 1:
            mean = (round(sum(self.mean) / len(self.mean), 6),)
            std = (round(sum(self.std) / len(self.std), 6),)
        else:
            mean = tuple(itertools.islice(itertools.cycle(self.mean), in_channels))
            std = tuple(itertools.islice(itertools.cycle(self.std), in_channels))
        size = None if self.input_size is None else (in_channels, *self.input_size[1:])
        return Preprocessing(mean, std, size, self.crop_pct, self.interpolation, self.resize)

    def card_fields(self) -> dict[str, Any]:
        """The fields of a :class:`~visionblocks.model_file.ModelCard` this sets.

        Example:
            >>> sorted(IMAGENET.card_fields())
            ['image_shape', 'mean', 'resize', 'std']
        """
        return {"mean": self.mean, "std": self.std, "image_shape": self.input_size,
                "resize": self.resize}  # fmt: skip

    def resize_facts(self) -> dict[str, Any]:
        """What the card's fields cannot hold yet: the weights' own crop and interpolation.

        Example:
            >>> IMAGENET.resize_facts()
            {'input_size': [3, 224, 224], 'crop_pct': 0.875, 'interpolation': 'bilinear'}
        """
        size = None if self.input_size is None else list(self.input_size)
        return {"input_size": size, "crop_pct": self.crop_pct, "interpolation": self.interpolation}


IMAGENET = Preprocessing(
    (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), (3, 224, 224), crop_pct=0.875
)
"""torchvision's ImageNet preprocessing: resize to 256, centre crop 224, ImageNet statistics."""

EFFICIENTNET_LITE = Preprocessing(
    (127 / 255,) * 3, (128 / 255,) * 3, (3, 224, 224), crop_pct=0.875, interpolation="bicubic"
)
"""EfficientNet-Lite0's: TensorFlow's ``(x - 127) / 128`` on 0-255 pixels (the Lite models
are quantization-friendly, so they take inputs in about [-1, 1]), bicubic, 224 of 256."""

# EfficientNet-Lite resolutions by (width, depth) coefficient, from the Lite builder of
# the TensorFlow release (efficientnet/lite/efficientnet_lite_builder.py).
_LITE_SIZES = {(1.0, 1.0): 224, (1.0, 1.1): 240, (1.1, 1.2): 260, (1.2, 1.4): 280, (1.4, 1.8): 300}


def lite_preprocessing(model: nn.Module) -> Preprocessing | None:
    """EfficientNet-Lite's preprocessing for a model of the ``efficientnet_lite_pytorch`` package.

    ``None`` for any other model (including that package's EfficientNet-B models, which
    its authors trained on ImageNet statistics and this function does not guess).

    Example:
        >>> lite_preprocessing(nn.Linear(2, 2)) is None
        True
    """
    params = getattr(model, "_global_params", None)
    if not type(model).__module__.startswith("efficientnet_lite_pytorch") or params is None:
        return None
    if not getattr(params, "fix_head_stem", False):  # only the Lite variants fix the stem
        return None
    size = getattr(params, "image_size", None) or _LITE_SIZES.get(
        (params.width_coefficient, params.depth_coefficient), 224
    )
    side = size if isinstance(size, int) else int(size[0])
    return Preprocessing(EFFICIENTNET_LITE.mean, EFFICIENTNET_LITE.std, (3, side, side),
                         crop_pct=side / (side + 32), interpolation="bicubic")  # fmt: skip


def torchvision_preprocessing(weights: Any) -> Preprocessing:
    """The preprocessing a torchvision weights enum member declares (its ``transforms()``).

    Example:
        >>> import torchvision
        >>> weights = torchvision.models.ResNet18_Weights.DEFAULT
        >>> torchvision_preprocessing(weights) == IMAGENET
        True
    """
    transform = weights.transforms()
    crop, resize = int(transform.crop_size[0]), int(transform.resize_size[0])
    return Preprocessing(
        tuple(transform.mean), tuple(transform.std), (3, crop, crop),
        crop_pct=round(crop / resize, 4), interpolation=transform.interpolation.value,
    )  # fmt: skip


def card_preprocessing(card: ModelCard | None) -> Preprocessing | None:
    """The preprocessing a visionblocks model file's card records, if it has statistics."""
    if card is None or card.mean is None or card.std is None:
        return None
    return Preprocessing(card.mean, card.std, card.image_shape, resize=card.resize)


def timm_cfg_preprocessing(cfg: Mapping[str, Any]) -> Preprocessing:
    """The preprocessing of a timm ``pretrained_cfg`` (mean, std, input_size, crop_pct, ...)."""
    return Preprocessing(
        tuple(cfg.get("mean") or IMAGENET.mean), tuple(cfg.get("std") or IMAGENET.std),
        tuple(cfg.get("input_size") or (3, 224, 224)),
        crop_pct=float(cfg.get("crop_pct") or 1.0),
        interpolation=str(cfg.get("interpolation") or "bilinear"),
    )  # fmt: skip
