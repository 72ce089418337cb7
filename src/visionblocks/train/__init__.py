"""Training: ``fit``, ``evaluate``, callbacks, checkpoints, seeds, device and precision.

Example:
    >>> import visionblocks as vb
    >>> history = vb.fit(vb.simple_cnn(in_channels=1, image_size=28), vb.load_dataset("sample"),
    ...                  epochs=1, progress=False, seed=0)
    >>> history.last["epoch"]
    1
"""

from visionblocks._deprecation import deprecated_names
from visionblocks.model_file import (
    STATS_ATTR,
    CheckpointError,
    read_torch_file,
    strip_wrapper_prefixes,
    unwrap_model,
)
from visionblocks.train._averaging import WeightAveraging
from visionblocks.train._callbacks import BestCheckpoint, Callback, EarlyStopping, GradNormMonitor
from visionblocks.train._checkpoint import load_checkpoint, save_checkpoint
from visionblocks.train._checks import check_fit_arguments
from visionblocks.train._defaults import FIT_DEFAULTS, FitDefaults
from visionblocks.train._device import (
    ExecutionPlan,
    cpu_supports_bf16,
    resolve_device,
    resolve_plan,
)
from visionblocks.train._ema import EMA
from visionblocks.train._evaluate import evaluate
from visionblocks.train._fit import LAST_CHECKPOINT, fit
from visionblocks.train._history import EvalResult, History
from visionblocks.train._loggers import CSVLogger, TensorBoardLogger
from visionblocks.train._loss import FocalLoss
from visionblocks.train._lr_find import LRFinderResult, lr_find
from visionblocks.train._metrics import BUILTIN_METRICS, check_metrics
from visionblocks.train._muon import Muon, orthogonalize
from visionblocks.train._optim import OPTIMIZERS
from visionblocks.train._seeding import Stream, seed_everything
from visionblocks.train._state import RunState, TrainingDivergedError

__all__ = [
    "fit",
    "evaluate",
    "lr_find",
    "seed_everything",
    "LRFinderResult",
    "History",
    "EvalResult",
    "RunState",
    "TrainingDivergedError",
    "FIT_DEFAULTS",
    "FitDefaults",
    "check_fit_arguments",
    "BUILTIN_METRICS",
    "check_metrics",
    "Stream",
    "Callback",
    "EarlyStopping",
    "BestCheckpoint",
    "GradNormMonitor",
    "WeightAveraging",
    "EMA",
    "Muon",
    "orthogonalize",
    "OPTIMIZERS",
    "FocalLoss",
    "CSVLogger",
    "TensorBoardLogger",
    "save_checkpoint",
    "load_checkpoint",
    "read_torch_file",
    "CheckpointError",
    "unwrap_model",
    "strip_wrapper_prefixes",
    "LAST_CHECKPOINT",
    "STATS_ATTR",
    "ExecutionPlan",
    "resolve_device",
    "resolve_plan",
    "cpu_supports_bf16",
]

__getattr__ = deprecated_names(__name__)
