"""``fast_cnn``: the airbench network for small images, a whitening stem and three conv groups.

The architecture of the CIFAR-10 speed record (Keller Jordan's airbench,
https://github.com/KellerJordan/cifar10-airbench, 94% in 3.3 s on one A100), itself
a descendant of David Page's ResNet-9 (https://myrtle.ai/learn/how-to-train-your-resnet/):

* a 2x2 convolution whose filters start as the whitening transform of the training
  images' 2x2 patches (Page, "How to train your ResNet 8"), so the first layer starts
  out decorrelating the input instead of learning to;
* three groups of conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU: few, wide
  layers, which keep a CPU's or GPU's matrix units busy far better than the 16-64
  channel layers of a CIFAR ResNet-20;
* global max pooling and a bias-free linear head whose logits are scaled down
  (Page's ``Mul(0.125)``), which keeps the early, high-learning-rate steps stable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from visionblocks.models.classifier import Classifier, _check_positive
from visionblocks.models.layers import conv3x3, linear_head
from visionblocks.models.registry import register_model

__all__ = ["ConvGroup", "FastCNN", "fast_cnn", "whitening_filters"]


_ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}; got {name!r}.")
    return _ACTIVATIONS[name]()


class ConvGroup(nn.Sequential):
    """conv3x3 -> max-pool 2 -> BN -> act -> conv3x3 -> BN -> act (airbench's block).

    Pooling right after the first conv halves the cost of everything that follows.
    ``activation`` is ``"gelu"`` (airbench) or ``"relu"``.

    Example:
        >>> ConvGroup(8, 16)(torch.zeros(2, 8, 12, 12)).shape
        torch.Size([2, 16, 6, 6])
        >>> ConvGroup(8, 16, activation="relu")[3]
        ReLU()
    """

    def __init__(self, in_channels: int, out_channels: int, activation: str = "gelu") -> None:
        super().__init__(
            conv3x3(in_channels, out_channels),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(out_channels),
            _activation(activation),
            conv3x3(out_channels, out_channels),
            nn.BatchNorm2d(out_channels),
            _activation(activation),
        )


def whitening_filters(patches: torch.Tensor, *, eps: float = 5e-4) -> torch.Tensor:
    """The ZCA-free whitening filters of flattened image patches, with their negatives.

    Each eigenvector ``v`` of the patch covariance, divided by ``sqrt(eigenvalue + eps)``,
    is a filter whose response has unit variance and is uncorrelated with the others;
    ``-v`` is added too so that a following GELU keeps both signs (airbench).

    Args:
        patches: ``(N, D)`` flattened patches (``D = C * k * k``), already normalized.
        eps: Added to the eigenvalues so near-constant directions are not blown up.

    Returns:
        ``(2 * D, D)`` filters, strongest-variance direction first.

    Example:
        >>> p = torch.randn(10000, 4) * torch.tensor([1.0, 2.0, 3.0, 4.0])
        >>> w = whitening_filters(p, eps=0.0)
        >>> cov = torch.cov((p @ w[:4].T).T)
        >>> torch.allclose(cov, torch.eye(4), atol=0.05)
        True
    """
    if patches.dim() != 2 or len(patches) < 2:
        raise ValueError(f"patches must be (N >= 2, D); got shape {tuple(patches.shape)}.")
    x = patches.double()
    cov = torch.cov(x.T)  # (D, D)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)  # ascending
    order = eigenvalues.argsort(descending=True)
    filters = eigenvectors[:, order].T / (eigenvalues[order].clamp_min(0) + eps).sqrt()[:, None]
    return torch.cat([filters, -filters]).float()


class FastCNN(Classifier):
    """Whitening 2x2 conv, GELU, three :class:`ConvGroup` s, global max pool, scaled linear head.

    Args:
        num_classes: Number of output classes (0: no head).
        in_channels: Image channels.
        widths: Output channels of the three conv groups; each group halves the resolution.
        logit_scale: Multiplies the logits (Page's 0.125; airbench divides by 9).
        activation: ``"gelu"`` (airbench) or ``"relu"`` (cheaper on a CPU).
        identity_init: Start every conv of the groups as a partial identity: its first
            ``in_channels`` filters pass their input channel through unchanged
            (``torch.nn.init.dirac_``, as airbench94 does), the others Kaiming-random; it
            speeds up the first epochs.

    Example:
        >>> net = FastCNN(in_channels=1, widths=(8, 16, 16))
        >>> net(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
        >>> net.whiten.weight.shape  # 2 x (1 channel x 2 x 2) filters
        torch.Size([8, 1, 2, 2])
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        *,
        widths: Sequence[int] = (64, 256, 256),
        logit_scale: float = 0.125,
        activation: str = "gelu",
        identity_init: bool = False,
    ) -> None:
        super().__init__(num_classes=num_classes, in_channels=in_channels)
        if len(widths) == 0:
            raise ValueError("widths must name at least one conv group, e.g. (64, 256, 256).")
        for width in widths:
            _check_positive("widths entry", width)
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0; got {logit_scale}.")
        self.logit_scale = float(logit_scale)
        patch_dim = in_channels * 2 * 2
        self.whiten = nn.Conv2d(in_channels, 2 * patch_dim, kernel_size=2, bias=True)
        self.whiten_act = _activation(activation)
        groups: list[nn.Module] = []
        channels = 2 * patch_dim
        for width in widths:
            groups.append(ConvGroup(channels, width, activation))
            channels = width
        self.groups = nn.Sequential(*groups)
        self.num_features = channels
        # The 2x2 conv loses one pixel, then every group halves the size.
        self.min_input_size = 2 ** len(widths) + 1
        self.head = linear_head(channels, num_classes, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.whiten:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if identity_init:
                    with torch.no_grad():
                        nn.init.dirac_(m.weight[: m.in_channels])

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, *, eps: float = 5e-4) -> None:
        """Set the first layer to whiten the 2x2 patches of ``images`` (Page; airbench).

        Args:
            images: ``(N, C, H, W)`` float images, normalized the way the model will see
                them (a few thousand training images are plenty).
            eps: See :func:`whitening_filters`.

        Example:
            >>> net = FastCNN(in_channels=1, widths=(8, 8, 8))
            >>> net.init_whitening(torch.rand(64, 1, 28, 28))
            >>> float(net.whiten.bias.detach().abs().sum())
            0.0
        """
        if images.dim() != 4 or images.shape[1] != self.in_channels:
            raise ValueError(
                f"init_whitening needs (N, {self.in_channels}, H, W) images; got shape "
                f"{tuple(images.shape)}."
            )
        # (N, C*2*2, L) -> (N*L, C*2*2): every 2x2 patch of every image.
        patches = nn.functional.unfold(images.float().cpu(), kernel_size=2).transpose(1, 2)
        patches = patches.reshape(-1, patches.shape[-1])
        filters = whitening_filters(patches, eps=eps)  # (2D, D)
        weight = self.whiten.weight
        weight.copy_(filters.reshape(weight.shape).to(weight.device, weight.dtype))
        if self.whiten.bias is not None:
            self.whiten.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, H, W)`` images to ``(B, widths[-1], h, w)`` feature maps."""
        return self.groups(self.whiten_act(self.whiten(x)))  # type: ignore[no-any-return]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global max pool, then the scaled linear head (``pre_logits``: pooled features)."""
        x = torch.amax(x, dim=(2, 3))  # (B, F)
        return x if pre_logits else self.head(x) * self.logit_scale


@register_model
def fast_cnn(
    num_classes: int = 10,
    in_channels: int = 3,
    *,
    widths: Sequence[int] = (64, 256, 256),
    logit_scale: float = 0.125,
    activation: str = "gelu",
    identity_init: bool = False,
) -> FastCNN:
    """Build the network of the ``fast`` recipe (airbench's, for any number of channels).

    With the default widths and 3 input channels it has 1,972,792 parameters.

    Example:
        >>> model = fast_cnn(in_channels=1)
        >>> model(torch.zeros(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """
    return FastCNN(
        num_classes, in_channels, widths=widths, logit_scale=logit_scale, activation=activation,
        identity_init=identity_init,
    )  # fmt: skip
