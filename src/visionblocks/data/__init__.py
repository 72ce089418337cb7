"""Datasets in memory, augmentation presets, MixUp/CutMix and a batched on-device loader.

Example:
    >>> from visionblocks.data import DeviceLoader, load_dataset
    >>> train = load_dataset("sample")
    >>> x, y = next(iter(DeviceLoader(train, batch_size=64, augment="standard")))
    >>> tuple(x.shape), tuple(y.shape)
    ((64, 1, 28, 28), (64,))
"""

from visionblocks.data._augment import PRESETS, Cutout, RandomPadCrop, augmentation
from visionblocks.data._batch_augment import (
    BATCHED_PRESETS,
    BatchAugment,
    BatchAugmentFn,
    PerSampleAugment,
    batch_augment,
)
from visionblocks.data._batch_ops import (
    batch_color_jitter,
    batch_cutout,
    batch_flip,
    batch_pad_crop,
    batch_rotate,
)
from visionblocks.data._dataset import ImageDataset, channel_stats, subset
from visionblocks.data._errors import CorruptDatasetError, DatasetNotFoundError
from visionblocks.data._load import DATASETS, FASHION_MNIST_CLASSES, load_dataset
from visionblocks.data._loader import DeviceLoader
from visionblocks.data._mix import CutMix, MixUp

__all__ = [
    # datasets
    "ImageDataset",
    "load_dataset",
    "subset",
    "channel_stats",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "DatasetNotFoundError",
    "CorruptDatasetError",
    # per-sample augmentation
    "augmentation",
    "PRESETS",
    "RandomPadCrop",
    "Cutout",
    # batched loader and augmentation
    "DeviceLoader",
    "BatchAugment",
    "BatchAugmentFn",
    "PerSampleAugment",
    "BATCHED_PRESETS",
    "batch_augment",
    "batch_pad_crop",
    "batch_flip",
    "batch_color_jitter",
    "batch_rotate",
    "batch_cutout",
    # batch-level label mixing
    "MixUp",
    "CutMix",
]
