"""What the architecture search chooses: :class:`ArchConfig`, :class:`SearchSpace`, the network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from visionblocks.models import Classifier
from visionblocks.models.layers import init_weights, linear_head

__all__ = ["ArchConfig", "SearchSpace", "StagedCNN"]


@dataclass(frozen=True)
class ArchConfig:
    """One point of the search space: per-stage kernel size, depth and width.

    Every stage after the first halves the resolution with its first conv.

    Attributes:
        kernel_sizes: Kernel size of the convs of each stage (odd, "same" padding).
        depths: Number of Conv-BN-ReLU layers in each stage.
        widths: Output channels of each stage.

    Example:
        >>> config = ArchConfig(kernel_sizes=(3, 5), depths=(1, 2), widths=(16, 32))
        >>> config.describe()
        'k3-d1-w16 | k5-d2-w32'
    """

    kernel_sizes: tuple[int, ...]
    depths: tuple[int, ...]
    widths: tuple[int, ...]

    def __post_init__(self) -> None:
        n = len(self.kernel_sizes)
        if n == 0 or len(self.depths) != n or len(self.widths) != n:
            raise ValueError(
                f"kernel_sizes, depths and widths need one entry per stage (at least one); got "
                f"{len(self.kernel_sizes)}, {len(self.depths)} and {len(self.widths)} entries."
            )
        if any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"kernel sizes must be odd and positive; got {self.kernel_sizes}.")
        if min(self.depths) < 1 or min(self.widths) < 1:
            raise ValueError(
                f"depths and widths must be >= 1; got depths={self.depths}, widths={self.widths}."
            )

    def describe(self) -> str:
        """A compact one-line description, one ``k{kernel}-d{depth}-w{width}`` per stage."""
        return " | ".join(
            f"k{k}-d{d}-w{w}"
            for k, d, w in zip(self.kernel_sizes, self.depths, self.widths, strict=True)
        )

    def build(self, num_classes: int = 10, in_channels: int = 3) -> StagedCNN:
        """Build the network this configuration describes."""
        return StagedCNN(self, num_classes=num_classes, in_channels=in_channels)


@dataclass(frozen=True)
class SearchSpace:
    """The choices :func:`~visionblocks.nas.search` samples from, per stage.

    Attributes:
        num_stages: Number of stages (resolution halves between them).
        kernel_sizes: Candidate kernel sizes.
        depths: Candidate numbers of conv layers per stage.
        widths: Candidate widths of the first stage; stage ``i`` gets ``2**i`` times it,
            the usual "double the channels when halving the resolution" rule.

    Example:
        >>> SearchSpace().size
        2187
    """

    num_stages: int = 3
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    depths: tuple[int, ...] = (1, 2, 3)
    widths: tuple[int, ...] = (16, 32, 64)

    def __post_init__(self) -> None:
        if self.num_stages < 1:
            raise ValueError(f"num_stages must be >= 1; got {self.num_stages}.")
        for name in ("kernel_sizes", "depths", "widths"):
            if not getattr(self, name):
                raise ValueError(f"SearchSpace.{name} needs at least one candidate.")

    @property
    def size(self) -> int:
        """Number of distinct architectures in the space."""
        per_stage = len(self.kernel_sizes) * len(self.depths)
        return int(per_stage**self.num_stages * len(self.widths))

    def sample(self, trial: Any) -> ArchConfig:
        """Draw a configuration with an Optuna ``trial`` (categorical choices)."""
        kernels = tuple(
            int(trial.suggest_categorical(f"kernel_{i}", list(self.kernel_sizes)))
            for i in range(self.num_stages)
        )
        depths = tuple(
            int(trial.suggest_categorical(f"depth_{i}", list(self.depths)))
            for i in range(self.num_stages)
        )
        width = int(trial.suggest_categorical("width", list(self.widths)))
        widths = tuple(width * 2**i for i in range(self.num_stages))
        return ArchConfig(kernel_sizes=kernels, depths=depths, widths=widths)


class StagedCNN(Classifier):
    """Stages of ``k x k`` Conv-BN-ReLU layers, global average pooling, a linear head.

    Args:
        config: Kernel size, depth and width of every stage.
        num_classes: Number of output classes (0: no head).
        in_channels: Image channels.

    Example:
        >>> net = StagedCNN(ArchConfig((3, 5), (1, 2), (8, 16)), num_classes=4)
        >>> net(torch.zeros(2, 3, 28, 28)).shape
        torch.Size([2, 4])
        >>> sum(p.numel() for p in net.parameters())
        9964
    """

    def __init__(self, config: ArchConfig, *, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        self.config = config
        layers: list[nn.Module] = []
        channels = in_channels
        for stage, (k, depth, width) in enumerate(
            zip(config.kernel_sizes, config.depths, config.widths, strict=True)
        ):
            for index in range(depth):
                stride = 2 if stage > 0 and index == 0 else 1
                layers += [
                    nn.Conv2d(channels, width, k, stride=stride, padding=k // 2, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.min_input_size = 2 ** (len(config.depths) - 1)
        self.head = linear_head(channels, num_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, widths[-1], H / 2^(S-1), W / 2^(S-1))``."""
        return self.features(x)  # type: ignore[no-any-return]
