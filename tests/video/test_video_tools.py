"""Locating ffmpeg: PATH first when it is recent enough, else the imageio-ffmpeg binary."""

from __future__ import annotations

import os

import imageio_ffmpeg
import pytest

from facelab.video import tools


def _fake_ffmpeg(folder, banner: str) -> str:
    folder.mkdir()
    exe = folder / "ffmpeg"
    exe.write_text(f"#!/bin/sh\necho '{banner}'\n")
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.parametrize("banner, on_path", [
    ("ffmpeg version 6.1.1-3ubuntu5 Copyright (c) 2000-2023", True),
    ("ffmpeg version n7.0 Copyright (c) 2000-2024", True),
    ("ffmpeg version N-113000-g1234abcd Copyright", True),
    ("ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright", False),
    ("ffmpeg version 5.0.1 Copyright", False),
    ("not ffmpeg at all", False),
])
def test_path_ffmpeg_used_only_when_recent(tmp_path, monkeypatch, banner, on_path):
    fake = _fake_ffmpeg(tmp_path / "bin", banner)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + os.environ.get("PATH", ""))
    tools.find_ffmpeg.cache_clear()
    try:
        assert tools.find_ffmpeg() == (fake if on_path else imageio_ffmpeg.get_ffmpeg_exe())
    finally:
        tools.find_ffmpeg.cache_clear()


def test_last_error_line():
    assert tools.last_error_line("a\n\n  b: bad thing  \n\n") == "b: bad thing"
    assert tools.last_error_line("") == "ffmpeg failed without a message"
    assert len(tools.last_error_line("x" * 500)) == 200
