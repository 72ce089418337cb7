"""visionblocks: reusable, typed CNN components for PyTorch.

Build a model from blocks, load and augment data, train it fast on whatever
device is there, transfer a pretrained backbone, look inside it, shrink it.

Example:
    >>> from visionblocks import resnet_cifar
    >>> resnet_cifar(20).num_classes
    10
"""

from visionblocks.models import (
    BasicBlock,
    Bottleneck,
    Classifier,
    PadShortcut,
    ResNet,
    SimpleCNN,
    create_model,
    list_models,
    register_model,
    resnet18_cifar,
    resnet20,
    resnet32,
    resnet34_cifar,
    resnet44,
    resnet50_cifar,
    resnet56,
    resnet110,
    resnet_cifar,
    simple_cnn,
    simple_cnn_bn,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    # models
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
