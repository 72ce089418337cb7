"""visionblocks: reusable, typed CNN components for PyTorch.

Build a model from blocks, load and augment data, train it fast on whatever
device is there, transfer a pretrained backbone, look inside it, shrink it.

Example:
    >>> from visionblocks import resnet_cifar
    >>> resnet_cifar(20).num_classes
    10
"""

from visionblocks import analysis, data, models, nas, train, transfer
from visionblocks.analysis import (
    activations,
    grad_cam,
    plot_confusion_matrix,
    plot_feature_maps,
    plot_filters,
    plot_grad_cam,
    plot_history,
    plot_misclassified,
    receptive_field,
    summary,
)
from visionblocks.data import (
    CutMix,
    DeviceLoader,
    ImageDataset,
    MixUp,
    augmentation,
    load_dataset,
    subset,
)
from visionblocks.models import (
    VGG,
    BasicBlock,
    Bottleneck,
    Classifier,
    DenseNet,
    MobileNetV2,
    PadShortcut,
    ResNet,
    SimpleCNN,
    create_model,
    densenet_cifar,
    list_models,
    mobilenetv2_cifar,
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
    vgg11_cifar,
    vgg13_cifar,
    vgg16_cifar,
    vgg_cifar,
)
from visionblocks.quantize import Int8Classifier, UnsupportedLayerError, quantize_int8
from visionblocks.train import (
    BestCheckpoint,
    Callback,
    EarlyStopping,
    EvalResult,
    GradNormMonitor,
    History,
    evaluate,
    fit,
    load_checkpoint,
    lr_find,
    save_checkpoint,
)
from visionblocks.transfer import (
    adapt_input_channels,
    fine_tune,
    freeze,
    freeze_batchnorm_stats,
    get_head,
    load_weights,
    param_groups,
    pretrained,
    replace_head,
    unfreeze,
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
    "VGG",
    "vgg_cifar",
    "vgg11_cifar",
    "vgg13_cifar",
    "vgg16_cifar",
    "DenseNet",
    "densenet_cifar",
    "MobileNetV2",
    "mobilenetv2_cifar",
    "create_model",
    "list_models",
    "register_model",
    # data
    "ImageDataset",
    "load_dataset",
    "subset",
    "augmentation",
    "DeviceLoader",
    "MixUp",
    "CutMix",
    # training
    "fit",
    "evaluate",
    "lr_find",
    "History",
    "EvalResult",
    "Callback",
    "EarlyStopping",
    "BestCheckpoint",
    "GradNormMonitor",
    "save_checkpoint",
    "load_checkpoint",
    # analysis
    "summary",
    "receptive_field",
    "activations",
    "grad_cam",
    "plot_filters",
    "plot_feature_maps",
    "plot_grad_cam",
    "plot_history",
    "plot_confusion_matrix",
    "plot_misclassified",
    # transfer learning
    "pretrained",
    "fine_tune",
    "freeze",
    "unfreeze",
    "replace_head",
    "param_groups",
    "freeze_batchnorm_stats",
    "load_weights",
    "adapt_input_channels",
    "get_head",
    # quantization
    "quantize_int8",
    "Int8Classifier",
    "UnsupportedLayerError",
    # subpackages
    "analysis",
    "nas",
    "data",
    "models",
    "train",
    "transfer",
]
