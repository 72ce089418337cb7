"""Training: ``fit``, ``evaluate``, callbacks, checkpoints, device and precision."""

from visionblocks.train._callbacks import BestCheckpoint, Callback, EarlyStopping, GradNormMonitor
from visionblocks.train._checkpoint import load_checkpoint, save_checkpoint
from visionblocks.train._device import (
    ExecutionPlan,
    cpu_supports_bf16,
    resolve_device,
    resolve_plan,
)
from visionblocks.train._evaluate import evaluate
from visionblocks.train._history import EvalResult, History
from visionblocks.train._loop import Trainer, TrainingDivergedError, fit
from visionblocks.train._lr_find import LRFinderResult, lr_find

__all__ = [
    "fit",
    "evaluate",
    "lr_find",
    "LRFinderResult",
    "History",
    "EvalResult",
    "Trainer",
    "TrainingDivergedError",
    "Callback",
    "EarlyStopping",
    "BestCheckpoint",
    "GradNormMonitor",
    "save_checkpoint",
    "load_checkpoint",
    "ExecutionPlan",
    "resolve_device",
    "resolve_plan",
    "cpu_supports_bf16",
]
