"""BAS and SAT losses against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from facelab.wsol.losses import (
    LossWeights,
    area_loss,
    bas_background_loss,
    bas_losses,
    sat_batch_area_loss,
    sat_losses,
    sat_norm_loss,
)


def test_bas_background_ratio_and_constant():
    s_bg = torch.tensor([1.0, 3.0])
    s = torch.tensor([2.0, 2.0])
    # rho = 1/2 for the first image; the second has S_bg >= S, so it is the constant
    assert float(bas_background_loss(s_bg, s, const=0.0)) == pytest.approx(0.25)
    assert float(bas_background_loss(s_bg, s, const=1.0)) == pytest.approx(0.75)


def test_bas_background_gradient_reaches_only_the_background_score():
    s_bg = torch.tensor([1.0, 0.5], requires_grad=True)
    s = torch.tensor([2.0, 4.0], requires_grad=True)
    bas_background_loss(s_bg, s).backward()
    assert torch.allclose(s_bg.grad, torch.tensor([0.5 / 2.0, 0.5 / 4.0]))
    assert s.grad is None or float(s.grad.abs().sum()) == 0.0  # the denominator is detached


def test_area_and_sat_batch_area():
    m = torch.zeros(2, 1, 2, 5)
    m[0, 0, 0, :2] = 1.0  # image 0: 2/10 = 0.2
    m[1, 0, :, :2] = 1.0  # image 1: 4/10 = 0.4
    assert float(area_loss(m)) == pytest.approx(0.3)
    assert float(sat_batch_area_loss(m, 0.25)) == pytest.approx(0.05)
    assert float(sat_batch_area_loss(m, 0.25, keep=torch.tensor([False, True]))) == pytest.approx(0.15)
    assert float(sat_batch_area_loss(m, 0.25, keep=torch.tensor([False, False]))) == 0.0


def _manual_norm(m: np.ndarray) -> float:
    k = np.array([[0.0026, 0.046, 0.0026], [0.046, 0.805, 0.046], [0.0026, 0.046, 0.0026]])
    h, w = m.shape
    pad = np.pad(m, 1)
    sm = np.array([[(pad[i:i + 3, j:j + 3] * k).sum() for j in range(w)] for i in range(h)])
    return float((sm * (1 - sm)).mean())


def test_sat_norm_loss_single_pixel_and_random():
    one = torch.ones(1, 1, 1, 1)
    assert float(sat_norm_loss(one)) == pytest.approx(0.805 * 0.195, abs=1e-6)
    rng = np.random.default_rng(0)
    m = rng.random((5, 6))
    got = float(sat_norm_loss(torch.tensor(m, dtype=torch.float64)[None, None]))
    assert got == pytest.approx(_manual_norm(m), abs=1e-7)


def _ce(logits: np.ndarray, y: np.ndarray) -> float:
    lse = np.log(np.exp(logits).sum(1))
    return float((lse - logits[np.arange(len(y)), y]).mean())


def test_bas_total_matches_hand_sum():
    logits = torch.tensor([[2.0, 1.0], [0.5, 1.5]])
    s_bg = torch.tensor([[0.5, 0.2], [0.1, 2.0]])
    s_fg = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    m_fg = torch.full((2, 1, 2, 2), 0.25)
    y = torch.tensor([0, 1])
    w = LossWeights(alpha=0.5, beta=1.5)
    t = bas_losses(logits, s_bg, s_fg, m_fg, y, w)
    cls = _ce(logits.numpy(), y.numpy())
    fg = _ce(s_fg.numpy(), y.numpy())
    bas = (0.5 / 2.0 + 0.0) / 2  # second image: S_bg 2.0 >= S 1.5 -> constant 0
    assert float(t["cls"]) == pytest.approx(cls, abs=1e-6)
    assert float(t["bas"]) == pytest.approx(bas)
    assert float(t["total"]) == pytest.approx(cls + 0.5 * fg + bas + 1.5 * 0.25, abs=1e-6)


def test_negative_class_terms():
    m = torch.zeros(2, 1, 2, 2)
    m[0] = 0.5  # negative image with a non-empty map
    m[1] = 0.25
    y = torch.tensor([0, 1])
    logits = torch.zeros(2, 2)
    w = LossWeights(alpha=0.5, beta=1.0, area_r=0.25, negative_class=0, neg_weight=2.0)
    t = sat_losses(logits, m, y, w)
    assert float(t["area"]) == pytest.approx(0.0)  # positives only: mean 0.25 == r
    assert float(t["neg"]) == pytest.approx(1.0)  # 2.0 * 0.5
    assert float(t["cls"]) == pytest.approx(math.log(2))
    maps = torch.stack([torch.full((2, 2), 0.9), torch.full((2, 2), 0.3)], 0)[None].repeat(2, 1, 1, 1)
    tb = bas_losses(logits, logits, logits, maps[:, :1], y, w, maps)
    assert float(tb["neg"]) == pytest.approx(2.0 * 0.3)  # class-1 map of the clean image
