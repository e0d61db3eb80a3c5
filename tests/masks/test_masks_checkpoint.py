"""Mask learners in facelab's one checkpoint format (kind ``mask``): round trip, backups, refusals, old learners,
and never listed as swap models."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict

import pytest
import torch

from facelab.errors import FacelabError
from facelab.masks.learner import MaskLearnConfig, RefineNet, create_learner
from facelab.masks.workspace_masks import load_mask_model, read_mask_checkpoint, save_mask_model
from facelab.models.store import find_swap_model, is_swap_model
from facelab.utils import checkpoint as ckio
from facelab.utils.atomic import TMP_PREFIX

CPU = torch.device("cpu")
CFG = MaskLearnConfig(size=32, steps=2, batch_size=4)
INFO = {"faces": 6, "dilation": 1, "val_iou": 0.9}


def _learner(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_learner(CFG)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_with_and_without_refiner(tmp_path):
    learner = _learner()
    torch.manual_seed(1)
    refiner = RefineNet()
    save_mask_model(tmp_path, learner, refiner, 0.35, 2, CFG, INFO)
    model = load_mask_model(tmp_path, CPU)
    assert model.cfg == CFG and model.threshold == 0.35 and model.dilation == 2
    assert _same(model.learner, learner) and model.refiner is not None and _same(model.refiner, refiner)
    save_mask_model(tmp_path, learner, None, 0.4, 0, CFG, INFO)
    assert load_mask_model(tmp_path, CPU).refiner is None
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["kind"] == "mask" and ckio.config_kind(tmp_path) == "mask" and doc["format_version"] == ckio.FORMAT_VERSION
    assert doc["cfg"] == asdict(CFG) and doc["threshold"] == 0.4 and doc["run"] == 2 and doc["faces"] == 6
    assert datetime.datetime.fromisoformat(doc["created"]).tzinfo is not None


def test_each_run_leaves_a_backup_and_the_newest_are_kept(tmp_path):
    for run in (1, 2, 3):
        save_mask_model(tmp_path, _learner(run), None, 0.1 * run, 0, CFG, INFO, backups=2)
    assert [i for i, _ in ckio.list_backups(tmp_path)] == [2, 3]
    assert read_mask_checkpoint(tmp_path)["run"] == 3
    assert _same(load_mask_model(tmp_path, CPU).learner, _learner(3))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]
    backup = torch.load(ckio.backup_path(tmp_path, 2), weights_only=True)
    assert backup["run"] == 2 and backup["threshold"] == pytest.approx(0.2)


def test_newer_format_and_other_kinds_are_refused_naming_the_file(tmp_path):
    save_mask_model(tmp_path, _learner(), None, 0.3, 0, CFG, INFO)
    path = tmp_path / "ckpt_last.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format_version": ckio.FORMAT_VERSION + 1}, path)
    with pytest.raises(FacelabError, match=re.escape(f"checkpoint {path} has format") + ".*upgrade facelab"):
        load_mask_model(tmp_path, CPU)
    torch.save({**state, "kind": "wsol"}, path)
    with pytest.raises(FacelabError, match=re.escape(f"{path} holds a wsol checkpoint, not a mask one")):
        load_mask_model(tmp_path, CPU)
    with pytest.raises(FacelabError, match=re.escape(f"no mask learner at {tmp_path / 'x' / 'ckpt_last.pt'}")):
        load_mask_model(tmp_path / "x", CPU)


def test_a_swap_model_folder_is_never_overwritten(tmp_path):
    ckio.write_config(tmp_path, {"kind": "swap", "model_type": "saehd"})
    with pytest.raises(FacelabError, match=r"config\.json says the folder holds a swap model, not a mask one"):
        save_mask_model(tmp_path, _learner(), None, 0.3, 0, CFG, INFO)
    assert not ckio.has_checkpoint(tmp_path)


def _write_first_learner(folder, learner, refiner) -> None:
    """A learner folder as the first mask code wrote it: format 1, kind mask, no dilation, no created."""
    folder.mkdir(parents=True)
    cfg = asdict(CFG)
    torch.save({"format_version": 1, "kind": "mask", "cfg": cfg, "threshold": 0.3, "learner": learner.state_dict(),
                "refiner": refiner.state_dict() if refiner is not None else {}}, folder / "ckpt_last.pt")
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "kind": "mask", "cfg": cfg, "threshold": 0.3,
                                                    "faces": 6, "saved": "2026-11-25T11:00:00"}, indent=2))


@pytest.mark.parametrize("with_refiner,threshold", [(False, 0.3), (True, 0.5)])
def test_first_learners_still_load(tmp_path, with_refiner, threshold):
    learner = _learner()
    _write_first_learner(tmp_path / "mask_bas", learner, RefineNet() if with_refiner else None)
    model = load_mask_model(tmp_path / "mask_bas", CPU)
    # no widening then; the refiner kept p(visible) >= 0.5, i.e. a refined score <= 0.5
    assert model.dilation == 0 and model.threshold == threshold and (model.refiner is not None) == with_refiner
    assert _same(model.learner, learner) and model.cfg == CFG


def test_mask_learners_are_not_listed_as_swap_models(ws):
    _write_first_learner(ws.model("mask_bas"), _learner(), None)
    save_mask_model(ws.model("mask_sat"), _learner(), None, 0.3, 0, CFG, INFO)
    assert not is_swap_model(ws.model("mask_bas")) and not is_swap_model(ws.model("mask_sat"))
    with pytest.raises(FacelabError, match="no trained model in"):
        find_swap_model(ws, None)
    swap = ws.model("swap")
    ckio.write_config(swap, {"kind": "swap", "model_type": "saehd"})
    ckio.save_checkpoint(swap, {"format_version": ckio.FORMAT_VERSION, "kind": "swap"}, backups=0)
    assert find_swap_model(ws, None) == swap


def test_a_mask_folder_with_an_unreadable_config_is_an_error_naming_it(ws):
    save_mask_model(ws.model("mask_bas"), _learner(), None, 0.3, 0, CFG, INFO)
    (ws.model("mask_bas") / "config.json").write_text("{truncated")
    with pytest.raises(FacelabError, match=r"mask_bas/config\.json is not readable JSON"):
        is_swap_model(ws.model("mask_bas"))
    with pytest.raises(FacelabError, match=r"mask_bas/config\.json is not readable JSON"):
        find_swap_model(ws, None)
