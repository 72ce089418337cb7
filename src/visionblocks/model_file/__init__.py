"""Model files: the model card, and the one home of reading and writing weights.

What a trained model carries is one :class:`ModelCard` (builder and arguments, class
names, input shape, normalization, resize rule, task, source, how it was trained).
Registered builders attach one to each model they build and ``fit`` completes it; model
files store it next to the weights. This package sits below ``models``, ``train``,
``transfer`` and ``inference``: each of them reads and writes files through it, with one
``torch.load`` (``weights_only=True``), one atomic write and one diff of the keys. A
path ending in ``.safetensors`` holds the same model file in safetensors (the card as
JSON in its metadata), read with no unpickling; any safetensors state dict reads as
weights.

Example:
    >>> import tempfile, visionblocks as vb
    >>> model = vb.resnet20(num_classes=2)
    >>> path = vb.save_checkpoint(f"{tempfile.mkdtemp()}/m.pt", model)
    >>> read_model_file(path).card.builder_kwargs
    {'num_classes': 2, 'in_channels': 3}
"""

from visionblocks.model_file._card import (
    CARD_ATTR,
    DEFAULT_THRESHOLD,
    RESIZE_RULES,
    STATS_ATTR,
    TASKS,
    ModelCard,
    Stats,
    attach_card,
    card_of,
    is_plain,
    model_stats,
)
from visionblocks.model_file._keys import (
    LoadReport,
    load_state_checked,
    strip_wrapper_prefixes,
    unwrap_model,
)
from visionblocks.model_file._read import (
    FORMAT,
    VERSION,
    CheckpointError,
    ModelFile,
    card_in,
    read_model_file,
    read_torch_file,
    read_weights,
    state_dict_of,
)
from visionblocks.model_file._write import atomic_save, atomic_write_text, write_model_file

__all__ = [
    "ModelCard",
    "Stats",
    "CARD_ATTR",
    "RESIZE_RULES",
    "TASKS",
    "DEFAULT_THRESHOLD",
    "attach_card",
    "card_of",
    "is_plain",
    "model_stats",
    "STATS_ATTR",
    "ModelFile",
    "card_in",
    "read_model_file",
    "write_model_file",
    "read_torch_file",
    "read_weights",
    "state_dict_of",
    "atomic_save",
    "atomic_write_text",
    "CheckpointError",
    "FORMAT",
    "VERSION",
    "LoadReport",
    "load_state_checked",
    "strip_wrapper_prefixes",
    "unwrap_model",
]
