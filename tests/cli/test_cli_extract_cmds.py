"""The extract, backends, sort and faces commands through click."""

from __future__ import annotations

import cv2
import numpy as np
from click.testing import CliRunner

from facelab.cli.root import cli
from facelab.workspace import write_image
from facelab.workspace.faces import list_faces, read_meta


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


def test_extract_sort_and_faces_tools(ws, astronaut, tmp_path):
    write_image(ws.frames("dst") / "000001.png", cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA))
    write_image(ws.frames("dst") / "000002.png", np.full((90, 160, 3), 30, np.uint8))
    res = _run("extract", "data_dst", "-w", str(ws.root), "--size", "96", "--workers", "1", "--debug")
    assert res.exit_code == 0, res.output
    assert "faces" in res.output and "no_face" in res.output
    faces = list_faces(ws.aligned("dst"))
    assert [p.name for p in faces] == ["000001_0.jpg"]
    assert read_meta(faces[0]).size == 96 and (ws.aligned_debug("dst") / "000001.jpg").is_file()
    assert not list_faces(ws.aligned("src"))  # only the side asked for

    res = _run("sort", str(ws.aligned("dst")), "--by", "face-yaw")
    assert res.exit_code == 0, res.output
    assert [p.name for p in list_faces(ws.aligned("dst"))] == ["00001.jpg"]
    res = _run("faces", "recover-names", str(ws.aligned("dst")))
    assert res.exit_code == 0 and [p.name for p in list_faces(ws.aligned("dst"))] == ["000001_0.jpg"]

    out = tmp_path / "sheet.png"
    res = _run("faces", "sheet", str(ws.aligned("dst")), "--out", str(out), "--landmarks", "--masks")
    assert res.exit_code == 0 and cv2.imread(str(out)) is not None
    res = _run("faces", "info", str(ws.aligned("dst") / "000001_0.jpg"))
    assert res.exit_code == 0 and "data_dst/000001.png" in res.output and "yaw" in res.output


def test_extract_input_output_and_config_file(tmp_path, astronaut):
    frames = tmp_path / "frames"
    write_image(frames / "a.png", cv2.resize(astronaut, (320, 320), interpolation=cv2.INTER_AREA))
    cfg = tmp_path / "cfg.json"
    cfg.write_text('{"extract": {"size": 64, "face_type": "full"}}')
    out = tmp_path / "faces"
    res = _run("extract", "--input", str(frames), "--output", str(out), "--config", str(cfg), "--workers", "1",
               "--jpeg-quality", "80")
    assert res.exit_code == 0, res.output
    meta = read_meta(out / "a_0.jpg")
    assert meta.size == 64 and meta.face_type == "full" and meta.source_frame == "frames/a.png"


def test_user_errors_are_one_line(tmp_path):
    runner = CliRunner()
    res = runner.invoke(cli, ["extract", "--output", str(tmp_path / "x")], obj={})
    assert res.exit_code == 1 and "Error: --output needs --input" in res.output
    res = runner.invoke(cli, ["extract", "--input", str(tmp_path / "none"), "--workers", "1"], obj={})
    assert res.exit_code == 1 and "does not exist" in res.output
    res = runner.invoke(cli, ["extract", "--input", str(tmp_path), "--size", "5"], obj={})
    assert res.exit_code == 2 and "--size" in res.output and "32<=x<=4096" in res.output  # the flag's range
    res = runner.invoke(cli, ["sort", str(tmp_path / "nope"), "--by", "blur"], obj={})
    assert res.exit_code == 1 and "does not exist" in res.output


def test_backends_lists_everything():
    res = _run("backends")
    assert res.exit_code == 0
    for name in ("dlib-hog", "dlib-cnn", "s3fd", "mediapipe", "dlib68", "fan"):
        assert name in res.output
    assert "weights are looked up in" in res.output
