"""The CNN lab's first networks: three conv/pool stages and a two-layer classifier.

Exercise 1 (``batch_norm=False``) reaches about 72% on CIFAR-10; Exercise 2 adds
BatchNorm after every conv (Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167)
and reaches about 75%.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from visionblocks.models.classifier import Classifier, _check_positive
from visionblocks.models.layers import init_weights, linear_head
from visionblocks.models.registry import register_model

__all__ = ["SimpleCNN", "simple_cnn", "simple_cnn_bn"]


class SimpleCNN(Classifier):
    """Conv-(BN)-ReLU-MaxPool stages, then Flatten-FC-ReLU-Dropout-FC.

    Unlike the other classifiers the first FC layer fixes the input size: the
    model only accepts ``image_size`` x ``image_size`` images and says so.

    Args:
        num_classes: Number of output classes.
        in_channels: Image channels (1 for grayscale).
        image_size: Height and width of the (square) input images.
        widths: Output channels of each conv stage; each stage halves the resolution.
        hidden: Width of the hidden fully connected layer.
        dropout: Dropout probability before the last layer.
        batch_norm: Insert BatchNorm after every conv (the lab's Exercise 2).

    Example:
        >>> model = SimpleCNN()
        >>> sum(p.numel() for p in model.parameters())
        1147466
        >>> model(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        *,
        image_size: int = 32,
        widths: Sequence[int] = (32, 64, 128),
        hidden: int = 512,
        dropout: float = 0.5,
        batch_norm: bool = False,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        _check_positive("hidden", hidden)
        if not widths:
            raise ValueError("widths must name at least one conv stage, e.g. (32, 64, 128).")
        if image_size < 2 ** len(widths):
            raise ValueError(
                f"image_size={image_size} is too small for {len(widths)} pooling stages; "
                f"it must be at least {2 ** len(widths)}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        self.image_size = image_size
        self.min_input_size = 1  # the exact-size check in _check_input is stricter
        stages: list[nn.Module] = []
        channels, size = in_channels, image_size
        for width in widths:
            _check_positive("widths entry", width)
            layers: list[nn.Module] = [
                nn.Conv2d(channels, width, 3, padding=1, bias=not batch_norm)
            ]
            if batch_norm:
                layers.append(nn.BatchNorm2d(width))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            stages.append(nn.Sequential(*layers))
            channels, size = width, size // 2
        self.features = nn.Sequential(*stages)
        self.flat_features = channels * size * size  # 128 * 4 * 4 = 2048 for CIFAR
        self.num_features = hidden
        self.pre_logits = nn.Sequential(
            nn.Flatten(),
            nn.Linear(self.flat_features, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.head = linear_head(hidden, num_classes)
        if batch_norm:
            init_weights(self)

    @property
    def default_input_size(self) -> tuple[int, int, int]:
        """The ``(C, H, W)`` input this model was built for."""
        return (self.in_channels, self.image_size, self.image_size)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, S, S)`` images to ``(B, widths[-1], S / 8, S / 8)`` feature maps."""
        return self.features(x)  # type: ignore[no-any-return]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Flatten the feature maps and apply the FC layers (``pre_logits``: skip the last)."""
        x = self.pre_logits(x)  # (B, hidden)
        return x if pre_logits else self.head(x)

    def _check_input(self, x: torch.Tensor) -> None:
        super()._check_input(x)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"SimpleCNN was built for {self.image_size}x{self.image_size} images (its "
                f"first FC layer takes {self.flat_features} features) but got "
                f"{x.shape[-2]}x{x.shape[-1]}; build it with image_size={x.shape[-1]} or "
                f"resize the images."
            )


@register_model
def simple_cnn(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    image_size: int = 32,
    widths: Sequence[int] = (32, 64, 128),
    hidden: int = 512,
    dropout: float = 0.5,
    batch_norm: bool = False,
) -> SimpleCNN:
    """Build the lab's Exercise 1 CNN (Exercise 2 with ``batch_norm=True``).

    For 3x32x32 inputs and 10 classes it has exactly 1,147,466 parameters.

    Example:
        >>> model = simple_cnn(in_channels=1, image_size=28)
        >>> model(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """
    return SimpleCNN(
        num_classes,
        in_channels,
        image_size=image_size,
        widths=widths,
        hidden=hidden,
        dropout=dropout,
        batch_norm=batch_norm,
    )


@register_model
def simple_cnn_bn(
    num_classes: int = 10, in_channels: int = 3, *, image_size: int = 32, dropout: float = 0.5
) -> SimpleCNN:
    """Build the lab's Exercise 2 CNN: :func:`simple_cnn` with BatchNorm after every conv.

    Example:
        >>> sum(p.numel() for p in simple_cnn_bn().parameters())
        1147690
    """
    return SimpleCNN(
        num_classes, in_channels, image_size=image_size, dropout=dropout, batch_norm=True
    )
