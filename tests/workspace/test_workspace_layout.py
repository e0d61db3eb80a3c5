"""``workspace init | info | clear`` through the CLI, and the paths the layout derives."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from facelab.cli import cli
from facelab.workspace import LAYOUT_VERSION, Workspace, write_image


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), obj={})


def test_init_creates_layout_and_keeps_content(tmp_path):
    root = tmp_path / "ws"
    res = _run("workspace", "init", "-w", str(root))
    assert res.exit_code == 0, res.output
    ws = Workspace(root)
    for folder in (ws.frames("src"), ws.frames("dst"), ws.aligned("src"), ws.aligned("dst"), ws.models):
        assert folder.is_dir()
    assert json.loads(ws.manifest.read_text()) == {"layout_version": LAYOUT_VERSION}
    (ws.frames("src") / "keep.txt").write_text("mine")
    res = _run("workspace", "init", "-w", str(root))
    assert res.exit_code == 0 and "created 0 item(s)" in res.output
    assert (ws.frames("src") / "keep.txt").read_text() == "mine"


def test_layout_paths(tmp_path):
    ws = Workspace(tmp_path)
    assert ws.frames("dst") == tmp_path / "data_dst"
    assert ws.aligned("src") == tmp_path / "data_src" / "aligned"
    assert ws.merged == tmp_path / "data_dst" / "merged" and ws.merged_mask == tmp_path / "data_dst" / "merged_mask"
    assert ws.result == tmp_path / "result.mp4" and ws.result_mask == tmp_path / "result_mask.mp4"
    assert ws.relative(tmp_path / "data_dst" / "000001.png") == "data_dst/000001.png"
    assert ws.find_video("src") is None
    (tmp_path / "data_src.MKV").write_bytes(b"x")
    (tmp_path / "data_src_old.mp4").write_bytes(b"x")  # a different stem: not the input video
    assert ws.find_video("src") == tmp_path / "data_src.MKV"


def _populate(ws: Workspace) -> None:
    ws.init()
    (ws.root / "data_src.mp4").write_bytes(b"source video")
    (ws.root / "data_dst.mp4").write_bytes(b"destination video")
    frame = np.zeros((8, 8, 3), np.uint8)
    for side in ("src", "dst"):
        for i in range(3):
            write_image(ws.frames(side) / f"{i + 1:06d}.png", frame)
    write_image(ws.merged / "000001.png", frame)
    (ws.frames("src") / "notes.txt").write_text("user file")
    ws.model("saehd").mkdir(parents=True)
    ws.result.write_bytes(b"result")


def test_info_counts(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _populate(ws)
    res = _run("workspace", "info", "-w", str(ws.root), "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["data_src video"] == "data_src.mp4" and info["data_dst frames"] == 3
    assert info["models"] == ["saehd"] and info["merged frames"] == 1 and info["result"] == "result.mp4"
    res = _run("workspace", "info", "-w", str(tmp_path / "nowhere"))
    assert res.exit_code != 0 and "workspace init" in res.output


def test_clear_needs_yes_and_never_touches_inputs(tmp_path):
    ws = Workspace(tmp_path / "ws")
    _populate(ws)
    before = sorted(p.relative_to(ws.root) for p in ws.root.rglob("*"))
    res = _run("workspace", "clear", "all", "-w", str(ws.root))
    assert res.exit_code != 0 and "--yes" in res.output and "would remove" in res.output
    assert sorted(p.relative_to(ws.root) for p in ws.root.rglob("*")) == before  # nothing removed
    res = _run("workspace", "clear", "frames_src", "result", "-w", str(ws.root), "--yes")
    assert res.exit_code == 0, res.output
    assert not list(ws.frames("src").glob("*.png")) and not ws.result.exists()
    assert (ws.frames("src") / "notes.txt").read_text() == "user file"  # not a frame: kept
    assert len(list(ws.frames("dst").glob("*.png"))) == 3
    res = _run("workspace", "clear", "all", "-w", str(ws.root), "--yes")
    assert res.exit_code == 0
    assert (ws.root / "data_src.mp4").read_bytes() == b"source video"
    assert (ws.root / "data_dst.mp4").read_bytes() == b"destination video"
    assert not ws.models.exists() and not ws.merged.exists() and not list(ws.frames("dst").glob("*.png"))
    assert _run("workspace", "clear", "all", "-w", str(ws.root)).output.strip() == "nothing to clear"


def test_newer_layout_is_refused(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.init()
    ws.manifest.write_text(json.dumps({"layout_version": LAYOUT_VERSION + 1}))
    res = _run("workspace", "info", "-w", str(ws.root))
    assert res.exit_code != 0 and "upgrade facelab" in res.output and "Traceback" not in res.output
