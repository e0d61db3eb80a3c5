"""The studio's parts on their own: controls from any config dataclass, the next command, the path guards, an
empty workspace, and merge tuning without a model."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from studio_testkit import Client, build_workspace, running  # noqa: E402

from facelab.merge.config import MergeSettings, settings_from_dict  # noqa: E402
from facelab.studio.overview import next_command  # noqa: E402
from facelab.studio.security import Refused, plain_name, workspace_file  # noqa: E402
from facelab.studio.settings import field_schema, settings_doc  # noqa: E402
from facelab.studio.tuning import Tuner  # noqa: E402
from facelab.utils.config import setting  # noqa: E402
from facelab.workspace import Workspace  # noqa: E402


@dataclass(frozen=True)
class FutureConfig:
    """Settings another room may add: each kind gets a control without the studio knowing its name."""

    enhancer: str | None = setting(None, lambda: "Face enhancer model file.")
    strength: float = setting(0.5, "Blend.", range=(0.0, 1.0))
    kind: Literal["a", "b"] = setting("a", "A literal choice.")
    sizes: tuple[int, ...] = setting((1, 2), "A list.")
    on: bool = setting(False, "A switch.")


def test_controls_come_from_any_dataclass_fields_and_their_help():
    schema = {f["name"]: f for f in field_schema(FutureConfig)}
    assert list(schema) == ["enhancer", "strength", "kind", "sizes", "on"]
    assert schema["enhancer"]["kind"] == "str" and schema["enhancer"]["nullable"]
    assert schema["enhancer"]["help"] == "Face enhancer model file."  # callable help is called
    assert schema["strength"]["kind"] == "float" and schema["strength"]["range"] == [0.0, 1.0]
    assert schema["kind"]["choices"] == ["a", "b"]
    assert schema["sizes"]["kind"] == "json" and schema["sizes"]["default"] == [1, 2]
    assert schema["on"]["kind"] == "bool" and schema["on"]["default"] is False


def test_settings_doc_round_trips_through_the_merge_config_reader():
    doc = {"defaults": {"erode": 5}, "ranges": [{"frames": "120-180", "erode": 20}, {"frames": 7, "mode": "raw-rgb"}]}
    settings = settings_from_dict(doc)
    out = settings_doc(settings)
    assert out["ranges"] == [{"frames": "120-180", "erode": 20}, {"frames": "7", "mode": "raw-rgb"}]
    assert settings_from_dict(out) == settings
    assert settings_doc(MergeSettings())["ranges"] == []


def test_next_command_follows_the_pipeline():
    info = {"data_src video": "data_src.mp4", "data_dst video": "data_dst.mp4", "data_src frames": 10,
            "data_dst frames": 10, "data_src aligned faces": 0, "data_dst aligned faces": 0, "models": [],
            "merged frames": 0, "result": None}
    assert next_command(info)[0] == "python main.py extract --side src"
    info.update({"data_src aligned faces": 9, "data_dst aligned faces": 9})
    assert next_command(info)[0] == "python main.py train --model saehd"
    info.update({"models": ["m"], "merged frames": 10})
    assert next_command(info)[0] == "python main.py video encode"
    info["result"] = "result.mp4"
    assert next_command(info)[0] == "python main.py evaluate"


def test_path_guards(tmp_path):
    ws = Workspace(tmp_path / "ws")
    ws.frames("src").mkdir(parents=True)
    real_frames = tmp_path / "elsewhere"
    real_frames.mkdir()
    (real_frames / "000001.png").write_bytes(b"x")
    ws.frames("dst").symlink_to(real_frames, target_is_directory=True)  # frames kept on another disk: allowed
    assert workspace_file(ws, "data_dst/000001.png") == (real_frames / "000001.png").resolve()
    (tmp_path / "other.txt").write_text("no")
    (ws.frames("src") / "sneaky.txt").symlink_to(tmp_path / "other.txt")
    with pytest.raises(Refused):
        workspace_file(ws, "data_src/sneaky.txt")
    for bad in ("", "a\0b", "/abs", "..", "x/../../other.txt", "C:/x", "a\\b"):
        with pytest.raises(Refused):
            workspace_file(ws, bad)
    for bad in ("", ".x", "a/b", "a\\b", "..", "x" * 300):
        with pytest.raises(Refused):
            plain_name(bad)
    assert plain_name("000001_0.jpg") == "000001_0.jpg"


def test_a_workspace_without_frames_still_serves_the_other_views(tmp_path):
    ws = Workspace(tmp_path / "empty")
    ws.init()
    with running(ws, None) as server:
        client = Client(server)
        status, state = client.json("GET", "/api/state")
        assert status == 200 and state["frames"] == [] and "no frames" in state["frames_problem"]
        status, doc = client.json("GET", "/api/overview")
        assert status == 200 and doc["next"]["command"] == "python main.py workspace samples"
        assert client.json("GET", "/api/train")[1] == {"models": []}
        assert client.json("GET", "/api/faces?side=src")[1]["total"] == 0
        status, doc = client.json("POST", "/api/merge", {})
        assert status == 400 and "save the settings first" in doc["error"]


def test_tuning_without_a_model_shows_the_destination_faces_pasted_back(tmp_path, astronaut):
    ws = build_workspace(tmp_path / "ws", astronaut)
    tuner = Tuner(ws, None)
    original = tuner.original(0)
    out = tuner.render(0, settings_from_dict({"defaults": {"color": "none", "mode": "original"}}))
    assert np.array_equal(out.image, original)
    out = tuner.render(0, settings_from_dict({"defaults": {"color": "none"}}))
    # the identity model pastes the destination face back onto itself: close to the frame, not bit-equal
    assert np.abs(out.image.astype(int) - original.astype(int)).mean() < 2.0
    assert out.mask.max() == 255


def test_tuning_follows_the_merge_stage_with_an_enhancer_and_an_occluder(tmp_path, astronaut, monkeypatch):
    """The enhancer and the occluder mask come from the stage's own functions: a studio render equals the merged
    frame, and each setting changes it."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "weights"))
    import onnx_testkit

    from facelab.merge.stage import merge_frames
    from facelab.workspace import read_image

    models = tmp_path / "models"
    models.mkdir()
    onnx_testkit.occluder(models / "xseg_1.onnx", size=32)
    monkeypatch.setenv("FACELAB_MODELS", str(models))
    enhancer = onnx_testkit.enhancer(tmp_path / "enh.onnx", size=64)
    ws = build_workspace(tmp_path / "ws", astronaut)
    tuner = Tuner(ws, ws.model("tiny"))
    doc = {"color": "none", "workers": 0, "enhancer": str(enhancer), "enhancer_blend": 100,
           "mask_mode": "dst*occluder"}
    settings = settings_from_dict({"defaults": doc})
    shown = tuner.render(1, settings).image
    plain = tuner.render(1, settings_from_dict({"defaults": {"color": "none"}})).image
    no_occluder = tuner.render(1, settings_from_dict({"defaults": {**doc, "mask_mode": "dst"}})).image
    assert not np.array_equal(shown, plain) and not np.array_equal(shown, no_occluder)
    merge_frames(ws, ws.model("tiny"), settings, "cpu", force=True)
    merged = read_image(ws.merged / "000002.png")
    assert np.abs(merged.astype(int) - shown.astype(int)).max() <= 2  # batched model calls may round apart


def test_whole_run_and_motion_settings_render_as_the_merge_functions_do(tmp_path, astronaut):
    from facelab.merge.predict import load_predictor
    from facelab.merge.preview import render_frames
    from facelab.merge.stage import MergePaths

    ws = build_workspace(tmp_path / "ws", astronaut)
    tuner = Tuner(ws, ws.model("tiny"))
    predictor = load_predictor(ws.model("tiny"), "cpu")
    shown = {}
    for name, doc in {"plain": {}, "raw": {"smooth": False}, "window": {"smooth_window": 3},
                      "motion": {"motion_blur": 100}}.items():
        settings = settings_from_dict({"defaults": {"color": "none", "blur": 0, **doc}})
        ref = render_frames(MergePaths.of(ws), predictor, settings, ["000003"])["000003"]
        shown[name] = tuner.render(2, settings).image
        assert np.array_equal(shown[name], ref), name
        tuner.original(0)  # looking at another frame keeps the plan of these settings
    assert not np.array_equal(shown["motion"], shown["plain"])  # the face moves 2 px a frame
