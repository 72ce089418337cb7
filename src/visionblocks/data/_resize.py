"""The resize rules: how an image of any shape is brought to a model's ``(height, width)``.

One function, :func:`resize_image`, used by every path that sizes an image: the in-memory
folder reader and the streaming dataset (through
:func:`~visionblocks.data.decode_image_file`) and
:func:`~visionblocks.inference.predict`, so a file gives the same tensor to a model in
training, evaluation and prediction.

* ``"squash"`` resizes to ``(H, W)`` and does not keep the aspect ratio: the whole picture is
  seen, stretched. Right for images that already have the model's shape (digits, icons).
* ``"shorter-side+center-crop"`` scales the image, keeping its aspect ratio, until it
  covers ``(H, W)`` (for a square size: its shorter side becomes ``N``), then cuts the
  centre ``(H, W)``: nothing is stretched, the borders of the longer side are lost. For a
  square ``N`` it is torchvision's ``Resize(N)`` then ``CenterCrop(N)``, pixel for pixel
  (the evaluation transform of the ImageNet models, without their extra 0.875 crop).

Both resample with one bilinear, antialiased resize of the uint8 (or float) tensor.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

__all__ = ["RESIZE_RULES", "check_resize_rule", "resize_image"]

RESIZE_RULES = ("squash", "shorter-side+center-crop")
"""The names :func:`resize_image` (and ``load_dataset(resize=...)``) accept."""


def check_resize_rule(rule: object) -> str:
    """``rule`` if it is one of :data:`RESIZE_RULES`, else a ``ValueError`` naming them.

    Example:
        >>> check_resize_rule("squash")
        'squash'
    """
    if not isinstance(rule, str) or rule not in RESIZE_RULES:
        raise ValueError(
            f"resize must be one of {', '.join(map(repr, RESIZE_RULES))}; got {rule!r}."
        )
    return rule


def resize_image(image: torch.Tensor, size: tuple[int, int], rule: str = "squash") -> torch.Tensor:
    """``image`` ``(..., C, h, w)`` brought to ``size`` ``(H, W)`` by the resize ``rule``.

    An image that already has ``size`` is returned as it is, whatever the rule.

    Example:
        >>> image = torch.zeros(1, 2, 4, dtype=torch.uint8)
        >>> image[..., 1:3] = 255  # a white square in the middle of a 2x4 picture
        >>> resize_image(image, (2, 2)).tolist()  # squashed: the black sides mixed in
        [[[146, 146], [146, 146]]]
        >>> resize_image(image, (2, 2), "shorter-side+center-crop").tolist()  # cut out
        [[[255, 255], [255, 255]]]
    """
    check_resize_rule(rule)
    height, width = image.shape[-2:]
    if (height, width) == tuple(size):
        return image
    if rule == "squash":
        squashed: torch.Tensor = TF.resize(
            image, list(size), InterpolationMode.BILINEAR, antialias=True
        )
        return squashed
    # Scale by the larger of the two ratios, so that both sides cover the target; the other
    # side and the crop offsets are computed as torchvision's Resize(int) and CenterCrop do,
    # so for a square size this is Resize(N) + CenterCrop(N) pixel for pixel.
    if size[0] / height >= size[1] / width:
        scaled_size = [size[0], max(size[1], int(size[0] * width / height))]
    else:
        scaled_size = [max(size[0], int(size[1] * height / width)), size[1]]
    scaled: torch.Tensor = TF.resize(image, scaled_size, InterpolationMode.BILINEAR, antialias=True)
    top = round((scaled_size[0] - size[0]) / 2.0)
    left = round((scaled_size[1] - size[1]) / 2.0)
    return scaled[..., top : top + size[0], left : left + size[1]].contiguous()
