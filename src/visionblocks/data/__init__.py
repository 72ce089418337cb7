"""Datasets in memory, augmentation presets, MixUp/CutMix and a batched on-device loader.

Example:
    >>> from visionblocks.data import DeviceLoader, load_dataset
    >>> train = load_dataset("sample")
    >>> x, y = next(iter(DeviceLoader(train, batch_size=64, augment="standard")))
    >>> tuple(x.shape), tuple(y.shape)
    ((64, 1, 28, 28), (64,))
"""

from visionblocks._deprecation import deprecated_names
from visionblocks.data._augment import AUGMENT_PRESETS, Cutout, RandomPadCrop, augmentation
from visionblocks.data._augment_photo import batch_resized_crop
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
from visionblocks.data._batching import BatchLoader
from visionblocks.data._data_report import DataReport, DuplicateGroup, ImageRef, SplitReport
from visionblocks.data._dataset import (
    ImageDataset,
    Task,
    channel_stats,
    check_multi_hot,
    label_task,
    multi_hot,
    subset,
)
from visionblocks.data._errors import CorruptDatasetError, DatasetNotFoundError
from visionblocks.data._folder import IMAGE_SUFFIXES, decode_image_file
from visionblocks.data._inspect import inspect_data
from visionblocks.data._load import DATASETS, FASHION_MNIST_CLASSES, load_dataset
from visionblocks.data._loader import DeviceLoader
from visionblocks.data._loader_options import LoaderOptions
from visionblocks.data._mix import CutMix, MixUp
from visionblocks.data._resize import RESIZE_RULES, resize_image
from visionblocks.data._sampler import SAMPLERS, BalancedSampler, dataset_labels, epoch_seed
from visionblocks.data._stream import STATS_SAMPLE, StreamingDataset, stream_threshold
from visionblocks.data._stream_loader import StreamLoader, default_num_workers
from visionblocks.data.contract import (
    DataInfo,
    DataLike,
    InMemoryData,
    Stats,
    check_stats,
    describe_data,
    is_in_memory,
    labels_of,
    normalization_stats,
    normalize,
    stats_of,
    tensors_of,
)

__all__ = [
    # the data contract
    "DataLike",
    "InMemoryData",
    "Stats",
    "DataInfo",
    "is_in_memory",
    "tensors_of",
    "check_stats",
    "labels_of",
    "stats_of",
    "normalization_stats",
    "describe_data",
    "normalize",
    # datasets
    "ImageDataset",
    "load_dataset",
    "subset",
    "channel_stats",
    # multi-label targets
    "Task",
    "multi_hot",
    "check_multi_hot",
    "label_task",
    "DATASETS",
    "FASHION_MNIST_CLASSES",
    "DatasetNotFoundError",
    "CorruptDatasetError",
    # a look at the data before training
    "inspect_data",
    "DataReport",
    "SplitReport",
    "DuplicateGroup",
    "ImageRef",
    # image folders streamed from disk
    "StreamingDataset",
    "StreamLoader",
    "IMAGE_SUFFIXES",
    "decode_image_file",
    "default_num_workers",
    "stream_threshold",
    "STATS_SAMPLE",
    # resizing, one rule for training, evaluation and prediction
    "RESIZE_RULES",
    "resize_image",
    # per-sample augmentation
    "augmentation",
    "AUGMENT_PRESETS",
    "RandomPadCrop",
    "Cutout",
    # batched loader and augmentation
    "LoaderOptions",
    "BatchLoader",
    "DeviceLoader",
    "epoch_seed",
    # which images an epoch visits: class-balanced sampling
    "SAMPLERS",
    "BalancedSampler",
    "dataset_labels",
    "BatchAugment",
    "BatchAugmentFn",
    "PerSampleAugment",
    "BATCHED_PRESETS",
    "batch_augment",
    "batch_pad_crop",
    "batch_resized_crop",
    "batch_flip",
    "batch_color_jitter",
    "batch_rotate",
    "batch_cutout",
    # batch-level label mixing
    "MixUp",
    "CutMix",
]

__getattr__ = deprecated_names(__name__)
