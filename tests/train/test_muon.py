"""Muon: the Newton-Schulz orthogonalization, its steps, and fit(optimizer="muon")."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import visionblocks as vb
from visionblocks.train import Muon, fit, orthogonalize


def conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 3), nn.BatchNorm2d(6), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(6, 3),
    )  # fmt: skip


@pytest.mark.parametrize("shape", [(12, 40), (40, 12)])
def test_orthogonalize_keeps_the_singular_vectors_and_evens_out_the_values(
    shape: tuple[int, int],
) -> None:
    # Catches a transposed result (the tall case iterates on the transpose), a missing
    # rescaling (the iteration diverges) and a wrong polynomial (values not near 1).
    torch.manual_seed(0)
    k = min(shape)
    u = torch.linalg.qr(torch.randn(shape[0], k, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(shape[1], k, dtype=torch.float64)).Q
    s = torch.logspace(0, 2, k, dtype=torch.float64)  # singular values from 1 to 100
    x = orthogonalize(u @ torch.diag(s) @ v.T, steps=8)
    core = u.T @ x @ v  # diagonal if x = U S' V^T
    diagonal = torch.diagonal(core)
    assert torch.allclose(core, torch.diag(diagonal), atol=1e-6)
    # The input's singular values span 100x; the result's lie within 0.6-1.3.
    assert float(diagonal.min()) > 0.6
    assert float(diagonal.max()) < 1.3


def test_orthogonalize_refuses_a_tensor_that_is_not_a_matrix() -> None:
    with pytest.raises(ValueError, match=r"2-D matrix; got shape \(2, 3, 4\)"):
        orthogonalize(torch.zeros(2, 3, 4))


def test_the_steps_of_non_filter_parameters_are_torchs_nesterov_sgd() -> None:
    # The reference implementation is torch.optim.SGD itself: biases, BN scales and the
    # linear head must move exactly as Nesterov SGD with L2 moves them.
    torch.manual_seed(0)
    ours, reference = conv_net(), conv_net()
    reference.load_state_dict(ours.state_dict())
    plain = [p for p in ours.parameters() if p.dim() != 4]
    plain_ref = [p for p in reference.parameters() if p.dim() != 4]
    opt = Muon(plain, lr=0.05, momentum=0.85, weight_decay=1e-3)
    opt_ref = torch.optim.SGD(plain_ref, lr=0.05, momentum=0.85, nesterov=True, weight_decay=1e-3)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
    for _ in range(4):
        for net, o in ((ours, opt), (reference, opt_ref)):
            o.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            o.step()
    for (name, p), p_ref in zip(ours.named_parameters(), reference.parameters(), strict=True):
        if p.dim() != 4:
            assert torch.allclose(p, p_ref, atol=1e-6), name


def test_a_filter_step_is_the_orthogonalized_nesterov_momentum_after_rescaling() -> None:
    torch.manual_seed(0)
    net = conv_net()
    conv = net[0]
    opt = Muon([conv.weight], lr=0.1, momentum=0.6)
    x = torch.randn(16, 1, 8, 8)
    grads = []
    for _ in range(2):
        opt.zero_grad()
        net(x).square().sum().backward()
        grads.append(conv.weight.grad.clone())
        before = conv.weight.detach().clone()
        opt.step()
    # Two steps by hand: m1 = g1, m2 = 0.6 m1 + g2; the update is g2 + 0.6 m2.
    momentum = 0.6 * grads[0] + grads[1]
    update = orthogonalize((grads[1] + 0.6 * momentum).reshape(6, -1)).view_as(before)
    expected = before * (6**0.5 / before.norm()) - 0.1 * update
    assert torch.allclose(conv.weight, expected, atol=1e-6)


def test_normalize_false_leaves_the_filters_scale_to_the_steps() -> None:
    torch.manual_seed(0)
    net = conv_net()
    conv = net[0]
    with torch.no_grad():
        conv.weight.mul_(10.0)
    opt = Muon([conv.weight], lr=1e-4, normalize=False)
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    norm = float(conv.weight.detach().norm())
    opt.step()
    assert abs(float(conv.weight.detach().norm()) - norm) < 0.01 * norm  # not pulled to sqrt(6)
    assert norm > 3 * 6**0.5


def test_groups_choose_what_is_orthogonalized() -> None:
    net = conv_net()
    head = net[5]
    opt = Muon([{"params": [head.weight], "orthogonalize": True}], lr=0.1)
    net(torch.randn(4, 1, 8, 8)).sum().backward()
    grad = head.weight.grad.clone()
    before = head.weight.detach().clone()
    opt.step()
    # Orthogonalized (and rescaled), not the SGD step before - 0.1 * (grad + 0.6 grad).
    scaled = before * (3**0.5 / before.norm())
    assert torch.allclose(head.weight, scaled - 0.1 * orthogonalize(1.6 * grad), atol=1e-6)
    with pytest.raises(ValueError, match=r"orthogonalize=True needs tensors of 2 or more .*\(3,\)"):
        Muon([{"params": [head.bias], "orthogonalize": True}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": -1.0}, "lr must be >= 0; got -1.0"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\); got 1.0"),
        ({"weight_decay": -0.1}, "weight_decay must be >= 0; got -0.1"),
        ({"ns_steps": 0}, "ns_steps must be an int >= 1; got 0"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Muon(conv_net().parameters(), **kwargs)  # type: ignore[arg-type]


def test_fit_with_muon_learns_the_sample_data(sample: vb.data.ImageDataset) -> None:
    train, val = sample, vb.load_dataset("sample", split="test")
    model = vb.fast_cnn(in_channels=1, widths=(16, 32, 32))
    history = fit(
        model, train, val, epochs=2, batch_size=64, optimizer="muon", seed=0, progress=False,
        device="cpu",
    )  # fmt: skip
    # Measured 68.2% and 66.2% (seeds 0, 1), where fit's SGD defaults reach 31.4% and 26.4%
    # in this short run; chance is 10%, where a sign error would leave it.
    assert history.last["val_acc"] > 0.5
    assert history.last["val_loss"] < history["train_loss"][0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_muon_steps_on_a_gpu_equal_those_on_the_cpu() -> None:
    # Fails if a step mixes devices (a state tensor left on the CPU) or if the GPU's matrix
    # products (TF32, say) change the Newton-Schulz result by more than rounding.
    torch.manual_seed(0)
    nets = {"cpu": conv_net(), "cuda": conv_net()}
    nets["cuda"].load_state_dict(nets["cpu"].state_dict())
    nets["cuda"].cuda()
    x = torch.randn(16, 1, 8, 8)
    for device, net in nets.items():
        opt = Muon(net.parameters(), lr=0.1, momentum=0.6, weight_decay=1e-3)
        for _ in range(3):
            opt.zero_grad()
            net(x.to(device)).square().sum().backward()
            opt.step()
    for (name, a), b in zip(nets["cpu"].named_parameters(), nets["cuda"].parameters(), strict=True):
        assert b.device.type == "cuda"
        assert torch.allclose(a, b.cpu(), atol=1e-4), name
