"""evaluate(): precision/recall/F1 against scikit-learn, top-5 against a hand count."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support  # dev dependency only
from torch import nn

import visionblocks as vb
from visionblocks.train import EvalResult, evaluate


class FixedLogits(nn.Module):
    """Returns pre-drawn logits for the i-th image, whose first pixel holds i / n."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.table: torch.Tensor
        self.register_buffer("table", logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.table[(x.flatten(1)[:, 0] * len(self.table)).round().long()]


def _data(n: int, k: int, seed: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) + 2.0 * nn.functional.one_hot(labels, k)
    images = torch.zeros(n, 1, 2, 2)
    images[:, 0, 0, 0] = torch.arange(n, dtype=torch.float32) / n
    return (images, labels), logits


@pytest.mark.parametrize(("k", "seed"), [(3, 0), (7, 1), (10, 2)])
def test_metrics_match_scikit_learn(k: int, seed: int) -> None:
    data, logits = _data(300, k, seed)
    labels = data[1]
    # stats (0, 1): the images reach the model unchanged, so it can read their index.
    result = evaluate(FixedLogits(logits), data, precision="fp32", stats=((0.0,), (1.0,)))
    pred = logits.argmax(1)
    p, r, f, s = precision_recall_fscore_support(
        labels.numpy(), pred.numpy(), labels=list(range(k)), zero_division=0
    )
    assert result.precision == pytest.approx(p.tolist())
    assert result.recall == pytest.approx(r.tolist())
    assert result.f1 == pytest.approx(f.tolist())
    assert result.support == s.tolist()
    assert result.macro_f1 == pytest.approx(float(f.mean()))
    if k >= 5:
        top5 = (logits.topk(5, dim=1).indices == labels[:, None]).any(1).float().mean()
        assert result.top5_accuracy == pytest.approx(float(top5))
        # Catches top-5 computed as top-1: with these logits they differ.
        assert result.top5_accuracy > result.accuracy
    else:
        assert result.top5_accuracy is None


def test_class_never_predicted_has_zero_precision_not_nan() -> None:
    confusion = torch.tensor([[5, 0, 0], [2, 0, 0], [0, 0, 3]])
    r = EvalResult(0.8, 0.1, confusion, torch.zeros(10), torch.zeros(10))
    assert r.precision == [5 / 7, 0.0, 1.0]
    assert r.f1[1] == 0.0


def test_eval_result_prints_a_row_per_class() -> None:
    test = vb.load_dataset("sample", split="test")
    result = evaluate(vb.simple_cnn(in_channels=1, image_size=28), test, precision="fp32")
    text = str(result)
    assert "macro F1" in text
    assert "top-5" in text
    for name in test.classes:
        assert f"  {name}" in text
