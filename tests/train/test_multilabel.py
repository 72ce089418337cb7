"""Multi-label classification: metrics against scikit-learn, the loss, fit, evaluate, the card.

The model of the metric tests is a lookup table, as in ``test_metrics.py``: image ``i``
carries its index in pixel (0, 0) and the model returns row ``i`` of a logits table, so
the logits are known exactly and scikit-learn computes every metric from them.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lookup_model import Lookup
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    multilabel_confusion_matrix,
    precision_score,
    recall_score,
)
from torch import nn
from torch.utils.data import TensorDataset

import visionblocks as vb
from visionblocks.data import multi_hot
from visionblocks.model_file import ModelCard, attach_card, card_of
from visionblocks.train import BestCheckpoint, evaluate, fit
from visionblocks.train._loss import make_criterion
from visionblocks.train._multilabel import (
    average_precision,
    exact_match,
    label_counts,
    mean_average_precision,
)

SIZE, K = 300, 6


def case(seed: int, *, absent: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-hot targets (label ``absent`` on no image) and logits that favour them, with ties."""
    generator = torch.Generator().manual_seed(seed)
    rates = torch.linspace(0.05, 0.6, K)  # label 0 rare, label K - 1 common
    targets = (torch.rand(SIZE, K, generator=generator) < rates).long()
    if absent is not None:
        targets[:, absent] = 0
    logits = torch.randn(SIZE, K, generator=generator) + 1.5 * targets
    return (logits * 4).round() / 4, targets  # rounded: tied scores, as real models have


def lookup_data(targets: torch.Tensor) -> TensorDataset:
    images = torch.zeros(len(targets), 1, 2, 2)
    images[:, 0, 0, 0] = torch.arange(len(targets), dtype=torch.float32) / SIZE
    return TensorDataset(images, targets.float())


def sklearn_metrics(
    logits: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor
) -> dict[str, Any]:
    y = targets.numpy()
    scores = logits.double().sigmoid().numpy()
    pred = (logits.sigmoid() >= thresholds).long().numpy()
    present = [k for k in range(K) if y[:, k].any()]
    ap = average_precision_score(y[:, present], scores[:, present], average=None)
    return {
        "acc": accuracy_score(y, pred),
        "map": float(np.mean(ap)),
        "ap": {k: float(v) for k, v in zip(present, ap, strict=True)},
        "f1": f1_score(y, pred, average=None, zero_division=0).tolist(),
        "macro_f1": f1_score(y, pred, average="macro", zero_division=0),
        "precision": precision_score(y, pred, average=None, zero_division=0).tolist(),
        "recall": recall_score(y, pred, average=None, zero_division=0).tolist(),
        "confusion": multilabel_confusion_matrix(y, pred).tolist(),
        # Summed over the labels, averaged over the images.
        "loss": K * float(nn.functional.binary_cross_entropy_with_logits(logits, targets.float())),
    }


COMMON: dict[str, Any] = {
    "epochs": 1, "batch_size": 64, "device": "cpu", "precision": "fp32", "progress": False,
    "seed": 0,
}  # fmt: skip


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_matches_scikit_learn_with_ties(seed: int) -> None:
    logits, targets = case(seed)
    reference = average_precision_score(targets.numpy(), logits.numpy(), average=None)
    # Catches ties counted one image at a time (sklearn groups them), a recall step taken
    # at the wrong rank, precision divided by the wrong count.
    assert average_precision(logits, targets) == pytest.approx(reference.tolist(), abs=1e-12)
    assert mean_average_precision(logits, targets) == pytest.approx(
        average_precision_score(targets.numpy(), logits.numpy(), average="macro"), abs=1e-12
    )
    # The ranking is what counts: probabilities give the same AP as the logits.
    assert average_precision(logits.sigmoid(), targets) == pytest.approx(reference.tolist())


def test_a_label_without_positives_has_no_ap_and_map_averages_the_others() -> None:
    logits, targets = case(3, absent=2)
    ap = average_precision(logits, targets)
    assert math.isnan(ap[2])
    present = [k for k in range(K) if k != 2]
    reference = average_precision_score(targets[:, present].numpy(), logits[:, present].numpy())
    # Catches the absent label counted as 0 (scikit-learn's choice, which lowers mAP for a
    # label the split happens to miss) or NaN poisoning the mean.
    assert mean_average_precision(logits, targets) == pytest.approx(reference, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_f1_and_exact_match_match_scikit_learn(seed: int) -> None:
    logits, targets = case(seed, absent=1)
    predictions = (logits >= 0.25).long()
    counts = label_counts(predictions, targets)
    y, pred = targets.numpy(), predictions.numpy()
    assert counts.tolist() == multilabel_confusion_matrix(y, pred).tolist()
    f1 = vb.train._metrics.per_class_f1(counts)
    assert f1 == pytest.approx(f1_score(y, pred, average=None, zero_division=0).tolist())
    assert vb.train._metrics.macro_f1(counts) == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=0)
    )
    assert exact_match(predictions, targets) == accuracy_score(y, pred)


# --------------------------------------------------------------------------- fit and evaluate


def test_fit_and_evaluate_match_scikit_learn_at_the_card_s_thresholds() -> None:
    logits, targets = case(4, absent=3)
    data = lookup_data(targets)
    model = Lookup(logits)
    thresholds = (0.3, 0.5, 0.5, 0.6, 0.7, 0.5)
    attach_card(model, ModelCard(task="multilabel", thresholds=thresholds))
    chosen = ["macro_f1", "per_label_ap", "per_label_f1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no sklearn-style warning for label 3
        history = fit(model, data, data, metrics=chosen, task="multilabel", **COMMON)
    # fit re-made the card for the data (no class names): its thresholds are kept.
    assert card_of(model).thresholds == thresholds
    result = evaluate(model, data, precision="fp32", device="cpu", metrics=chosen)
    reference = sklearn_metrics(logits, targets, torch.tensor(thresholds))
    recorded = {k[4:]: v for k, v in history.last.items() if k.startswith("val_")}
    # Catches thresholds ignored (0.5 everywhere), AP over the wrong images, F1 of another
    # layout of the counts, BCE averaged over images only.
    assert recorded["acc"] == pytest.approx(reference["acc"], abs=1e-12)
    assert recorded["map"] == pytest.approx(reference["map"], abs=1e-12)
    assert recorded["macro_f1"] == pytest.approx(reference["macro_f1"], abs=1e-12)
    assert recorded["loss"] == pytest.approx(reference["loss"], rel=1e-6)
    assert [recorded[f"f1_{k}"] for k in range(K)] == pytest.approx(reference["f1"])
    for k in range(K):
        if k in reference["ap"]:
            assert recorded[f"ap_{k}"] == pytest.approx(reference["ap"][k], abs=1e-12)
        else:
            assert math.isnan(recorded[f"ap_{k}"])
    # evaluate computes the same numbers as fit's validation.
    assert result.task == "multilabel"
    assert result.accuracy == recorded["acc"]
    assert result.mean_average_precision == pytest.approx(recorded["map"], abs=1e-15)
    assert result.metrics["macro_f1"] == recorded["macro_f1"] == result.macro_f1
    assert result.loss == pytest.approx(recorded["loss"], rel=1e-6)
    assert result.confusion.tolist() == reference["confusion"]
    assert result.precision == pytest.approx(reference["precision"])
    assert result.recall == pytest.approx(reference["recall"])
    assert result.support == targets.sum(0).tolist()
    assert result.predictions.shape == result.targets.shape == (SIZE, K)
    assert result.top5_accuracy is None
    assert "mAP" in str(result)
    assert str(result).count("\n") == K + 1


def test_fit_infers_multilabel_from_multi_hot_targets_and_trains_with_bce() -> None:
    _, targets = case(5)
    model = Lookup(torch.zeros(SIZE, K))
    history = fit(model, lookup_data(targets), **{**COMMON, "batch_size": 100})  # every image
    card = card_of(model)
    assert card is not None
    # Catches the task left "multiclass", thresholds not written for predict and export.
    assert card.task == "multilabel"
    assert card.thresholds == (0.5,) * K
    # All-zero logits: BCE is log 2 per label whatever the targets, K log 2 per image
    # (cross-entropy of K zero logits would be log K); label smoothing does not change it.
    # Catches the mean over labels too, which trains K times slower.
    assert history.last["train_loss"] == pytest.approx(K * math.log(2), rel=1e-6)
    # train_acc is exact match at 0.5: zero logits predict every label (sigmoid 0.5).
    assert history.last["train_acc"] == pytest.approx(
        float((targets == 1).all(dim=1).double().mean())
    )


def test_lr_find_measures_the_multi_label_loss() -> None:
    _, targets = case(9)
    result = vb.train.lr_find(Lookup(torch.zeros(SIZE, K)), lookup_data(targets), num_steps=3,
                              batch_size=100, device="cpu", precision="fp32")  # fmt: skip
    # Zero logits: K log 2 per image; a softmax cross-entropy on the multi-hot rows would
    # give (labels per image) x log K instead.
    assert result.losses[0] == pytest.approx(K * math.log(2), rel=1e-6)


def test_mixup_and_cutmix_train_on_multi_hot_targets(sample: vb.data.ImageDataset) -> None:
    tags = (sample.labels[:, None] == torch.tensor([[5, 7, 9]])).any(1, keepdim=True)
    data = vb.data.ImageDataset(sample.images[:256], torch.cat([tags, ~tags], 1)[:256],
                                ["footwear", "other"])  # fmt: skip
    model = vb.simple_cnn(num_classes=2, in_channels=1, image_size=28, widths=(4, 8, 8),
                          hidden=8)  # fmt: skip
    history = fit(model, data, data, mixup=0.4, cutmix=1.0, **COMMON)
    assert math.isfinite(history.last["train_loss"])
    assert set(history.last) >= {"val_map", "val_acc"}


def test_criterion_reference_values() -> None:
    logits = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    targets = (torch.rand(8, 3, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    targets[0] = 1.0  # every label has a positive
    weight = torch.tensor([0.5, 2.0, 1.0])
    made = make_criterion(
        None, label_smoothing=0.1, class_weight=weight, labels=None, num_classes=3,
        device=torch.device("cpu"), task="multilabel",
    )  # fmt: skip
    reference = 3 * nn.BCEWithLogitsLoss(pos_weight=weight)(logits, targets * 0.9 + 0.05)
    # Catches smoothing towards 1/K (softmax's rule) instead of 1/2, weights applied to the
    # negatives or as per-sample weights, the mean over the 3 labels instead of their sum.
    assert made(logits, targets).item() == pytest.approx(reference.item(), rel=1e-6)
    balanced = make_criterion(
        None, label_smoothing=0.0, class_weight="balanced", labels=targets, num_classes=3,
        device=torch.device("cpu"), task="multilabel",
    )  # fmt: skip
    positives = targets.sum(0)
    expected = 3 * nn.BCEWithLogitsLoss(pos_weight=(8 - positives) / positives)(logits, targets)
    assert balanced(logits, targets).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss": "focal"}, "softmax focal loss of one class per image"),
        ({"sampler": "balanced"}, "draws by class, one per image"),
        ({"metrics": ["top5_accuracy"]}, "'top5_accuracy', a multi-class metric"),
        ({"task": "multiclass"}, "task='multiclass' needs training labels that are class"),
        ({"task": "multi-label"}, "task must be None"),
    ],
)
def test_what_multi_label_targets_cannot_do_fails_before_training(
    kwargs: dict[str, Any], message: str
) -> None:
    _, targets = case(6)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, K))
    before = [p.clone() for p in model.parameters()]
    images = torch.rand(SIZE, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=message):
        fit(model, (images, targets), **{**COMMON, **kwargs})
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


class _WithTargets(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A user's Dataset that says its multi-hot labels in ``.targets``, like torchvision's."""

    def __init__(self, pairs: TensorDataset) -> None:
        self.images, self.targets = pairs.tensors

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.targets[i]


def test_a_datasets_multi_hot_targets_give_balanced_class_weights() -> None:
    # Fails if .targets of shape (N, K) are refused as "not one class index per item" (they
    # were), or read differently from a TensorDataset's labels.
    _, targets = case(9)
    images = torch.rand(SIZE, 1, 2, 2, generator=torch.Generator().manual_seed(1))
    pairs = TensorDataset(images, targets.float())

    def trained(data: Any, **kwargs: Any) -> torch.Tensor:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(4, K))
        fit(model, data, **{**COMMON, **kwargs})
        return model[1].weight.detach().clone()

    weighted = trained(_WithTargets(pairs), class_weight="balanced")
    assert torch.equal(weighted, trained(pairs, class_weight="balanced"))
    assert not torch.equal(weighted, trained(_WithTargets(pairs)))  # the weights did act
    with pytest.raises(ValueError, match=r"multi-label.*use class_weight='balanced'"):
        fit(Lookup(torch.zeros(SIZE, K)), _WithTargets(pairs), sampler="balanced", **COMMON)


def test_task_multilabel_refuses_class_indices(small: vb.data.ImageDataset) -> None:
    model = vb.simple_cnn(in_channels=1, image_size=28)
    with pytest.raises(ValueError, match="needs \\(N, K\\) multi-hot training labels"):
        fit(model, small, task="multilabel", **COMMON)


def test_class_weight_balanced_needs_a_positive_of_every_label() -> None:
    _, targets = case(7, absent=4)
    with pytest.raises(ValueError, match="labels \\[4\\] have none"):
        fit(Lookup(torch.zeros(SIZE, K)), lookup_data(targets), class_weight="balanced", **COMMON)


def test_best_checkpoint_monitors_map_in_a_multi_label_run(tmp_path: Path) -> None:
    logits, targets = case(8)
    data = lookup_data(targets)
    best = BestCheckpoint(tmp_path / "best.pt")
    history = fit(Lookup(logits), data, data, callbacks=[best], **COMMON)
    # Catches the multi-class default (val_acc, exact match here) kept for multi-label runs.
    assert best.monitor == "val_map"
    assert best.best == history.last["val_map"]
    multiclass = BestCheckpoint(tmp_path / "mc.pt")
    labels = TensorDataset(data.tensors[0], targets.argmax(1))
    fit(Lookup(logits), labels, labels, callbacks=[multiclass], **COMMON)
    assert multiclass.monitor == "val_acc"


def test_evaluate_refuses_class_indices_for_a_multi_label_model() -> None:
    model = attach_card(Lookup(torch.zeros(SIZE, K)), ModelCard(task="multilabel"))
    images = lookup_data(torch.zeros(SIZE, K)).tensors[0]
    with pytest.raises(ValueError, match="the model is multi-label"):
        evaluate(model, (images, torch.zeros(SIZE, dtype=torch.long)), device="cpu")


# --------------------------------------------------------------------------- the card


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "multilabel", "thresholds": (0.5, 1.0)}, "probabilities in \\(0, 1\\)"),
        ({"task": "multilabel", "thresholds": (0.5,)}, "2 probabilities"),
        ({"thresholds": (0.5, 0.5)}, "None for a multi-class card"),
        ({"task": "multi-label"}, "task must be one of"),
    ],
)
def test_the_card_checks_task_and_thresholds(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelCard(classes=("a", "b"), **fields)


def test_the_card_keeps_thresholds_through_a_file(tmp_path: Path) -> None:
    card = ModelCard(classes=("a", "b"), task="multilabel", thresholds=(0.25, 0.75))
    assert ModelCard.from_dict(card.to_dict()) == card
    assert ModelCard(classes=("a", "b"), task="multilabel").label_thresholds == (0.5, 0.5)
    model = vb.simple_cnn(num_classes=2, in_channels=1, image_size=28)
    attach_card(model, card_of(model).replace(classes=("a", "b"), task="multilabel",
                                              thresholds=(0.25, 0.75)))  # fmt: skip
    for name in ("m.pt", "m.safetensors"):
        loaded = vb.load_model(vb.save_checkpoint(tmp_path / name, model))
        assert card_of(loaded).task == "multilabel", name
        assert card_of(loaded).thresholds == (0.25, 0.75), name


# --------------------------------------------------------------------------- predict


def test_multi_hot_labels_helper() -> None:
    assert multi_hot([[1], [0, 2, 2], []], 3).tolist() == [[0, 1, 0], [1, 0, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="label index 3"):
        multi_hot([[3]], 3)


def _tagger(images: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """A 3-label model whose thresholds (each label's median probability on ``images``)
    predict other labels than 0.5 would; its probabilities on ``images``."""
    torch.manual_seed(0)
    model = vb.simple_cnn(num_classes=3, in_channels=1, image_size=28, widths=(4, 8, 8),
                          hidden=8).eval()  # fmt: skip
    with torch.no_grad():
        probabilities = model(images).sigmoid()  # no stats on the card: inputs as they are
    thresholds = tuple(float(t) for t in probabilities.median(dim=0).values)
    attach_card(model, card_of(model).replace(
        classes=("cat", "dog", "sofa"), task="multilabel", thresholds=thresholds,
        image_shape=(1, 28, 28),
    ))  # fmt: skip
    at_half = probabilities >= 0.5
    assert not torch.equal(probabilities >= torch.tensor(thresholds), at_half)
    return model, probabilities


def _expected(row: torch.Tensor, thresholds: tuple[float, ...]) -> list[str]:
    names = ("cat", "dog", "sofa")
    above = [k for k in range(3) if row[k] >= thresholds[k]]
    return [names[k] for k in sorted(above, key=lambda k: -float(row[k]))]


def test_predict_lists_every_label_at_or_above_its_threshold(tmp_path: Path) -> None:
    images = torch.rand(9, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    model, probabilities = _tagger(images)
    thresholds = card_of(model).thresholds
    assert thresholds is not None
    found = vb.predict(model, images, top_k=2)
    for p, row in zip(found, probabilities, strict=True):
        # Catches a softmax (rows summing to 1), thresholds ignored (0.5), labels unsorted.
        assert p.task == "multilabel"
        assert p.probabilities == pytest.approx(row.tolist(), abs=1e-6)
        assert list(p.labels) == _expected(row, thresholds)
        names = ("cat", "dog", "sofa")
        assert p.label_probabilities == pytest.approx(
            [float(row[names.index(n)]) for n in p.labels], abs=1e-6
        )
        assert p.label == ("cat", "dog", "sofa")[int(row.argmax())]
        assert str(p).startswith(f"{p.source}: ")
    # The same predictions from the file, through save_checkpoint and load_model.
    path = vb.save_checkpoint(tmp_path / "tags.pt", model)
    again = vb.predict(path, images, device="cpu")
    assert [p.labels for p in again] == [p.labels for p in found]


def test_an_onnx_export_carries_task_and_thresholds(tmp_path: Path) -> None:
    import json

    import onnxruntime

    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    model, probabilities = _tagger(images)
    result = vb.export(model, tmp_path / "tags.onnx")
    assert result.card_path is not None
    card = json.loads(result.card_path.read_text())
    assert card["task"] == "multilabel"
    assert card["thresholds"] == pytest.approx(list(card_of(model).thresholds or ()))
    session = onnxruntime.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    # A program with only the file and its card gets predict's probabilities and labels.
    exported = torch.from_numpy(logits).sigmoid()
    assert torch.allclose(exported, probabilities, atol=1e-5)
    chosen = exported >= torch.tensor(card["thresholds"])
    predicted = [set(p.labels) for p in vb.predict(model, images)]
    names = card["labels"]
    assert [{names[k] for k in range(3) if row[k]} for row in chosen] == predicted
