"""Model builders, blocks, shared layers and the model registry.

Every family has a registered generic builder taking ``(num_classes=10, in_channels=3,
*, ...)`` (:func:`resnet_cifar`, :func:`vgg_cifar`, :func:`densenet_cifar`,
:func:`mobilenetv2_cifar`, :func:`simple_cnn`, :func:`fast_cnn`) and fixed-depth aliases
(``resnet20``, ``vgg11_cifar``, ...). Per-stage arguments share one vocabulary:
``widths`` for the output channels of each stage, ``depths`` for the number of blocks
(or layers) in each stage.
"""

from visionblocks.models.blocks import BasicBlock, Bottleneck, PadShortcut
from visionblocks.models.classifier import Classifier
from visionblocks.models.densenet import DenseLayer, DenseNet, Transition, densenet_cifar
from visionblocks.models.fast_cnn import ConvGroup, FastCNN, fast_cnn, whitening_filters
from visionblocks.models.layers import (
    NormLayer,
    conv1x1,
    conv3x3,
    first_conv,
    init_weights,
    linear_head,
)
from visionblocks.models.mobilenet import InvertedResidual, MobileNetV2, mobilenetv2_cifar
from visionblocks.models.registry import (
    create_model,
    get_model_builder,
    list_models,
    register_model,
)
from visionblocks.models.resnet import (
    ResNet,
    resnet18_cifar,
    resnet20,
    resnet32,
    resnet34_cifar,
    resnet44,
    resnet50_cifar,
    resnet56,
    resnet110,
    resnet_cifar,
    resnet_imagenet_cifar,
)
from visionblocks.models.simple_cnn import SimpleCNN, simple_cnn, simple_cnn_bn
from visionblocks.models.vgg import VGG, vgg11_cifar, vgg13_cifar, vgg16_cifar, vgg_cifar

__all__ = [
    # The classifier contract and the registry
    "Classifier",
    "create_model",
    "get_model_builder",
    "list_models",
    "register_model",
    # Shared layers
    "NormLayer",
    "conv1x1",
    "conv3x3",
    "first_conv",
    "init_weights",
    "linear_head",
    # Blocks
    "BasicBlock",
    "Bottleneck",
    "PadShortcut",
    "DenseLayer",
    "Transition",
    "InvertedResidual",
    "ConvGroup",
    # Families: the network class, the generic builder, the fixed-depth aliases
    "SimpleCNN",
    "simple_cnn",
    "simple_cnn_bn",
    "ResNet",
    "resnet_cifar",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet_imagenet_cifar",
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet50_cifar",
    "VGG",
    "vgg_cifar",
    "vgg11_cifar",
    "vgg13_cifar",
    "vgg16_cifar",
    "DenseNet",
    "densenet_cifar",
    "MobileNetV2",
    "mobilenetv2_cifar",
    "FastCNN",
    "fast_cnn",
    "whitening_filters",
]
