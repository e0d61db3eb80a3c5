"""AdaBelief and RMSprop against hand-computed updates; lr dropout rate and cosine cycle; state round trip."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from facelab.train.optim import AdaBelief, RMSprop, make_optimizer
from facelab.train.options import TrainOptions


def _param(values) -> torch.nn.Parameter:
    return torch.nn.Parameter(torch.tensor(values, dtype=torch.float32))


def test_adabelief_two_steps_hand_computed():
    w0 = np.array([1.0, -2.0, 0.5])
    p = _param(w0)
    opt = AdaBelief([p], lr=0.1)
    grads = [np.array([0.5, -1.0, 0.0]), np.array([0.2, 0.3, -0.4])]
    m, s, w = np.zeros(3), np.zeros(3), w0.copy()
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
        m = 0.9 * m + 0.1 * g
        s = 0.999 * s + 0.001 * (g - m) ** 2
        w = w - 0.1 * m / (np.sqrt(s) + 1e-6)  # no bias correction
        np.testing.assert_allclose(p.detach().numpy(), w, rtol=1e-5, atol=1e-6)
    # first step by hand: m = 0.05, s = 0.001 * 0.45^2, update = 0.1 * 0.05 / (0.01423 + 1e-6)
    first = 0.1 * 0.05 / (math.sqrt(0.001 * 0.45 ** 2) + 1e-6)
    assert first == pytest.approx(0.35136, rel=1e-4)


def test_rmsprop_one_step_hand_computed():
    p = _param([1.0, 2.0])
    opt = RMSprop([p], lr=0.01)
    p.grad = torch.tensor([0.3, -0.6])
    opt.step()
    a = 0.1 * np.array([0.09, 0.36])
    want = np.array([1.0, 2.0]) - 0.01 * np.array([0.3, -0.6]) / (np.sqrt(a) + 1e-6)
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-6)


def test_lr_dropout_keeps_about_thirty_percent():
    p = torch.nn.Parameter(torch.zeros(200_000))
    opt = AdaBelief([p], lr=1e-2, lr_dropout=0.3, generator=torch.Generator().manual_seed(0))
    p.grad = torch.ones_like(p)
    opt.step()
    rate = (p.detach() != 0).float().mean().item()
    assert rate == pytest.approx(0.3, abs=0.005)


def test_lr_cosine_cycle():
    p = torch.nn.Parameter(torch.zeros(4))
    opt = RMSprop([p], lr=1.0, lr_cos=500)
    p.grad = torch.ones(4)
    opt.step()  # step 1: lr * (cos(2 pi / 500) + 1) / 2; update = g / (sqrt(0.1) + eps)
    factor = (math.cos(2 * math.pi / 500) + 1) / 2
    assert p[0].item() == pytest.approx(-factor / (math.sqrt(0.1) + 1e-6), rel=1e-5)
    opt.state[p]["step"].fill_(249)
    before = p.detach().clone()
    opt.step()  # step 250: cos(pi) -> lr 0
    assert torch.allclose(p.detach(), before, atol=1e-9)


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    grads = [torch.randn(5) for _ in range(4)]
    p1 = torch.nn.Parameter(torch.ones(5))
    o1 = AdaBelief([p1], lr=0.05)
    for g in grads[:2]:
        p1.grad = g.clone()
        o1.step()
    p2 = torch.nn.Parameter(p1.detach().clone())
    o2 = AdaBelief([p2], lr=0.05)
    o2.load_state_dict(copy.deepcopy(o1.state_dict()))  # as read back from a checkpoint file
    for g in grads[2:]:
        for p, o in ((p1, o1), (p2, o2)):
            p.grad = g.clone()
            o.step()
    assert torch.equal(p1, p2)


def test_make_optimizer_follows_options_and_load_keeps_this_runs_schedule():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = make_optimizer([p], TrainOptions(lr_dropout="y", lr=1e-4))
    assert isinstance(opt, AdaBelief)
    assert opt.param_groups[0]["lr_dropout"] == 0.3 and opt.param_groups[0]["lr_cos"] == 500
    plain = make_optimizer([p], TrainOptions(optimizer="rmsprop", lr=2e-5))
    assert isinstance(plain, RMSprop) and plain.param_groups[0]["lr_dropout"] == 1.0
    fresh = make_optimizer([p], TrainOptions(lr=3e-5))
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["lr"] == 3e-5 and fresh.param_groups[0]["lr_dropout"] == 1.0
    with pytest.raises(ValueError):
        AdaBelief([p], lr_dropout=0.0)


@pytest.mark.parametrize("foreach", [False, True])
def test_lr_dropout_cpu_draws_the_same_masks_on_the_cpu(foreach):
    updated = []
    for mode in ("y", "cpu"):
        p = torch.nn.Parameter(torch.ones(3000))
        opt = make_optimizer([p], TrainOptions(lr_dropout=mode, lr=0.1))
        opt.foreach = foreach
        assert opt.mask_device == (torch.device("cpu") if mode == "cpu" else None)
        torch.manual_seed(0)
        p.grad = torch.ones_like(p)
        opt.step()
        updated.append(p.detach().clone())
    assert torch.equal(updated[0], updated[1])
    assert 0.25 < (updated[0] != 1.0).float().mean().item() < 0.35
