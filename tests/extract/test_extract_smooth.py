"""Temporal smoothing inside the stage: runs of single-face frames are smoothed, gaps split runs."""

from __future__ import annotations

import numpy as np

from facelab.align import frontal_landmarks
from facelab.extract import ExtractConfig, FoundFace, FrameFaces, smooth_runs


def _frame(lm: np.ndarray, n: int = 1) -> FrameFaces:
    face = FoundFace((0.0, 0.0, 10.0, 10.0), lm, 1.0, 1.0, 0.03)
    return FrameFaces(tuple([face] * n), (640, 360))


def test_smooth_runs_smooths_single_face_runs_only():
    rng = np.random.default_rng(0)
    base = frontal_landmarks(200) + 100
    names = [f"f{i:02d}" for i in range(14)]
    clean = {n: base + [i * 2.0, 0.0] for i, n in enumerate(names)}
    found = {n: _frame(clean[n] + rng.normal(0, 1.5, (68, 2))) for n in names}
    found["f06"] = _frame(clean["f06"], n=2)  # a two-face frame splits the runs and is left alone
    found.pop("f10")  # a frame with no result (error) also splits
    out = smooth_runs(names, found, ExtractConfig(smooth=True, smooth_window=5))
    assert out["f06"] is found["f06"]
    for n in ["f11", "f12", "f13"]:  # a run of 3 is smoothed
        assert not np.allclose(out[n].faces[0].landmarks, found[n].faces[0].landmarks)
    err_before = np.mean([np.abs(found[n].faces[0].landmarks - clean[n]).mean() for n in names[:6]])
    err_after = np.mean([np.abs(out[n].faces[0].landmarks - clean[n]).mean() for n in names[:6]])
    assert err_after < 0.75 * err_before
    short = {"a": found["f00"], "b": found["f01"]}
    assert smooth_runs(["a", "b"], short, ExtractConfig(smooth=True)) == short  # too short to smooth


def test_config_validation():
    import pytest

    assert ExtractConfig(face_type="wf").face_type == "whole_face"
    for bad in ({"size": 8}, {"jpeg_quality": 0}, {"image_format": "gif"}, {"interpolation": "nearest"},
                {"max_faces": -1}, {"smooth_method": "kalman"}, {"smooth_window": 2}):
        with pytest.raises(ValueError):
            ExtractConfig(**bad)
