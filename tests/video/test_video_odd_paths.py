"""Paths ffmpeg could mistake: a relative folder with a colon (a protocol to ffmpeg) and a name starting with ``-``
(an option to ffmpeg) work in probe, extract, encode and the clip maker, and through the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from facelab.cli.root import cli
from facelab.video import encode_frames, extract_frames, probe
from facelab.video.synthetic import make_clip

pytestmark = pytest.mark.fault


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("folder, name", [("co:lon", "clip.mp4"), (".", "-x.mp4"), ("co:lon", "-x.mp4"),
                                          ("-dash", "a:b.mp4")])
def test_probe_extract_encode_with_odd_relative_paths(in_tmp, folder, name):
    Path(folder).mkdir(exist_ok=True)
    video = Path(folder) / name
    make_clip(video, seconds=0.2, fps=25, size=(32, 32))
    assert video.is_file()
    info = probe(video)
    assert (info.frame_count, info.width, info.has_audio) == (5, 32, True)
    result = extract_frames(video, Path(folder) / "frames")
    assert result.total == 5
    out = Path(folder) / ("-" + name.lstrip("-"))
    encoded = encode_frames(Path(folder) / "frames", out, reference_video=video)
    assert out.is_file() and encoded.frames == 5 and encoded.audio.startswith("copy")
    assert probe(out).frame_count == 5


def test_cli_workspace_with_a_colon(in_tmp):
    ws = Path("co:lon")
    assert CliRunner().invoke(cli, ["workspace", "init", "-w", str(ws)], obj={}).exit_code in (0, 2)
    ws.mkdir(exist_ok=True)
    make_clip(ws / "data_dst.mp4", seconds=0.2, fps=25, size=(32, 32))
    res = CliRunner().invoke(cli, ["video", "extract", "data_dst", "-w", str(ws)], obj={})
    assert res.exit_code == 0, res.output
    assert len(list((ws / "data_dst").glob("*.png"))) == 5
    res = CliRunner().invoke(cli, ["video", "encode", "-w", str(ws), "--input", str(ws / "data_dst")], obj={})
    assert res.exit_code == 0, res.output
    assert probe(ws / "result.mp4").frame_count == 5


def test_cli_video_named_like_an_option(in_tmp):
    make_clip(Path("-x.mp4"), seconds=0.2, fps=25, size=(32, 32), audio=False)
    res = CliRunner().invoke(cli, ["video", "info", "--", "-x.mp4"], obj={})
    assert res.exit_code == 0 and "32x32" in res.output, res.output
