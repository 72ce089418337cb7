"""The interface every visionblocks classifier shares.

Transfer learning, Grad-CAM and the trainer only ever talk to a model through
this interface, so a new architecture works with all of them the moment it
subclasses :class:`Classifier` (the same contract timm's models offer).
"""

from __future__ import annotations

import torch
from torch import nn

from visionblocks.models.layers import linear_head

__all__ = ["Classifier"]


class Classifier(nn.Module):
    """Base class: a feature extractor followed by a pooled linear head.

    Subclasses build ``self.head`` (an :class:`torch.nn.Linear` or
    :class:`torch.nn.Identity`) and implement :meth:`forward_features`. The head
    is applied to the globally average-pooled features, which is what lets any
    input size of at least ``min_input_size`` work.

    Attributes:
        num_classes: Number of output logits (0 once the head is removed).
        in_channels: Number of input image channels (1 for grayscale, 3 for RGB).
        num_features: Width of the pooled feature vector fed to the head.
        min_input_size: Smallest input height/width the network accepts.
        default_input_size: ``(C, H, W)`` the model is designed for.

    Example:
        >>> class Tiny(Classifier):
        ...     def __init__(self, num_classes: int = 3, in_channels: int = 1) -> None:
        ...         super().__init__(num_classes=num_classes, in_channels=in_channels)
        ...         self.num_features = 4
        ...         self.features = nn.Conv2d(in_channels, 4, 3, padding=1)
        ...         self.head = nn.Linear(4, num_classes)
        ...     def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        ...         return self.features(x)
        >>> model = Tiny()
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 3])
        >>> model.reset_classifier(0)  # no head: pooled features
        >>> model(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 4])
        >>> model(torch.zeros(2, 3, 28, 28))
        Traceback (most recent call last):
            ...
        ValueError: Tiny was built for in_channels=1 but got 3-channel input of shape (2, 3, 28, 28); build the model with in_channels=3.
    """  # noqa: E501  (the doctest's expected error is one long line)

    num_classes: int
    in_channels: int
    num_features: int
    min_input_size: int = 8
    head: nn.Module

    def __init__(self, *, num_classes: int, in_channels: int) -> None:
        super().__init__()
        _check_positive("num_classes", num_classes, allow_zero=True)
        _check_positive("in_channels", in_channels)
        self.num_classes = num_classes
        self.in_channels = in_channels

    @property
    def default_input_size(self) -> tuple[int, int, int]:
        """The ``(C, H, W)`` input this model is designed for (CIFAR-sized by default)."""
        return (self.in_channels, 32, 32)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map images ``(B, C, H, W)`` to unpooled feature maps ``(B, F, h, w)``."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool feature maps and apply the classifier.

        Args:
            x: Feature maps ``(B, F, h, w)`` from :meth:`forward_features`.
            pre_logits: Return the pooled ``(B, F)`` features instead of logits.

        Returns:
            ``(B, num_classes)`` logits, or ``(B, F)`` features if ``pre_logits``.
        """
        x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)  # (B, F)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify a batch of images ``(B, C, H, W)`` into ``(B, num_classes)`` logits."""
        self._check_input(x)
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        """Return the final classification layer."""
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the head with a freshly initialised one for ``num_classes`` classes.

        ``num_classes=0`` removes the head: the model then returns pooled features.
        """
        _check_positive("num_classes", num_classes, allow_zero=True)
        self.num_classes = num_classes
        self.head = linear_head(self.num_features, num_classes)

    def _check_input(self, x: torch.Tensor) -> None:
        # Checked here so a wrong input fails with our message, not a shape error deep in a conv.
        if x.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a batch of images (B, C, H, W); got a tensor of "
                f"shape {tuple(x.shape)}. Add a batch dimension with x.unsqueeze(0)."
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built for in_channels={self.in_channels} but got "
                f"{x.shape[1]}-channel input of shape {tuple(x.shape)}; build the model with "
                f"in_channels={x.shape[1]}."
            )
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f"{type(self).__name__} needs inputs of at least {self.min_input_size}x"
                f"{self.min_input_size} pixels; got {tuple(x.shape[-2:])}."
            )


def _check_positive(name: str, value: object, *, allow_zero: bool = False) -> None:
    """Raise a clear error unless ``value`` is a positive (or non-negative) ``int``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int; got {value!r} ({type(value).__name__}).")
    low = 0 if allow_zero else 1
    if value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}.")
