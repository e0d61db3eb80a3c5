"""Localisation metrics against hand-made boxes and maps."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.wsol.metrics import LocMeter, box_iou, component_boxes, format_table, map_to_box, normalize_map


def test_box_iou_exactly_half_inclusive_convention():
    a = np.array([0, 0, 9, 9])  # 10x10 = 100 px
    b = np.array([0, 0, 9, 4])  # 10x5 = 50 px, inside a
    assert box_iou(a, b)[0, 0] == pytest.approx(0.5)
    c = np.array([5, 0, 14, 9])  # overlaps a by 5x10 = 50; union 150
    assert box_iou(a, c)[0, 0] == pytest.approx(1 / 3)
    assert box_iou(a, np.array([20, 20, 30, 30]))[0, 0] == 0.0


def test_map_to_box_largest_component_and_empty_map():
    m = np.zeros((20, 30))
    m[2:5, 3:6] = 1.0  # 9 px
    m[10:16, 12:20] = 0.8  # 48 px, the largest
    assert map_to_box(m, 0.5).tolist() == [12, 10, 19, 15]
    assert map_to_box(np.zeros((20, 30)), 0.5).tolist() == [0, 0, 29, 19]
    boxes, sizes = component_boxes(normalize_map(m) > 0.5)
    assert sizes.tolist() == [48, 9]
    diag = np.zeros((5, 5))
    diag[0, 0] = diag[1, 1] = 1  # 8-connectivity joins diagonal neighbours
    assert len(component_boxes(diag > 0.5)[0]) == 1


def test_gt_known_threshold_at_half_and_top_k():
    m = np.zeros((20, 20))
    m[0:10, 0:10] = 1.0  # box 0,0,9,9
    meter = LocMeter(tau=0.5, thresholds=(0.5,))
    meter.add(m, np.array([[0, 0, 9, 4]]), np.array([0.1, 0.9, 0.3]), label=1)  # IoU 0.5 exactly, top-1 right
    meter.add(m, np.array([[0, 0, 9, 3]]), np.array([0.1, 0.9, 0.3]), label=2)  # IoU 0.4, class only top-2
    meter.add(m, np.array([[0, 0, 9, 9]]), np.array([0.9, 0.1, 0.3]), label=2)  # IoU 1, class top-2
    s = meter.summary()
    assert s["gt_known_loc"] == pytest.approx(200 / 3)
    assert s["top1_loc"] == pytest.approx(100 / 3)
    assert s["top5_loc"] == pytest.approx(200 / 3)
    assert s["top1_cls"] == pytest.approx(100 / 3)
    assert "GT-known Loc" in format_table(s)


def test_max_box_acc_v2_uses_any_component_and_best_threshold():
    # two blobs: a strong large one that does not match, a weaker small one that does
    m = np.zeros((40, 40))
    m[0:20, 0:20] = 1.0
    m[30:36, 30:36] = 0.4
    gt = np.array([[30, 30, 35, 35]])
    meter = LocMeter(tau=0.5)
    meter.add(m, gt, np.array([1.0]), 0)
    s = meter.summary()
    assert s["gt_known_loc"] == 0.0  # tau 0.5: only the large blob survives
    assert s["box_acc_iou70"] == 100.0  # at tau < 0.4 the small blob's own box matches exactly
    assert s["max_box_acc_v2"] == 100.0
    shifted = LocMeter(tau=0.5)
    shifted.add(np.roll(m, 5, 0), gt, np.array([1.0]), 0)
    assert shifted.summary()["box_acc_iou70"] == 0.0
