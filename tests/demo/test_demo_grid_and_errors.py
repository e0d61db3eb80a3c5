"""The demo picture, the demo's offline error, and evaluate's "run this stage first" errors."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from facelab.cli import cli
from facelab.demo.grid import close_up, demo_grid


def test_demo_grid_layout(astronaut, grace_hopper):
    frames = [astronaut, astronaut[:, ::-1]]
    swapped = [grace_hopper, grace_hopper[::-1]]
    grid = demo_grid(frames, {"trained": swapped, "training-free": swapped[::-1]}, astronaut[100:300, 150:350],
                     height=90)
    assert grid.dtype == np.uint8 and grid.ndim == 3
    assert grid.shape[0] == 90 * 3 + 2 * 4  # destination frames, then one row per swap
    assert grid[:90].std() > 10 and grid[94:184].std() > 10 and grid[188:].std() > 10
    with pytest.raises(ValueError):
        demo_grid(frames, {"trained": swapped[:1]}, astronaut)
    with pytest.raises(ValueError):
        demo_grid(frames, {}, astronaut)


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


def test_evaluate_without_source_faces_names_extract(ws, astronaut):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "merge"))
    from facekit import face_landmarks
    from merge_testkit import make_clip

    make_clip(ws, astronaut, 1, face_landmarks(astronaut))
    ws.merged.mkdir(parents=True, exist_ok=True)
    (ws.merged / "000001.png").write_bytes((ws.frames("dst") / "000001.png").read_bytes())
    res = CliRunner().invoke(cli, ["evaluate", "-w", str(ws.root)], obj={})
    assert res.exit_code != 0 and "no source faces" in res.output
    assert "run `python main.py extract --side src` first" in res.output


def test_demo_grid_close_ups(astronaut):
    box = (180.0, 80.0, 280.0, 200.0)  # a 120 px face: close-ups of 192 px, at its size in the frame
    grid = demo_grid([astronaut], {"trained": [astronaut[::-1]], "training-free": [astronaut]}, astronaut,
                     boxes=[box], height=60)
    assert grid.shape[0] == 60 + 4 + 192
    row = grid[64:]
    assert row.shape[1] >= 3 * 192  # destination, trained and training-free side by side
    # the destination close-up is the face at its own scale (no resampling), under its label strip
    np.testing.assert_array_equal(row[30:192, :192], close_up(astronaut, box)[30:192])
    np.testing.assert_array_equal(row[30:192, 2 * 196:2 * 196 + 192], close_up(astronaut, box)[30:192])
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
