"""Model builders, blocks and the model registry."""

from visionblocks.models._classifier import Classifier
from visionblocks.models.blocks import BasicBlock, Bottleneck, PadShortcut
from visionblocks.models.registry import create_model, list_models, register_model
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
)
from visionblocks.models.simple_cnn import SimpleCNN, simple_cnn, simple_cnn_bn

__all__ = [
    "Classifier",
    "BasicBlock",
    "Bottleneck",
    "PadShortcut",
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
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet50_cifar",
    "create_model",
    "list_models",
    "register_model",
]

# More architectures: VGG, DenseNet, MobileNetV2 (issue 7).
from visionblocks.models.densenet import DenseLayer, DenseNet, Transition, densenet_cifar
from visionblocks.models.mobilenet import InvertedResidual, MobileNetV2, mobilenetv2_cifar
from visionblocks.models.vgg import (
    VGG,
    vgg11_cifar,
    vgg13_cifar,
    vgg16_cifar,
    vgg_cifar,
)

__all__ += [
    "VGG",
    "vgg_cifar",
    "vgg11_cifar",
    "vgg13_cifar",
    "vgg16_cifar",
    "DenseLayer",
    "DenseNet",
    "Transition",
    "densenet_cifar",
    "InvertedResidual",
    "MobileNetV2",
    "mobilenetv2_cifar",
]
