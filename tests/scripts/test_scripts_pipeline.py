"""The step scripts, run in order on a tiny workspace of real faces: the whole pipeline end to end.

Frames: short clips made from real photographs (Grace Hopper as the source, Eileen Collins as the destination,
moving a little from frame to frame), the destination with an audio track. Checks that ``result.mp4`` decodes
with every frame and the audio, and that each stage left what the next one needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from facekit import photo_clip

from facelab.video.probe import probe
from facelab.workspace import list_images
from facelab.workspace.faces import list_faces, read_meta

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
pytestmark = pytest.mark.e2e


def _run(script: str, ws: Path, *args: str) -> None:
    env = dict(os.environ, WORKSPACE=str(ws), PYTHON=sys.executable, OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(SCRIPTS / script), *args], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def test_scripts_run_in_order(tmp_path: Path, astronaut: np.ndarray, grace_hopper: np.ndarray) -> None:
    ws = tmp_path / "workspace"
    ws.mkdir()
    photo_clip(grace_hopper, ws / "data_src.mp4", frames=8, fps=10, audio=False, tmp=tmp_path)
    photo_clip(astronaut, ws / "data_dst.mp4", frames=10, fps=10, audio=True, tmp=tmp_path)

    _run("0_fetch_samples.sh", ws)  # both inputs present: kept, nothing downloaded
    _run("1_clear_workspace.sh", ws)
    assert (ws / "data_src.mp4").exists() and (ws / "data_dst.mp4").exists()
    _run("2_extract_frames_src.sh", ws)
    _run("3_extract_frames_dst.sh", ws)
    assert len(list_images(ws / "data_src")) == 8 and len(list_images(ws / "data_dst")) == 10
    _run("4_extract_faces_src.sh", ws, "--size", "128")
    _run("5_extract_faces_dst.sh", ws, "--size", "128")
    dst_faces = list_faces(ws / "data_dst" / "aligned")
    assert len(dst_faces) == 10, "one face per destination frame"
    assert read_meta(dst_faces[0]).source_frame == "data_dst/000001.png"
    _run("5.1_mask_train_apply.sh", ws, "--steps", "4", "--refine-steps", "2", "--size", "32")
    assert any(m.source for m in read_meta(dst_faces[0]).masks)
    _run("6_train_saehd.sh", ws, "--resolution", "32", "--archi", "df", "--ae-dims", "16", "--e-dims", "8",
         "--d-dims", "8", "--d-mask-dims", "8", "--batch-size", "2", "--target-iter", "3", "--workers", "0")
    config = json.loads((ws / "model" / "saehd" / "config.json").read_text())
    assert config["iterations"] == 3
    _run("7_merge.sh", ws, "--mask-mode", "stored:wsol*learned-prd")
    assert len(list_images(ws / "data_dst" / "merged")) == 10
    _run("8_encode.sh", ws)
    info = probe(ws / "result.mp4")
    assert info.frame_count == 10 and info.has_audio
    assert abs(float(info.fps) - 10.0) < 1e-6
    _run("9_evaluate.sh", ws, "--samples", "4", "--stability-frames", "10")
    report = json.loads((ws / "evaluation.json").read_text())
    assert report["frames_sampled"] == 4 and 0.0 <= report["structure"]["ssim_swap_vs_dst"] <= 1.0
    assert (ws / "evaluation.png").stat().st_size > 10_000


def test_script_stops_on_first_error(tmp_path: Path) -> None:
    env = dict(os.environ, WORKSPACE=str(tmp_path / "empty"), PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(SCRIPTS / "2_extract_frames_src.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0
    assert "data_src" in proc.stderr and "Traceback" not in proc.stderr
