"""Stability over time: landmark smoothing along each face's track and colour statistics over a window."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from merge_testkit import detect_landmarks, shifted, write_face_for  # noqa: E402

from facelab.merge.config import MergeConfig, MergeSettings  # noqa: E402
from facelab.merge.plan import build_plan  # noqa: E402
from facelab.merge.predict import IdentityPredictor  # noqa: E402
from facelab.merge.stage import merge_frames  # noqa: E402
from facelab.merge.temporal import motion_at, track_runs, window_average  # noqa: E402
from facelab.workspace import read_image, write_image  # noqa: E402


@pytest.fixture(scope="module")
def astro_lm(astronaut) -> np.ndarray:
    return detect_landmarks(astronaut)


def test_track_runs_split_at_gaps_and_window_average():
    frames = [{0: 1}, {0: 1, 1: 1}, {1: 1}, {0: 1}, {0: 1}]
    assert track_runs(frames, 0) == [[0, 1], [3, 4]]
    assert track_runs(frames, 1) == [[1, 2]]
    stats = {0: np.array([1.0]), 1: np.array([3.0]), 4: np.array([10.0])}
    np.testing.assert_allclose(window_average(stats, 1, 3), [2.0])
    np.testing.assert_allclose(window_average(stats, 3, 3), [10.0])
    assert window_average(stats, 7, 3) is None


def test_motion_follows_the_face_and_needs_single_faces(astro_lm):
    frames = [{0: astro_lm + np.array([4.0 * i, 0.0])} for i in range(3)]
    power, angle = motion_at(frames, 1)
    assert power == pytest.approx(8.0, abs=0.05) and angle == pytest.approx(0.0, abs=0.5)
    down = [{0: astro_lm + np.array([0.0, 3.0 * i])} for i in range(3)]
    assert motion_at(down, 1)[1] == pytest.approx(-90.0, abs=0.5)
    frames[2][1] = astro_lm
    assert motion_at(frames, 1) == (0.0, 0.0)
    assert motion_at(frames, 0) == (0.0, 0.0)


def _jittered_clip(ws, image, lm, n, jitter, seed=0):
    ws.init()
    rng = np.random.default_rng(seed)
    true = []
    for i in range(n):
        frame = shifted(image, 1.5 * i, 0.0)
        path = ws.frames("dst") / f"{i + 1:06d}.png"
        write_image(path, frame)
        lm_true = lm + np.array([1.5 * i, 0.0])
        true.append(lm_true)
        write_face_for(ws, path, frame, lm_true + rng.normal(0, jitter, lm.shape))
    return np.stack(true)


def test_landmark_smoothing_reduces_jitter_along_the_track(ws, astronaut, astro_lm):
    true = _jittered_clip(ws, astronaut, astro_lm, 15, jitter=1.5)

    def error(smooth: bool) -> float:
        plan = build_plan(ws.frames("dst"), ws.aligned("dst"), MergeSettings(MergeConfig(smooth=smooth)))
        got = np.stack([f.faces[0].landmarks for f in plan.frames])
        return float(np.abs(got - true).mean())

    raw, smoothed = error(False), error(True)
    assert smoothed < 0.7 * raw


def test_colour_statistics_smoothing_reduces_flicker(ws, astronaut, astro_lm):
    """Frames whose brightness flickers: rct toward the window's average destination colour flickers less."""
    ws.init()
    gains = [1.0, 0.85, 1.0, 0.85, 1.0, 0.85, 1.0, 0.85, 1.0]
    for i, g in enumerate(gains):
        frame = np.clip(astronaut.astype(np.float32) * g, 0, 255).astype(np.uint8)
        path = ws.frames("dst") / f"{i + 1:06d}.png"
        write_image(path, frame)
        write_face_for(ws, path, frame, astro_lm)
    box = (slice(int(astro_lm[:, 1].min()) + 10, int(astro_lm[:, 1].max()) - 10),
           slice(int(astro_lm[:, 0].min()) + 10, int(astro_lm[:, 0].max()) - 10))

    def flicker(window: int) -> float:
        cfg = MergeConfig(mode="overlay", mask_mode="dst", color="rct", color_smooth=window, erode=-40, blur=0,
                          workers=0)
        merge_frames(ws, None, cfg, predictor=IdentityPredictor(128, "whole_face"), force=True)
        means = [read_image(ws.merged / f"{i + 1:06d}.png")[box].mean() for i in range(len(gains))]
        return float(np.abs(np.diff(means)).mean())

    raw = float(np.abs(np.diff([astronaut[box].mean() * g for g in gains])).mean())
    off, on = flicker(1), flicker(5)
    assert off == pytest.approx(raw, rel=0.1)  # rct toward each frame's own colour keeps the flicker
    assert on < 0.5 * off

    # resuming recomputes the neighbours' statistics from their frames: the same output as one run
    middle = ws.merged / "000005.png"
    before = middle.read_bytes()
    middle.unlink()
    cfg = MergeConfig(mode="overlay", mask_mode="dst", color="rct", color_smooth=5, erode=-40, blur=0, workers=0)
    res = merge_frames(ws, None, cfg, predictor=IdentityPredictor(128, "whole_face"))
    assert res.merged == 1 and middle.read_bytes() == before
