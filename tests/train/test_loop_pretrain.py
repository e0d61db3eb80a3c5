"""Turning pretraining off: DeepFaceLab re-initialises the inter block(s) and starts again at iteration 0."""

from __future__ import annotations

import pytest
import torch

from facelab.errors import FacelabError
from facelab.train.loop import open_run, pretraining_ended, save_run, training_dirs
from facelab.train.options import TrainOptions

CPU = torch.device("cpu")
TINY = {"resolution": 32, "e_dims": 8, "ae_dims": 16, "d_dims": 8, "d_mask_dims": 4}


def _saved_pretrained_run(model_dir, archi: str):
    opts = TrainOptions(pretrain=True, seed=3)
    run = open_run(model_dir, "saehd", TINY | {"archi": archi}, opts, CPU)
    run.iteration = 40
    run.history = {"iteration": [39.0, 40.0], "src_loss": [0.5, 0.4]}
    save_run(run, opts, None)
    return {k: v.clone() for k, v in run.model.state_dict().items()}


@pytest.mark.parametrize("archi, inters", [("df-ud", ("inter.",)), ("liae-ud", ("inter_AB.", "inter_B."))])
def test_pretrain_off_reinits_inters_and_resets_iteration(tmp_path, archi, inters):
    saved = _saved_pretrained_run(tmp_path / "m", archi)
    still = open_run(tmp_path / "m", "saehd", {}, TrainOptions(pretrain=True, seed=3), CPU)
    assert still.iteration == 40 and all(torch.equal(v, saved[k]) for k, v in still.model.state_dict().items())
    run = open_run(tmp_path / "m", "saehd", {}, TrainOptions(pretrain=False, seed=3), CPU)
    assert run.iteration == 0 and run.history == {}
    state = run.model.state_dict()
    for key, value in state.items():
        if key.startswith(inters) and key.endswith("weight"):
            assert not torch.equal(value, saved[key]), key  # fresh Glorot-uniform weights
            fan_out, fan_in = value.shape[0], value[0].numel()
            rf = value[0, 0].numel() if value.dim() > 2 else 1
            bound = (6.0 / (fan_in + fan_out * rf)) ** 0.5
            assert value.abs().max() <= bound + 1e-7, key
        elif key.startswith(inters) and key.endswith("bias"):
            assert not value.any(), key
        else:
            assert torch.equal(value, saved[key]), key  # encoder and decoders carry on


def test_pretraining_ended_rules():
    off, on = TrainOptions(pretrain=False), TrainOptions(pretrain=True)
    assert pretraining_ended({"pretrain": True}, off, {})
    assert not pretraining_ended({"pretrain": True}, on, {})
    assert not pretraining_ended({"pretrain": False}, off, {})
    assert not pretraining_ended({}, off, {})
    assert not pretraining_ended({"pretrain": True}, off, {"pretrain": False})  # a model without pretraining


def test_new_model_starts_from_a_pretrained_one(tmp_path):
    saved = _saved_pretrained_run(tmp_path / "pre", "df-ud")
    run = open_run(tmp_path / "new", "saehd", {}, TrainOptions(seed=5), CPU, pretrained=tmp_path / "pre")
    assert run.created and run.iteration == 0 and run.model.arch.archi == "df-ud"
    assert all(torch.equal(v, saved[k]) for k, v in run.model.state_dict().items())
    assert all(not opt.state for opt in run.optimizers.values())  # fresh optimizers
    with pytest.raises(FacelabError, match="ae_dims|ae-dims"):
        open_run(tmp_path / "other", "saehd", {"ae_dims": 32}, TrainOptions(), CPU, pretrained=tmp_path / "pre")
    with pytest.raises(FacelabError, match="not amp"):
        open_run(tmp_path / "amp", "amp", {}, TrainOptions(), CPU, pretrained=tmp_path / "pre")
    with pytest.raises(FacelabError, match="no pretrained model"):
        open_run(tmp_path / "x", "saehd", {}, TrainOptions(), CPU, pretrained=tmp_path / "missing")


def test_pretraining_faces_feed_both_sides_while_pretraining(tmp_path):
    src, dst, pre = tmp_path / "src", tmp_path / "dst", tmp_path / "pre"
    assert training_dirs(src, dst, pre, pretrain=True) == (pre, pre)
    assert training_dirs(src, dst, pre, pretrain=False) == (src, dst)
    assert training_dirs(src, dst, None, pretrain=True) == (src, dst)
