"""Look inside a network: summary, receptive fields, activations, filters, Grad-CAM, plots.

The plotting functions need the optional matplotlib (``pip install visionblocks[viz]``);
importing this package does not.
"""

from visionblocks._deprecation import deprecated_names
from visionblocks.analysis.activations import activations, capture_activations, resolve_layer
from visionblocks.analysis.filters import filter_smoothness
from visionblocks.analysis.grad_cam import default_target_layer, grad_cam
from visionblocks.analysis.plot_model import plot_feature_maps, plot_filters, plot_grad_cam
from visionblocks.analysis.plot_training import (
    HistoryLike,
    plot_confusion_matrix,
    plot_history,
    plot_lr_find,
    plot_misclassified,
)
from visionblocks.analysis.receptive_field import (
    LayerReceptiveField,
    ReceptiveFieldReport,
    receptive_field,
)
from visionblocks.analysis.summary import LayerSummary, ModelSummary, summary

__all__ = [
    # summary
    "LayerSummary",
    "ModelSummary",
    "summary",
    # receptive fields
    "LayerReceptiveField",
    "ReceptiveFieldReport",
    "receptive_field",
    # activations and filters
    "activations",
    "capture_activations",
    "resolve_layer",
    "filter_smoothness",
    # Grad-CAM
    "default_target_layer",
    "grad_cam",
    # plots
    "plot_filters",
    "plot_feature_maps",
    "plot_grad_cam",
    "plot_history",
    "plot_lr_find",
    "plot_confusion_matrix",
    "plot_misclassified",
    "HistoryLike",
]

__getattr__ = deprecated_names(__name__)
