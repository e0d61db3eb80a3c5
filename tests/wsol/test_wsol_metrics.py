"""Localisation metrics against hand-made boxes and maps."""

from __future__ import annotations

import numpy as np
import pytest

from facelab.wsol.metrics import (
    box_acc_at_threshold,
    box_hits,
    box_iou,
    component_boxes,
    format_table,
    loc_accuracy,
    map_to_box,
    max_box_acc_v2,
    normalize_map,
)


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


def _bas_code_accuracy(ious, top5_classes, labels):
    """A port of the BAS CVPR code's CUB scoring: per class, the share of IoU > 0.5 (0 when the top-1 / top-5
    classes miss), then the mean over classes."""
    accs, accs5, locs = [], [], []
    for k in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == k]
        iou_set = [ious[i] if top5_classes[i][0] == k else 0 for i in idx]
        iou_set5 = [ious[i] if k in top5_classes[i][:5] else 0 for i in idx]
        accs.append(np.sum(np.array(iou_set) > 0.5) / len(idx))
        accs5.append(np.sum(np.array(iou_set5) > 0.5) / len(idx))
        locs.append(np.sum(np.array([ious[i] for i in idx]) > 0.5) / len(idx))
    return 100 * np.mean(accs), 100 * np.mean(accs5), 100 * np.mean(locs)


def test_loc_accuracy_per_class_strict_matches_the_bas_code():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 0, 1, 2, 2, 5, 5, 5, 5])  # unbalanced: per-class and per-image means differ
    scores = rng.random((10, 7))
    scores[[0, 3, 6, 7], labels[[0, 3, 6, 7]]] = 2.0  # these are classified right
    ious = np.array([0.5, 0.9, 0.2, 0.7, 0.5, 0.51, 0.8, 0.3, 0.6, 0.95])  # two exactly at 0.5
    top5 = np.argsort(-scores, 1)[:, :5]
    got = loc_accuracy(ious, scores, labels, strict=True, per_class=True)
    t1, t5, gt = _bas_code_accuracy(ious, top5, list(labels))
    assert got["top1_loc"] == pytest.approx(t1) and got["top5_loc"] == pytest.approx(t5)
    assert got["gt_known_loc"] == pytest.approx(gt)
    loose = loc_accuracy(ious, scores, labels)  # IoU >= 0.5, over images (SAT code)
    assert loose["gt_known_loc"] == pytest.approx(100 * 8 / 10)  # 8 of 10 reach 0.5
    assert got["gt_known_loc"] != pytest.approx(loose["gt_known_loc"])


def test_loc_accuracy_hand_values_and_top_k():
    ious = np.array([0.5, 0.4, 1.0])
    scores = np.array([[0.1, 0.9, 0.3], [0.1, 0.9, 0.3], [0.9, 0.1, 0.3]])
    s = loc_accuracy(ious, scores, np.array([1, 2, 2]))
    assert s["gt_known_loc"] == pytest.approx(200 / 3)
    assert s["top1_loc"] == pytest.approx(100 / 3)
    assert s["top5_loc"] == pytest.approx(200 / 3)
    assert s["top1_cls"] == pytest.approx(100 / 3) and s["top5_cls"] == pytest.approx(100.0)
    assert loc_accuracy(ious, scores, np.array([1, 2, 2]), strict=True)["gt_known_loc"] == pytest.approx(100 / 3)


def test_box_acc_at_threshold_is_the_sat_codes_mean():
    ious = np.array([0.29, 0.3, 0.5, 0.69, 0.7, 0.9])
    got = box_acc_at_threshold(ious)
    # the SAT evaluator: 100 if max_iou >= d else 0, averaged over images, then (IoU30 + IoU50 + IoU70) / 3
    ref = [100 * np.mean([100 if v >= d else 0 for v in ious]) / 100 for d in (0.3, 0.5, 0.7)]
    assert [got["box_acc_iou30_at_tau"], got["box_acc_iou50_at_tau"], got["box_acc_iou70_at_tau"]] == \
        pytest.approx(ref)
    assert got["box_acc_mean_at_tau"] == pytest.approx(sum(ref) / 3)
    assert "Choe et al." not in format_table(got) and "SAT code" in format_table(got, "p")


def test_max_box_acc_v2_uses_any_component_and_best_threshold():
    # two blobs: a strong large one that does not match, a weaker small one that does
    m = np.zeros((40, 40))
    m[0:20, 0:20] = 1.0
    m[30:36, 30:36] = 0.4
    gt = np.array([[30, 30, 35, 35]])
    assert box_iou(map_to_box(m, 0.5), gt).max() < 0.5  # tau 0.5: only the large blob's box
    s = max_box_acc_v2(box_hits(m, gt)[None])
    assert s["max_box_acc_iou70"] == 100.0  # at tau < 0.4 the small blob's own box matches exactly
    assert s["max_box_acc_v2"] == 100.0
    assert max_box_acc_v2(box_hits(np.roll(m, 5, 0), gt)[None])["max_box_acc_iou70"] == 0.0
    table = format_table({**s, "images": 1.0}, "a protocol")
    assert "protocol: a protocol" in table and "Choe et al." in table
