"""WSOL runs in facelab's one checkpoint format (kind ``wsol``), and runs written before it still load."""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict, replace

import pytest
import torch

from facelab.errors import FacelabError
from facelab.utils import checkpoint as ckio
from facelab.utils.atomic import TMP_PREFIX
from facelab.wsol.data import make_toy_cub
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.trainer import (
    LEGACY_VERSION,
    WsolTrainConfig,
    load_wsol,
    make_optimizer,
    read_checkpoint,
    resolve_train,
    save_checkpoint,
    train_wsol,
)

CPU = torch.device("cpu")
ARCH = WsolArch("bas", "tiny", 2, width=0.25)
CFG = resolve_train(WsolTrainConfig(input_size=32, epochs=1, batch_size=4, backups=2), ARCH)


def _run(seed: int = 0):
    torch.manual_seed(seed)
    model = create_wsol_model(ARCH)
    return model, make_optimizer(model, CFG)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy_cub(root, classes=2, per_class=4, seed=0)
    return root


def test_round_trip_config_and_backups(tmp_path):
    model, opt = _run()
    for epoch in (1, 2, 3, 4):
        save_checkpoint(tmp_path, model, opt, ARCH, CFG, epoch, [{"epoch": epoch, "total": 0.5}])
    loaded, arch, cfg, state = load_wsol(tmp_path, CPU)
    assert arch == ARCH and cfg == CFG and state["epoch"] == 4 and _same_weights(loaded, model)
    assert state["kind"] == "wsol" and state["format_version"] == ckio.FORMAT_VERSION
    assert [i for i, _ in ckio.list_backups(tmp_path)] == [3, 4]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]
    doc = json.loads((tmp_path / "config.json").read_text())
    assert doc["kind"] == "wsol" and ckio.config_kind(tmp_path) == "wsol" and doc["epochs_done"] == 4
    assert doc["arch"] == asdict(ARCH) and doc["train"]["backups"] == 2 and doc["history"][0]["epoch"] == 4
    assert datetime.datetime.fromisoformat(doc["created"]).tzinfo is not None and doc["updated"] >= doc["created"]


def _write_old_run(out, model, opt, epoch: int = 1) -> None:
    """A folder as the WSOL trainer wrote it before the shared format (format 1, no kind in the checkpoint)."""
    out.mkdir(parents=True, exist_ok=True)
    train = {"input_size": 32, "epochs": 1, "batch_size": 4, "lr": 1e-3, "optimizer": "adamw", "weight_decay": 5e-4,
             "crop_ratio": 0.875, "seed": 0, "weights": {"alpha": 0.5, "beta": 1.0, "area_r": 0.25}}  # no recipes
    torch.save({"format_version": LEGACY_VERSION, "arch": asdict(ARCH), "train": train, "epoch": epoch,
                "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": torch.get_rng_state()},
               out / "ckpt_last.pt")
    doc = {"format_version": LEGACY_VERSION, "kind": "wsol", "arch": asdict(ARCH), "train": train,
           "epochs_done": epoch, "history": [], "saved": "2026-11-20T10:00:00"}
    (out / "config.json").write_text(json.dumps(doc, indent=2))


def test_old_run_loads_and_resumes_in_the_new_format(tmp_path, toy):
    model, opt = _run(seed=3)
    _write_old_run(tmp_path / "old", model, opt)
    assert ckio.config_kind(tmp_path / "old") == "wsol"
    loaded, arch, cfg, state = load_wsol(tmp_path / "old", CPU)
    assert arch == ARCH and cfg.backups == WsolTrainConfig().backups and state["epoch"] == 1
    assert cfg.recipe == "facelab" and cfg.optimizer == "adamw"  # what runs followed before recipes
    assert state["kind"] == "wsol" and _same_weights(loaded, model)
    result = train_wsol(toy, tmp_path / "old", ARCH, replace(CFG, epochs=2), CPU)  # resumes at epoch 1
    assert result["epochs_done"] == 2
    state = read_checkpoint(tmp_path / "old")
    assert state["epoch"] == 2 and state["format_version"] == ckio.FORMAT_VERSION and state["kind"] == "wsol"
    doc = ckio.read_config(tmp_path / "old")
    assert doc["format_version"] == ckio.FORMAT_VERSION and "created" in doc and doc["epochs_done"] == 2
    assert [i for i, _ in ckio.list_backups(tmp_path / "old")] == [2]


def test_newer_format_and_other_kinds_are_refused_naming_the_file(tmp_path):
    model, opt = _run()
    save_checkpoint(tmp_path, model, opt, ARCH, CFG, 1, [])
    path = tmp_path / "ckpt_last.pt"
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format_version": ckio.FORMAT_VERSION + 1}, path)
    with pytest.raises(FacelabError, match=re.escape(f"checkpoint {path} has format") + ".*upgrade facelab"):
        load_wsol(tmp_path, CPU)
    torch.save({**state, "kind": "mask"}, path)
    with pytest.raises(FacelabError, match=re.escape(f"{path} holds a mask checkpoint, not a wsol one")):
        load_wsol(tmp_path, CPU)
    with pytest.raises(FacelabError, match=re.escape(f"no WSOL checkpoint at {tmp_path / 'none' / 'ckpt_last.pt'}")):
        load_wsol(tmp_path / "none", CPU)


def test_training_never_writes_over_another_kind_of_folder(tmp_path, toy):
    ckio.write_config(tmp_path / "swap", {"kind": "swap", "model_type": "saehd"})
    with pytest.raises(FacelabError, match=r"swap/config\.json says the folder holds a swap model, not a wsol one"):
        train_wsol(toy, tmp_path / "swap", ARCH, CFG, CPU, force=True)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{oops")
    with pytest.raises(FacelabError, match=r"bad/config\.json is not readable JSON"):
        train_wsol(toy, tmp_path / "bad", ARCH, CFG, CPU)


def test_force_starts_afresh_without_the_old_backups(tmp_path, toy):
    model, opt = _run()
    for epoch in (5, 6):
        save_checkpoint(tmp_path, model, opt, ARCH, CFG, epoch, [])
    train_wsol(toy, tmp_path, ARCH, CFG, CPU, force=True)
    assert [i for i, _ in ckio.list_backups(tmp_path)] == [1] and read_checkpoint(tmp_path)["epoch"] == 1
