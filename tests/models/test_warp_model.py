"""The training-free model end to end on real faces: index (train --model warp), save/load, plan, swap, merge."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "merge"))

from merge_testkit import make_clip  # noqa: E402

from facelab.errors import FacelabError  # noqa: E402
from facelab.models import TRAINING_FREE  # noqa: E402
from facelab.models.store import load_model  # noqa: E402
from facelab.models.warp import WarpModel, build_index, read_source_faces  # noqa: E402
from facelab.models.warp.model import skin_mask  # noqa: E402
from facelab.train.loop import train  # noqa: E402
from facelab.train.options import TrainOptions  # noqa: E402
from facelab.workspace import Workspace, read_image  # noqa: E402
from facelab.workspace.faces import list_faces  # noqa: E402

ARCH = {"resolution": 128, "min_usable": 4}


@pytest.fixture(scope="module")
def astro_lm(astronaut) -> np.ndarray:
    from facekit import face_landmarks

    return face_landmarks(astronaut)


def _index(ws_root: Path, faces, **arch):
    src, dst = faces
    return train(Workspace(ws_root), "w", "warp", {**ARCH, **arch}, TrainOptions(holdout=0.0), "cpu",
                 src_dir=src, dst_dir=dst)


def test_train_indexes_saves_and_loads(tmp_path, aligned_faceset):
    res = _index(tmp_path, aligned_faceset)
    assert res.stopped_by == "indexed" and res.created
    folder = Workspace(tmp_path).model("w")
    doc = json.loads((folder / "config.json").read_text())
    assert doc["kind"] == "swap" and doc["model_type"] == "warp" and doc["arch"]["resolution"] == 128
    preview = read_image(folder / "preview.png")
    assert preview.shape[1] == 5 * 128 and preview.shape[0] > 4 * 128
    model = load_model(folder)
    assert isinstance(model, WarpModel) and model.kind == TRAINING_FREE
    assert len(model) == len(list_faces(aligned_faceset[0]))
    assert model.face(0).shape == (128, 128, 3) and model.face(0).dtype == np.uint8
    again = _index(tmp_path, aligned_faceset)  # indexing again keeps the settings
    assert not again.created
    with pytest.raises(FacelabError, match="resolution 96 conflicts"):
        _index(tmp_path, aligned_faceset, resolution=96)


def test_swap_of_a_face_onto_itself_gives_it_back(aligned_faceset):
    model = build_index(aligned_faceset[0], ARCH)
    face, lm = model.face(2).astype(np.float32) / 255.0, model.landmarks[2].numpy().astype(np.float64)
    out, prd, dst = model.swap(face[None], lm[None], [[(2, 1.0)]])
    inside = skin_mask(lm, 128) > 0.99
    err = np.abs(out[0] - face)[inside].mean()
    assert err < 0.03  # the warp is the identity up to resampling (and a colour match to itself)
    assert prd.shape == dst.shape == (1, 128, 128) and prd.max() <= 1.0 and dst.max() == 1.0


def test_swap_replaces_the_face_and_keeps_the_rest(aligned_faceset):
    model = build_index(aligned_faceset[0], ARCH)
    crops = read_source_faces(list_faces(aligned_faceset[1])[:2], 128, model.face_type)[0]
    dst = np.stack([c[0] for c in crops]).astype(np.float32) / 255.0
    lms = np.stack([c[1] for c in crops])
    out, prd, _ = model.swap(dst, lms, [None, None])
    for i in range(2):
        keep = skin_mask(lms[i], 128)
        assert np.abs(out[i] - dst[i])[keep > 0.99].mean() > 0.05  # another person inside the face
        np.testing.assert_allclose(out[i][keep == 0], dst[i][keep == 0], atol=1e-6)  # untouched outside it
        assert np.array_equal(prd[i] > 0.5, keep * 1.0 > 0.5)


def test_plan_holds_a_source_face_until_a_switch_pays(aligned_faceset):
    model = build_index(aligned_faceset[0], ARCH)
    track = [(t, model.landmarks[i].numpy().astype(np.float64)) for t, i in enumerate([0, 1, 2, 3, 4, 5] * 2)]
    per_frame = WarpModel({**ARCH, "switch_cost": 0.0, "crossfade": 0})
    per_frame.load_state_dict(model.state_dict())
    free = per_frame.plan_tracks({0: track})
    assert [free[(0, t)][0][0] for t in range(12)] == [0, 1, 2, 3, 4, 5] * 2  # each frame its own best
    sticky = WarpModel({**ARCH, "switch_cost": 1e6, "crossfade": 0})
    sticky.load_state_dict(model.state_dict())
    held = sticky.plan_tracks({0: track})
    assert len({held[(0, t)][0][0] for t in range(12)}) == 1  # one source face for the whole track
    faded = WarpModel({**ARCH, "switch_cost": 0.0, "crossfade": 4})
    faded.load_state_dict(model.state_dict())
    for choice in faded.plan_tracks({0: track}).values():
        assert sum(w for _, w in choice) == pytest.approx(1.0)


def test_too_few_usable_faces_says_what_to_do(aligned_faceset):
    with pytest.raises(FacelabError, match=r"needs at least 50: extract more source frames"):
        build_index(aligned_faceset[0], {**ARCH, "min_usable": 50})
    with pytest.raises(FacelabError, match="no readable source faces"):
        build_index(aligned_faceset[0], ARCH, exclude={str(p) for p in list_faces(aligned_faceset[0])})


def test_other_face_types_are_recropped_from_the_frame_landmarks(aligned_faceset):
    """The faceset holds full faces; a whole_face index re-crops them as training does."""
    model = build_index(aligned_faceset[0], {**ARCH, "face_type": "whole_face"})
    full = build_index(aligned_faceset[0], {**ARCH, "face_type": "full"})
    # the same face spans fewer pixels in a whole_face crop (it adds the forehead)
    span = lambda m: np.ptp(m.landmarks[0].numpy()[:, 0])  # noqa: E731
    assert span(model) < 0.9 * span(full)


def test_merge_swaps_every_frame_with_the_index(ws, astronaut, astro_lm, aligned_faceset):
    from facelab.merge.config import MergeConfig
    from facelab.merge.stage import merge_frames

    make_clip(ws, astronaut, 4, astro_lm)
    model_dir = ws.model("w")
    train(ws, "w", "warp", ARCH, TrainOptions(holdout=0.0), "cpu", src_dir=aligned_faceset[1],
          dst_dir=aligned_faceset[0])
    res = merge_frames(ws, model_dir, MergeConfig(workers=0))
    assert res.merged == 4
    record = json.loads((ws.merged / "merge.json").read_text())
    assert record["model"] == "w"
    frame, merged = read_image(ws.frames("dst") / "000002.png"), read_image(ws.merged / "000002.png")
    eyes = astro_lm[36:48] + np.array([1.0, 0.0])
    x0, y0 = eyes.min(0).astype(int)
    x1, y1 = eyes.max(0).astype(int)
    assert np.abs(merged[y0:y1, x0:x1].astype(float) - frame[y0:y1, x0:x1]).mean() > 10  # eyes replaced
    assert np.array_equal(merged[:20], frame[:20])  # far from the face nothing changes


def test_index_without_destination_faces_is_a_one_line_error(tmp_path, aligned_faceset):
    src, _ = aligned_faceset
    empty = tmp_path / "no_dst"
    empty.mkdir()
    with pytest.raises(FacelabError, match="no readable faces"):
        _index(tmp_path, (src, empty))


def test_spread_picks_evenly_and_nothing_from_nothing():
    from facelab.train.index import spread

    assert spread([], 4) == []
    assert spread([Path("a")], 3) == [Path("a")] * 3
    assert spread([Path(c) for c in "abcdefg"], 4) == [Path(c) for c in "aceg"]
