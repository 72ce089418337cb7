"""Transfer learning: pretrained backbones, freezing, new heads, discriminative learning rates.

Example:
    >>> from visionblocks import resnet20
    >>> from visionblocks.transfer import freeze, param_groups, pretrained
    >>> model = pretrained("resnet20", 5, weights=resnet20().state_dict(), freeze=True)
    >>> [len(group["params"]) for group in param_groups(model, lr=0.01)]
    [1, 1]
"""

from visionblocks.models import first_conv
from visionblocks.transfer._fine_tune import fine_tune
from visionblocks.transfer._freeze import (
    freeze,
    freeze_batchnorm_stats,
    frozen_batchnorms,
    param_groups,
    unfreeze,
)
from visionblocks.transfer._heads import (
    adapt_conv_weight,
    adapt_input_channels,
    get_head,
    replace_head,
)
from visionblocks.transfer._preprocessing import EFFICIENTNET_LITE, IMAGENET, Preprocessing
from visionblocks.transfer._pretrained import pretrained, resolve_torchvision_weights
from visionblocks.transfer._rebuild import build_from_card
from visionblocks.transfer._timm import TIMM_PREFIX, cached_timm_weights
from visionblocks.transfer._weights import LoadReport, load_weights, read_checkpoint

__all__ = [
    "pretrained",
    "fine_tune",
    "Preprocessing",
    "IMAGENET",
    "EFFICIENTNET_LITE",
    "TIMM_PREFIX",
    "cached_timm_weights",
    "build_from_card",
    "load_weights",
    "LoadReport",
    "read_checkpoint",
    "resolve_torchvision_weights",
    "freeze",
    "unfreeze",
    "freeze_batchnorm_stats",
    "frozen_batchnorms",
    "param_groups",
    "get_head",
    "replace_head",
    "first_conv",
    "adapt_conv_weight",
    "adapt_input_channels",
]
