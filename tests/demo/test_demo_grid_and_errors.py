"""The demo picture, the demo's offline error, and evaluate's "run this stage first" errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from facelab.cli import cli
from facelab.demo.grid import demo_grid


def test_demo_grid_layout(astronaut, grace_hopper):
    frames = [astronaut, astronaut[:, ::-1]]
    swapped = [grace_hopper, grace_hopper[::-1]]
    grid = demo_grid(frames, swapped, astronaut[100:300, 150:350], height=90)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    assert grid.shape[0] == 90 * 2 + 4
    # column 2 of row 1 shows the first destination frame, of row 2 its swapped version
    assert grid[:90].std() > 10 and grid[94:].std() > 10
    with pytest.raises(ValueError):
        demo_grid(frames, swapped[:1], astronaut)


def test_demo_without_registry_says_how_to_provide_videos(tmp_path, monkeypatch):
    monkeypatch.setenv("FACELAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    res = CliRunner().invoke(cli, ["demo", "-w", str(tmp_path / "ws"), "--minutes", "1"], obj={})
    assert res.exit_code != 0
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and "--samples-from" in errors[0] and "data_dst.mp4" in errors[0]
    assert "Traceback" not in res.output


def test_evaluate_names_the_stage_to_run_first(ws):
    res = CliRunner().invoke(cli, ["evaluate", "-w", str(ws.root)], obj={})
    assert res.exit_code != 0 and "run `python main.py merge` first" in res.output
    ws.merged.mkdir(parents=True)
    (ws.merged / "000001.png").write_bytes(b"")  # a merged frame but no model
    res = CliRunner().invoke(cli, ["evaluate", "-w", str(ws.root)], obj={})
    assert res.exit_code != 0 and "run `python main.py" in res.output


def test_demo_grid_close_ups(astronaut):
    box = (180.0, 80.0, 280.0, 200.0)
    grid = demo_grid([astronaut], [astronaut], astronaut, boxes=[box], height=60)
    assert grid.shape[0] == 4 * 60 + 3 * 4
    from facelab.demo.grid import close_up

    crop = close_up(astronaut, box)
    assert crop.shape[0] == crop.shape[1] == int(120 * 1.6)


def test_demo_runs_every_step_on_videos_given_by_hand(tmp_path, astronaut, grace_hopper):
    """The whole demo, offline, on short clips of real photographs passed with --samples-from."""
    from facekit import photo_clip

    from facelab.video.probe import probe

    given = tmp_path / "given"
    given.mkdir()
    photo_clip(grace_hopper, given / "WolfgangLanger_Pexels.mp4", frames=6, fps=10, audio=False, tmp=tmp_path)
    photo_clip(astronaut, given / "single_face.mp4", frames=6, fps=10, audio=True, tmp=tmp_path)
    ws = tmp_path / "ws"
    res = CliRunner().invoke(cli, ["demo", "-w", str(ws), "--minutes", "0.05", "--device", "cpu",
                                   "--samples-from", str(given)], obj={}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    info = probe(ws / "result.mp4")
    assert info.frame_count == 6 and info.has_audio
    assert (ws / "demo.png").stat().st_size > 10_000
    assert (ws / "model" / "demo" / "preview.png").exists()
