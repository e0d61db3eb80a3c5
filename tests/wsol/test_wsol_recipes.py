"""The paper recipe and protocol against the official code's values (small ports of its functions inline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facelab.wsol.data import ten_crops
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.protocol import EvalProtocol, Predictions, resolve_protocol, score
from facelab.wsol.recipes import parse_thresholds, recipe_for
from facelab.wsol.trainer import (
    WsolTrainConfig,
    accumulate_step,
    make_optimizer,
    resolve_train,
    set_epoch_lr,
)
from facelab.wsol.vit import drop_path, drop_path_rates

# wpy1999/BAS CUB/train.py (alpha: loss_2 * 0.0 for vgg, 0.5 otherwise) and Model/*.py bas_loss (beta)
BAS_CODE = {"vgg16": (0.0, 0.7), "resnet50": (0.5, 1.2), "inceptionv3": (0.5, 1.0), "mobilenetv1": (0.5, 1.5)}


@pytest.mark.parametrize("backbone", list(BAS_CODE))
def test_bas_loss_weights_and_inference_per_backbone(backbone):
    cfg = resolve_train(WsolTrainConfig(), WsolArch("bas", backbone))
    assert (cfg.weights.alpha, cfg.weights.beta) == BAS_CODE[backbone]
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.decay_all) == ("sgd", 1e-3, 5e-4, True)
    assert (cfg.epochs, cfg.lr_step, cfg.batch_size, cfg.drop_path) == (100, 80, 32, 0.0)
    # BAS_inference.py: top_k 200 (all classes), 80 for vgg; threshold 0.15, 0.1 for inception
    p, text = resolve_protocol(EvalProtocol(), "bas", backbone, "paper")
    assert p.topk == (80 if backbone == "vgg16" else 0)
    assert parse_thresholds(p.thresholds) == ((0.1,) if backbone == "inceptionv3" else (0.15,))
    assert p.tencrop and p.iou_strict and p.per_class and "IoU > 0.5" in text


def test_flags_and_files_override_the_recipe_and_facelab_keeps_its_own():
    cfg = resolve_train(WsolTrainConfig(lr=0.01, weights=LossWeights(beta=2.0)), WsolArch("bas", "vgg16"))
    assert cfg.lr == 0.01 and cfg.weights.beta == 2.0 and cfg.weights.alpha == 0.0
    own = resolve_train(WsolTrainConfig("facelab"), WsolArch("bas", "vgg16"))
    assert (own.optimizer, own.lr, own.weights.alpha, own.lr_step) == ("adamw", 1e-3, 0.5, 0)
    p, text = resolve_protocol(EvalProtocol(), "bas", "vgg16", "facelab")
    assert parse_thresholds(p.thresholds) == () and "not a paper's protocol" in text
    p, text = resolve_protocol(EvalProtocol(thresholds="0.4"), "bas", "vgg16", "paper")
    assert "changed: thresholds=0.4" in text


def _bas_code_optimizer_settings(model, lr=1e-3, wd=5e-4):
    """A port of BAS CUB/utils/optimizer.py get_optimizer: 'classifier' parts (our generator and head) weights 10x,
    biases 20x; other weights 1x, biases 2x; weight decay on every group."""
    out = {}
    for name, p in model.named_parameters():
        classifier = name.startswith(("generator.", "late.head."))
        is_bias = name.endswith("bias")
        out[id(p)] = (lr * ((20 if is_bias else 10) if classifier else (2 if is_bias else 1)), wd)
    return out


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50"])
def test_bas_optimizer_matches_the_code(backbone):
    arch = WsolArch("bas", backbone, 5, width=0.125)
    model = create_wsol_model(arch)
    opt = make_optimizer(model, resolve_train(WsolTrainConfig(), arch))
    assert isinstance(opt, torch.optim.SGD)
    ref = _bas_code_optimizer_settings(model)
    for group in opt.param_groups:
        assert group["momentum"] == 0.9 and group["nesterov"]
        for p in group["params"]:
            assert (group["lr"], group["weight_decay"]) == pytest.approx(ref[id(p)])


def test_bas_rate_drops_at_epoch_80_like_the_code():
    model = create_wsol_model(WsolArch("bas", "tiny", 2, width=0.25))
    cfg = resolve_train(WsolTrainConfig(), WsolArch("bas", "tiny"))
    opt = make_optimizer(model, cfg)
    ref = [g["lr"] for g in opt.param_groups]
    for epoch in range(100):
        # ILSVRC/utils/lr.py poly_lr_scheduler, called at the start of every epoch with decay_epoch=80
        if epoch != 0 and epoch % 80 == 0:
            ref = [r * 0.1 for r in ref]
        set_epoch_lr(opt, epoch, cfg.lr_step)
        assert [g["lr"] for g in opt.param_groups] == pytest.approx(ref)


def _sat_code_no_decay(name: str, p: torch.Tensor) -> bool:
    """A port of SAT utils/optimizer.py get_parameter_groups with the model's no_weight_decay list (their
    loc_token / loc_embed are our spatial_token / spatial_pos)."""
    skip = {"backbone.pos_embed", "backbone.cls_token", "backbone.spatial_pos", "backbone.spatial_token"}
    return len(p.shape) == 1 or name.endswith(".bias") or name in skip


def test_sat_recipe_optimizer_and_drop_path():
    arch = WsolArch("sat", "deit_small", 4)
    cfg = resolve_train(WsolTrainConfig(), arch)
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.batch_size, cfg.epochs, cfg.drop_path) == \
        ("adamw", 1e-4, 0.05, 256, 30, 0.1)
    model = create_wsol_model(WsolArch("sat", "deit_tiny", 4), cfg.drop_path)
    opt = make_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert all(g["lr"] == 1e-4 for g in opt.param_groups)
    for name, p in model.named_parameters():
        assert decay[id(p)] == (0.0 if _sat_code_no_decay(name, p) else 0.05), name
    rates = [blk.drop_path for blk in model.backbone.blocks]
    assert rates == pytest.approx([x.item() for x in torch.linspace(0, 0.1, 12)]) == drop_path_rates(0.1, 12)
    p, text = resolve_protocol(EvalProtocol(), "sat", "deit_small", "paper")
    assert parse_thresholds(p.thresholds) == (0.3, 0.35, 0.4, 0.45) and not p.iou_strict and not p.per_class


def test_drop_path_keeps_or_drops_whole_samples():
    torch.manual_seed(0)
    x = torch.ones(64, 5, 3)
    y = drop_path(x, 0.25, training=True)
    per_sample = y.flatten(1)
    kept = per_sample[:, 0] > 0
    assert torch.allclose(per_sample[kept], torch.full_like(per_sample[kept], 1 / 0.75))
    assert bool((per_sample[~kept] == 0).all()) and 0 < int(kept.sum()) < 64
    assert torch.equal(drop_path(x, 0.25, training=False), x)


def test_inception_stem_pools_round_up_to_28x28():
    model = create_wsol_model(WsolArch("bas", "inceptionv3", 3, width=0.125)).eval()
    with torch.no_grad():
        f = model.early(torch.rand(1, 3, 224, 224))
        assert f.shape[-2:] == (28, 28)  # floor-mode pools give 27x27
        assert model.late.rest(f).shape[-2:] == (14, 14)


def test_micro_batches_give_the_whole_batch_gradient():
    torch.manual_seed(0)
    model = create_wsol_model(WsolArch("bas", "vgg16", 3, width=0.125))  # no BatchNorm: pieces are exact
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 2, 1, 2])
    w = LossWeights(alpha=0.5, beta=0.7)
    whole = accumulate_step(model, "bas", x, y, w)
    g_whole = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    parts = accumulate_step(model, "bas", x, y, w, micro_batch=2)
    assert parts["total"] == pytest.approx(whole["total"], rel=1e-5)
    for a, p in zip(g_whole, model.parameters(), strict=True):
        assert torch.allclose(a, p.grad, atol=1e-6, rtol=1e-4)


def test_ten_crops_are_torchvisions_order():
    img = np.arange(6 * 8 * 1).reshape(6, 8, 1)
    crops = ten_crops(img, 4)
    assert crops.shape == (10, 4, 4, 1)
    assert crops[0, 0, 0, 0] == img[0, 0, 0] and crops[1, 0, 0, 0] == img[0, 4, 0]  # top-left, top-right
    assert crops[2, 0, 0, 0] == img[2, 0, 0] and crops[3, -1, -1, 0] == img[-1, -1, 0]  # bottom-left, -right
    assert crops[4, 0, 0, 0] == img[1, 2, 0]  # centre
    assert np.array_equal(crops[5], img[:, ::-1][0:4, 0:4])  # the mirror image's top-left


def _sat_code_pick(ious_by_tau, top1_ok):
    """A port of the SAT evaluator's choice: per threshold, GT-known and Top-1 Loc (>= 0.5, over images); the
    first threshold with the largest sum wins."""
    best_loc, best = 0, 0
    for j, ious in enumerate(ious_by_tau):
        gt = np.mean([100 if v >= 0.5 else 0 for v in ious])
        t1 = np.mean([100 if ok and v >= 0.5 else 0 for v, ok in zip(ious, top1_ok, strict=True)])
        if gt + t1 > best_loc:
            best, best_loc = j, gt + t1
    return best


def test_sat_threshold_is_the_codes_best_of_the_sweep():
    # one map whose box is right only at high thresholds: a 10x10 core (value 1) in a 20x20 halo (0.35)
    m = np.zeros((40, 40), np.float32)
    m[5:25, 5:25] = 0.35
    m[10:20, 10:20] = 1.0
    gt = np.array([[10, 10, 19, 19]], np.float64)
    pred = Predictions([m, m], [gt, gt + 1], np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 0]))
    taus = (0.3, 0.35, 0.4, 0.45)
    from facelab.wsol.metrics import largest_box_ious
    ious = np.stack([largest_box_ious(m, b, taus) for b in (gt, gt + 1)], 1)  # (T, N) at the map's own size
    want = _sat_code_pick(ious, [True, False])
    got = score(pred, 40, taus, strict=False, per_class=False)
    assert got["threshold"] == taus[want] == 0.35
    assert got["gt_known_loc"] == 100.0 and got["top1_loc"] == 50.0 and "max_box_acc_v2" in got
    assert recipe_for("paper", "sat", "deit_small").thresholds == "0.3,0.35,0.4,0.45"


def _paper_code_box_iou(cam: np.ndarray, tau: float, gt: list[float]) -> float:
    """A port of both papers' box step (BAS_inference.py, SAT evaluator.py): threshold, skimage labels, the most
    frequent label (count_max), regionprops' bbox (end past the region), the whole crop when empty; then their
    IoU with +1 areas."""
    from skimage import measure

    labels = measure.label((cam > tau).astype(float))
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    props = measure.regionprops((labels == ids[np.argmax(counts)]).astype(int)) if len(ids) else []
    h, w = cam.shape
    box = [0, 0, w, h] if not props else [props[0].bbox[1], props[0].bbox[0], props[0].bbox[3], props[0].bbox[2]]
    ix = max(0, min(box[2], gt[2]) - max(box[0], gt[0]) + 1)
    iy = max(0, min(box[3], gt[3]) - max(box[1], gt[1]) + 1)
    area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (gt[2] - gt[0] + 1) * (gt[3] - gt[1] + 1)
    return ix * iy / (area - ix * iy)


def test_box_step_matches_the_papers_code():
    from facelab.wsol.metrics import largest_box_ious, upsample_map

    rng = np.random.default_rng(1)
    taus = (0.15, 0.3, 0.45, 0.99)
    for _ in range(6):
        cam = upsample_map(rng.random((7, 7)) ** 3, 56)  # several components at most thresholds
        (x0, x1), (y0, y1) = np.sort(rng.integers(0, 56, 2)), np.sort(rng.integers(0, 56, 2))
        gt = [float(x0), float(y0), float(x1), float(y1)]
        got = largest_box_ious(cam, np.array([gt]), taus, past_end=True)
        want = [_paper_code_box_iou(cam, t, gt) for t in taus]
        assert got == pytest.approx(want, abs=1e-12)
