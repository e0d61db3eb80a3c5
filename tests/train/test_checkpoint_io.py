"""Checkpoint files: atomic writes, numbered backups, RNG states, safe loading, config.json."""

from __future__ import annotations

import datetime
import json
import random

import numpy as np
import pytest
import torch

from facelab.errors import FacelabError
from facelab.models.store import load_model
from facelab.train import checkpoint as ck


def _draws() -> tuple:
    return (torch.rand(5).tolist(), np.random.rand(5).tolist(), np.random.normal(size=1).tolist(),
            [random.random() for _ in range(5)], random.gauss(0, 1))


def _plain_ckpt(iteration: int) -> dict:
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-3)
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"format_version": ck.FORMAT_VERSION, "model_type": "saehd", "arch": {"resolution": 64},
            "iteration": iteration, "model": lin.state_dict(), "optimizers": {"G": opt.state_dict()},
            "loss_history": ck.history_to_tensors({"iteration": [1.0, 2.0], "src_loss": [0.5, 0.25]}),
            "rng": ck.capture_rng(), "opts": {"lr": 1e-3}}


def test_rng_roundtrip_through_weights_only_file(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    np.random.normal()  # leaves a cached gaussian in numpy's state
    random.gauss(0, 1)  # and in Python's
    state = ck.capture_rng()
    torch.save({"rng": state}, tmp_path / "r.pt")
    expected = _draws()
    _draws()  # move every generator on
    ck.restore_rng(torch.load(tmp_path / "r.pt", weights_only=True)["rng"])
    assert _draws() == expected


def test_save_keeps_last_and_newest_backups(tmp_path):
    for it in (10, 20, 30, 40):
        ck.save_checkpoint(tmp_path, _plain_ckpt(it), backups=2)
    assert [i for i, _ in ck.list_backups(tmp_path)] == [30, 40]
    assert (tmp_path / "ckpt_0000040.pt").is_file()
    last = ck.read_checkpoint(tmp_path / ck.LAST_NAME)
    assert last["iteration"] == 40
    assert ck.history_from_tensors(last["loss_history"]) == {"iteration": [1.0, 2.0], "src_loss": [0.5, 0.25]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_backups_zero_writes_only_last(tmp_path):
    ck.save_checkpoint(tmp_path, _plain_ckpt(5), backups=0)
    assert ck.list_backups(tmp_path) == []
    assert ck.has_checkpoint(tmp_path)


def test_user_files_are_never_pruned(tmp_path):
    (tmp_path / "ckpt_mine.pt").write_bytes(b"user")
    (tmp_path / "ckpt_12.pt").write_bytes(b"user")
    for it in (1, 2, 3):
        ck.save_checkpoint(tmp_path, _plain_ckpt(it), backups=1)
    assert (tmp_path / "ckpt_mine.pt").read_bytes() == b"user"
    assert (tmp_path / "ckpt_12.pt").read_bytes() == b"user"


def test_corrupt_checkpoint_is_a_user_error_naming_the_backup(tmp_path):
    ck.save_checkpoint(tmp_path, _plain_ckpt(7), backups=3)
    (tmp_path / ck.LAST_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(FacelabError, match=r"ckpt_last\.pt.*ckpt_0000007\.pt"):
        ck.read_checkpoint(tmp_path / ck.LAST_NAME)


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / ck.LAST_NAME
    torch.save({"format_version": 1, "payload": _Evil()}, path)
    with pytest.raises(FacelabError, match="not a readable checkpoint"):
        ck.read_checkpoint(path)


def test_foreign_and_missing_files(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(FacelabError, match="not a facelab swap checkpoint"):
        ck.read_checkpoint(tmp_path / "other.pt")
    mask = {"format_version": ck.FORMAT_VERSION, "kind": "mask", "model_type": "x", "arch": {}, "iteration": 0,
            "model": {}, "optimizers": {}}
    torch.save(mask, tmp_path / "mask.pt")
    with pytest.raises(FacelabError, match="holds a mask checkpoint, not a swap one"):
        ck.read_checkpoint(tmp_path / "mask.pt")
    with pytest.raises(FacelabError, match="no trained model"):
        load_model(tmp_path / "nothing", "cpu")


def test_newer_format_is_refused(tmp_path):
    ckpt = _plain_ckpt(1)
    ckpt["format_version"] = ck.FORMAT_VERSION + 1
    torch.save(ckpt, tmp_path / ck.LAST_NAME)
    with pytest.raises(FacelabError, match="upgrade facelab"):
        ck.read_checkpoint(tmp_path / ck.LAST_NAME)


def test_config_json_keeps_created(tmp_path):
    ck.write_config(tmp_path, "mine", _plain_ckpt(1))
    first = json.loads((tmp_path / "config.json").read_text())
    ck.write_config(tmp_path, "mine", _plain_ckpt(9))
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["created"] == first["created"]
    assert doc["iterations"] == 9 and doc["model_type"] == "saehd" and doc["name"] == "mine"
    assert doc["arch"] == {"resolution": 64} and doc["train_options"] == {"lr": 1e-3}
    assert doc["format_version"] == ck.FORMAT_VERSION and doc["torch_version"] == torch.__version__
    assert doc["kind"] == "swap" and datetime.datetime.fromisoformat(doc["updated"]).tzinfo is not None


def test_unreadable_config_json_is_an_error_naming_it(tmp_path, ws):
    from facelab.models.store import find_swap_model

    folder = ws.model("broken")
    ck.save_checkpoint(folder, _plain_ckpt(1), backups=0)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(FacelabError, match=r"broken/config.json is not readable JSON"):
        find_swap_model(ws, None)
    with pytest.raises(FacelabError, match=r"broken/config.json is not readable JSON"):
        ck.write_config(folder, "broken", _plain_ckpt(2))
