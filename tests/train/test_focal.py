"""Focal loss: torch's cross-entropy at gamma 0, the paper's formula above it, and in fit."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks.train import FocalLoss, fit
from visionblocks.train._loss import balanced_class_weight, make_criterion

K = 5


def batch(soft: bool, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(16, K)`` (some confident) and class or probability targets."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, K, generator=g) * 3
    labels = torch.randint(K, (16,), generator=g)
    if not soft:
        return logits, labels
    lam = torch.rand(16, 1, generator=g)  # MixUp's targets: two one-hots mixed
    other = nn.functional.one_hot(labels.roll(1), K)
    return logits, lam * nn.functional.one_hot(labels, K) + (1 - lam) * other


@pytest.mark.parametrize("soft", [False, True], ids=["classes", "probabilities"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_gamma_zero_is_torchs_cross_entropy(soft: bool, weighted: bool, smoothing: float) -> None:
    logits, targets = batch(soft)
    weight = torch.tensor([0.5, 1.0, 2.0, 0.0, 3.0]) if weighted else None
    reference = nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)
    ours = FocalLoss(0.0, weight=weight, label_smoothing=smoothing)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    expected, got = reference(a, targets), ours(b, targets)
    expected.backward()
    got.backward()
    # Catches a different reduction (a plain mean where torch divides by the weights of
    # the batch), smoothing applied differently, or weights applied to the wrong classes.
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_gamma_follows_the_papers_formula(gamma: float) -> None:
    logits, labels = batch(soft=False, seed=1)
    p_t = logits.softmax(1).gather(1, labels[:, None]).squeeze(1)
    terms = -((1 - p_t) ** gamma) * p_t.log()  # Lin et al. 2017, eq. 4 (alpha = 1)
    # Catches (1 - p)^gamma applied to every class's term, or p in place of 1 - p.
    torch.testing.assert_close(FocalLoss(gamma)(logits, labels), terms.mean())
    weight = torch.tensor([1.0, 2.0, 0.5, 4.0, 1.0])
    w_t = weight[labels]
    torch.testing.assert_close(
        FocalLoss(gamma, weight=weight)(logits, labels), (w_t * terms).sum() / w_t.sum()
    )


def test_a_certain_prediction_has_a_finite_gradient() -> None:
    # p rounds to exactly 1: d/dp (1 - p)^0.5 is infinite there, times a zero gradient of p.
    logits = torch.tensor([[200.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    loss = FocalLoss(0.5)(logits, torch.tensor([0, 1]))
    loss.backward()
    assert logits.grad is not None
    # Catches a NaN gradient that would end training (TrainingDivergedError) at once.
    assert bool(torch.isfinite(logits.grad).all())
    assert torch.isfinite(loss)


def test_fit_builds_focal_loss_with_its_class_weights_and_smoothing() -> None:
    labels = torch.tensor([0] * 8 + [1] * 2 + [2] * 2)
    common = {"labels": labels, "num_classes": 3, "device": torch.device("cpu")}
    named = make_criterion("focal", label_smoothing=0.1, class_weight="balanced", **common)
    assert isinstance(named, FocalLoss)
    # Catches loss="focal" dropping fit's class_weight or label_smoothing.
    assert (named.gamma, named.label_smoothing) == (2.0, 0.1)
    assert named.weight is not None
    torch.testing.assert_close(named.weight, balanced_class_weight(labels, 3))
    mine = FocalLoss(1.0, label_smoothing=0.0)
    given = copy.deepcopy(mine)
    used = make_criterion(mine, label_smoothing=0.1, class_weight="balanced", **common)
    # An instance keeps its gamma and smoothing, gains fit's weights, and is not changed.
    assert isinstance(used, FocalLoss)
    assert used is not mine
    assert (used.gamma, used.label_smoothing, used.weight is not None) == (1.0, 0.0, True)
    assert mine.weight is None
    assert repr(mine) == repr(given)


def test_bad_focal_arguments_are_refused_before_training() -> None:
    check = vb.train.check_fit_arguments
    with pytest.raises(ValueError, match=r"loss must be None .* one of 'focal'.*got 'focall'"):
        check(loss="focall")
    with pytest.raises(ValueError, match="class_weight was given twice"):
        check(loss=FocalLoss(weight=torch.ones(3)), class_weight="balanced")
    with pytest.raises(ValueError, match="gamma must be a number >= 0"):
        FocalLoss(gamma=float("nan"))
    with pytest.raises(ValueError, match="class_weight must be >= 0"):
        FocalLoss(weight=torch.tensor([1.0, -1.0]))
    check(loss="focal", class_weight="balanced")  # the documented combination passes


def test_fit_trains_with_focal_loss_and_mixup(tmp_path: object) -> None:
    train = vb.data.subset(vb.load_dataset("sample"), 0.1, seed=0)
    model = vb.simple_cnn(in_channels=1, image_size=28, widths=(4, 8, 8), hidden=16)
    before = copy.deepcopy(model.state_dict())
    history = fit(
        model, train, epochs=1, batch_size=50, loss="focal", class_weight="balanced",
        mixup=0.2, progress=False, seed=0,
    )  # fmt: skip
    # Catches soft (MixUp) targets or class weights failing inside the focal loss in fit.
    assert torch.isfinite(torch.tensor(history.last["train_loss"]))
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items())
