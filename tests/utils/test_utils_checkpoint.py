"""The one checkpoint format (kind-agnostic): times with a zone, config.json, backups, safe checked reading."""

from __future__ import annotations

import datetime
import json
import re

import pytest
import torch

from facelab.errors import FacelabError
from facelab.utils import checkpoint as ckio
from facelab.utils.atomic import TMP_PREFIX


def _ckpt(iteration: int, kind: str = "wsol", version: int = ckio.FORMAT_VERSION) -> dict:
    return {"format_version": version, "kind": kind, "iteration": iteration, "w": torch.arange(4.0) * iteration}


def test_now_iso_has_a_time_zone_and_is_now():
    stamp = datetime.datetime.fromisoformat(ckio.now_iso())
    assert stamp.tzinfo is not None and stamp.utcoffset() is not None
    assert abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds()) < 5


def test_write_config_keeps_created_and_moves_updated(tmp_path, monkeypatch):
    times = iter(["2026-01-01T10:00:00+01:00", "2026-01-02T11:00:00+01:00"])
    monkeypatch.setattr(ckio, "now_iso", lambda: next(times))
    ckio.write_config(tmp_path, {"kind": "wsol", "epochs_done": 1})
    ckio.write_config(tmp_path, {"kind": "wsol", "epochs_done": 2})
    doc = json.loads((tmp_path / ckio.CONFIG_NAME).read_text())
    assert doc == {"format_version": ckio.FORMAT_VERSION, "kind": "wsol", "epochs_done": 2,
                   "created": "2026-01-01T10:00:00+01:00", "updated": "2026-01-02T11:00:00+01:00"}
    assert ckio.read_config(tmp_path) == doc and ckio.config_kind(tmp_path) == "wsol"


@pytest.mark.parametrize("text,expected", [("{not json", "is not readable JSON"), ("[1, 2]", "is not a JSON object"),
                                           (b"\xff\xfe{}", "is not readable JSON")])
def test_read_config_names_a_bad_file(tmp_path, text, expected):
    path = tmp_path / ckio.CONFIG_NAME
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(FacelabError, match=expected) as info:
        ckio.read_config(tmp_path)
    assert str(path) in str(info.value)


def test_read_config_of_a_missing_file_and_config_kind(tmp_path):
    with pytest.raises(FacelabError, match=re.escape(f"{tmp_path / ckio.CONFIG_NAME} is missing")):
        ckio.read_config(tmp_path)
    (tmp_path / ckio.CONFIG_NAME).write_text('{"model_type": "saehd"}')
    assert ckio.config_kind(tmp_path) == "swap"  # written before kinds existed
    (tmp_path / ckio.CONFIG_NAME).write_text('{"kind": "video"}')
    with pytest.raises(FacelabError, match=r"config\.json: unknown kind 'video'"):
        ckio.config_kind(tmp_path)


def test_check_folder_kind(tmp_path):
    ckio.check_folder_kind(tmp_path / "new", "mask")  # no config.json: free
    ckio.write_config(tmp_path, {"kind": "swap"})
    ckio.check_folder_kind(tmp_path, "swap")
    with pytest.raises(FacelabError, match=r"config\.json says the folder holds a swap model, not a mask one"):
        ckio.check_folder_kind(tmp_path, "mask")


def test_list_backups_is_numeric_and_ignores_other_files(tmp_path):
    assert ckio.list_backups(tmp_path / "absent") == []
    for name in ("ckpt_0000100.pt", "ckpt_0000002.pt", "ckpt_0000010.pt", "ckpt_12.pt", "ckpt_last.pt",
                 "ckpt_mine.pt", "ckpt_0000003.pt.tmp", ".tmp-ckpt_0000004.pt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "ckpt_0000005.pt").mkdir()
    assert ckio.list_backups(tmp_path) == [(2, tmp_path / "ckpt_0000002.pt"), (10, tmp_path / "ckpt_0000010.pt"),
                                           (100, tmp_path / "ckpt_0000100.pt")]
    assert "ckpt_0000100.pt" in ckio.backup_hint(tmp_path)


def test_save_read_round_trip_backups_and_no_temp_files(tmp_path):
    for it in (1, 2, 3, 4):
        last = ckio.save_checkpoint(tmp_path, _ckpt(it), backups=2)
    assert last == tmp_path / ckio.LAST_NAME
    assert [i for i, _ in ckio.list_backups(tmp_path)] == [3, 4]
    got = ckio.read_checkpoint(last, "wsol", ("iteration", "w"))
    assert got["iteration"] == 4 and torch.equal(got["w"], torch.arange(4.0) * 4)
    assert torch.equal(ckio.read_checkpoint(ckio.backup_path(tmp_path, 3), "wsol")["w"], torch.arange(4.0) * 3)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]
    ckio.save_checkpoint(tmp_path, _ckpt(9), backups=1, iteration=70)  # explicit backup number
    assert [i for i, _ in ckio.list_backups(tmp_path)] == [70]


def test_read_checkpoint_refuses_newer_format_other_kind_and_missing_keys(tmp_path):
    path = tmp_path / ckio.LAST_NAME
    torch.save(_ckpt(1, version=ckio.FORMAT_VERSION + 1), path)
    with pytest.raises(FacelabError, match=re.escape(f"checkpoint {path} has format {ckio.FORMAT_VERSION + 1} ") + ".*upgrade"):
        ckio.read_checkpoint(path, "wsol")
    torch.save(_ckpt(1, kind="mask"), path)
    with pytest.raises(FacelabError, match=re.escape(f"{path} holds a mask checkpoint, not a wsol one")):
        ckio.read_checkpoint(path, "wsol")
    torch.save(_ckpt(1), path)
    with pytest.raises(FacelabError, match=re.escape(f"{path} is not a facelab wsol checkpoint")):
        ckio.read_checkpoint(path, "wsol", ("epoch",))
    torch.save({"kind": "wsol"}, path)  # no format_version
    with pytest.raises(FacelabError, match="is not a facelab wsol checkpoint"):
        ckio.read_checkpoint(path, "wsol")


def test_migrate_runs_before_the_checks(tmp_path):
    path = tmp_path / ckio.LAST_NAME
    torch.save({"format_version": 1, "epoch": 3}, path)  # an old file without a kind reads as a swap one
    with pytest.raises(FacelabError, match="holds a swap checkpoint, not a wsol one"):
        ckio.read_checkpoint(path, "wsol")
    got = ckio.read_checkpoint(path, "wsol", ("epoch",), migrate=lambda c: {**c, "kind": "wsol"})
    assert got == {"format_version": 1, "epoch": 3, "kind": "wsol"}
