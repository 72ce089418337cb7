"""Use a trained model: rebuild it from its ``model.pt`` and classify image files with it.

A model file written by ``visionblocks train`` (or by :func:`~visionblocks.train.save_checkpoint`
with the same entries) holds the weights and everything needed to use them: the
registry name and builder arguments, the class names, the normalization statistics
and the ``(C, H, W)`` shape of the training images. :func:`load_model` turns it back
into a model with a :class:`ModelCard` attached; :func:`predict` then reads images the
way training saw them: converted to the trained number of channels, resized to the
trained size, and normalized with :func:`visionblocks.data.normalize` and the stored
statistics, the function every training path feeds the network through.

Example:
    >>> import tempfile, torch, visionblocks as vb
    >>> path = vb.save_checkpoint(
    ...     f"{tempfile.mkdtemp()}/model.pt", vb.resnet20(num_classes=2, in_channels=1),
    ...     model_name="resnet20", model_kwargs={"num_classes": 2, "in_channels": 1},
    ...     extra={"classes": ["cat", "dog"], "stats": [[0.5], [0.25]], "image_shape": [1, 28, 28]},
    ... )
    >>> model = load_model(path)
    >>> model.visionblocks_card.classes
    ('cat', 'dog')
    >>> [p.label in ("cat", "dog") for p in predict(model, torch.zeros(3, 1, 40, 40))]
    [True, True, True]
"""

from visionblocks.inference._images import IMAGE_SUFFIXES, ImageInput
from visionblocks.inference._model_file import load_model, model_card
from visionblocks.inference._predict import Prediction, predict
from visionblocks.model_file import CARD_ATTR, ModelCard

__all__ = [
    "CARD_ATTR",
    "IMAGE_SUFFIXES",
    "ImageInput",
    "ModelCard",
    "Prediction",
    "load_model",
    "model_card",
    "predict",
]
