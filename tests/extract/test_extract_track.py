"""Tracks through video: linking, gaps looked at again or interpolated, stable face indices, resume, metadata."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from facekit import drifting_face_clip

from facelab.extract import ExtractConfig, extract_faces
from facelab.extract.frame import FoundFace
from facelab.extract.sequence import is_video
from facelab.extract.state import scan_faces
from facelab.extract.track import fill_gaps, find_gaps, link_tracks, track_indices, tracked_share
from facelab.workspace import write_image
from facelab.workspace.faces import list_faces, read_meta


def _face(x: float, y: float = 50.0, side: float = 40.0) -> FoundFace:
    lm = np.tile([x + side / 2, y + side / 2], (68, 1)) + np.linspace(0, 1, 136).reshape(68, 2)
    return FoundFace((x, y, x + side, y + side), lm, 1.0, 1.0, 0.01)


def test_two_people_keep_their_tracks_and_gaps_are_filled():
    # person A moves right 5 px a frame and is missed on frames 3-4; person B stays at x=300 and appears later
    frames = [tuple(f for f in (_face(10 + 5 * t) if t not in (3, 4) else None,
                                _face(300) if t >= 2 else None) if f is not None) for t in range(8)]
    linked = link_tracks(frames, max_gap=5)
    a_ids = {f.track for faces in linked for f in faces if f.box[0] < 200}
    b_ids = {f.track for faces in linked for f in faces if f.box[0] >= 200}
    assert len(a_ids) == 1 and len(b_ids) == 1 and a_ids != b_ids
    (a,) = a_ids
    assert find_gaps(linked, 5) == [(a, 2, 5)]
    filled, again, interp = fill_gaps(linked, 5)
    assert (again, interp) == (0, 2)
    got = [f for f in filled[3] if f.track == a][0]
    assert got.interpolated and got.box[0] == pytest.approx(25.0)  # a third of the way from x=20 to x=35
    np.testing.assert_allclose(got.landmarks, frames[2][0].landmarks + (frames[5][0].landmarks
                                                                          - frames[2][0].landmarks) / 3)
    assert tracked_share(filled)[a] == 1.0
    index = track_indices(filled)
    assert index[a] == 0  # the longest track is face 0 in every frame


def test_long_gaps_and_size_changes_are_not_filled():
    frames = [(_face(10),)] + [()] * 6 + [(_face(10),)]
    linked = link_tracks(frames, max_gap=5)
    assert linked[0][0].track != linked[-1][0].track and fill_gaps(linked, 5)[2] == 0
    sizes = [(100, 100), (100, 100), (50, 50), (100, 100)]
    frames = [(_face(10),), (), (), (_face(10),)]
    linked = link_tracks(frames, 5, sizes=sizes)
    assert linked[0][0].track != linked[3][0].track  # a size change ends every track
    assert fill_gaps(linked, 5, sizes=sizes)[2] == 0


def test_relook_result_is_used_before_interpolating():
    frames = link_tracks([(_face(10),), (), (_face(20),)], 5)
    seen = []

    def relook(t, box, lm):
        seen.append((t, box))
        return _face(14)

    filled, again, interp = fill_gaps(frames, 5, relook)
    assert (again, interp) == (1, 0) and seen[0][0] == 1 and seen[0][1][0] == pytest.approx(15.0)
    assert not filled[1][0].interpolated and filled[1][0].track == frames[0][0].track


def test_sequence_auto_needs_numbered_frames():
    cfg = ExtractConfig()
    assert is_video([Path(f"{i:06d}.png") for i in range(5)], cfg)
    assert not is_video([Path("a.png"), Path("000002.png"), Path("3.png")], cfg)
    assert is_video([Path("a.png")] * 3, ExtractConfig(sequence="video"))
    assert not is_video([Path("1.png")] * 5, ExtractConfig(sequence="photos"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory, grace_hopper) -> Path:
    """Ten 240 px frames of Grace Hopper drifting right; frames 5-6 have the face covered by a textured block."""
    return drifting_face_clip(grace_hopper, tmp_path_factory.mktemp("clip") / "data_dst", 10, (4, 5))


CLIP_CFG = ExtractConfig(size=64, workers=1, second_look=False, max_gap=2)


def test_clip_gap_is_filled_and_marked(clip, tmp_path):
    out = tmp_path / "aligned"
    res = extract_faces(clip, out, CLIP_CFG)
    metas = {read_meta(p).source_frame: read_meta(p) for p in list_faces(out)}
    assert len(metas) == 10 and res.faces == 10 and res.tracks == 1
    assert res.interpolated + res.found_again == 2
    assert res.coverage == ((0, 10),) and res.summary()["coverage"] == "face 0: 10/10 frames (100%)"
    covered = [m for m in metas.values() if m.extra.get("interpolated")]
    assert len(covered) == res.interpolated
    assert {m.extra["track"] for m in metas.values()} == {0} and {m.face_index for m in metas.values()} == {0}
    assert all(m.extra["frame_faces"] == 1 for m in metas.values())


def test_resume_continues_tracks_without_duplicates(clip, tmp_path):
    out = tmp_path / "aligned"
    extract_faces(clip, out, CLIP_CFG)
    for p in list_faces(out):  # frames 6..10 lost, as after a kill
        if int(read_meta(p).frame_stem) > 5:
            p.unlink()
    (out / ".extract_state.json").unlink()
    res = extract_faces(clip, out, CLIP_CFG)
    assert res.skipped == 5 and res.processed == 5
    metas = [read_meta(p) for p in list_faces(out)]
    assert len(metas) == 10 and len({m.source_frame for m in metas}) == 10
    assert {m.extra["track"] for m in metas} == {0} and {m.face_index for m in metas} == {0}


def test_frame_cut_short_by_a_kill_is_redone(clip, tmp_path):
    out = tmp_path / "aligned"
    extract_faces(clip, out, CLIP_CFG)
    existing, complete = scan_faces(out)
    assert len(complete) == 10
    meta_path = list_faces(out)[0]
    from dataclasses import replace

    from facelab.workspace.faces import update_meta

    meta = read_meta(meta_path)
    unmarked = {k: v for k, v in meta.extra.items() if k != "frame_done"}
    update_meta(meta_path, replace(meta, extra=unmarked))  # the frame's last face was never written
    assert meta.source_frame not in scan_faces(out)[1]


def test_chunked_writing_matches_one_chunk(clip, tmp_path, monkeypatch):
    """Frames are tracked and written a few at a time; a gap across two chunks is filled the same way."""
    import facelab.extract.stage as stage

    whole = extract_faces(clip, tmp_path / "whole", CLIP_CFG)
    monkeypatch.setattr(stage, "CHUNK_FRAMES", 1)  # flush after every hold + 1 frames
    chunked = extract_faces(clip, tmp_path / "chunked", CLIP_CFG)
    assert (chunked.faces, chunked.interpolated, chunked.found_again) == (whole.faces, whole.interpolated,
                                                                         whole.found_again)
    for p in list_faces(tmp_path / "whole"):
        a, b = read_meta(p), read_meta(tmp_path / "chunked" / p.name)
        np.testing.assert_allclose(b.lm_frame, a.lm_frame, atol=1e-6)
        assert a.extra.get("interpolated") == b.extra.get("interpolated")


def test_track_fields_are_backward_compatible_and_validated(clip, tmp_path):
    """Older face files (no track keys) read as untracked; hostile values never pass as a track or a flag."""
    from dataclasses import replace

    from facelab.workspace.faces import doc_to_meta, meta_to_doc, migrate, update_meta

    out = tmp_path / "aligned"
    extract_faces(clip, out, CLIP_CFG)
    path = list_faces(out)[0]
    meta = read_meta(path)
    assert meta.track == 0 and meta.interpolated in (True, False)
    old = {k: v for k, v in meta.extra.items() if k not in ("track", "interpolated", "refound", "frame_faces", "frame_done")}
    update_meta(path, replace(meta, extra=old))
    legacy = read_meta(path)
    assert legacy.track is None and legacy.interpolated is False
    assert scan_faces(out)[1] >= {legacy.source_frame}  # face 0 present: complete, as before
    doc = meta_to_doc(meta)
    doc0 = {k: v for k, v in doc.items() if k not in ("landmarks_frame", "landmarks_face", "masks", "extra")}
    doc0.update(schema_version=0, landmarks=doc["landmarks_frame"])
    assert doc_to_meta(migrate(doc0)).track is None
    for bad in ({"track": "0", "interpolated": 1}, {"track": -3, "interpolated": "yes"}, {"track": True}):
        m = replace(meta, extra=bad)
        assert m.track is None and m.interpolated is False
    with pytest.raises(ValueError):
        doc_to_meta({**doc, "extra": {"track": [1, 2]}})


def test_blank_frames_are_not_given_a_face():
    from facelab.extract.track import looks_blank

    flat = np.full((100, 100, 3), (180, 150, 130), np.uint8)  # flat colour: channels differ, the image does not
    textured = np.random.default_rng(0).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    assert looks_blank(flat, (10, 10, 60, 60)) and not looks_blank(textured, (10, 10, 60, 60))
    assert looks_blank(textured, (200, 200, 260, 260))  # off the frame
    frames = link_tracks([(_face(10),), (), (), (_face(10),)], 5)
    filled, _, interp = fill_gaps(frames, 5, blank=lambda t, box: t == 2)
    assert interp == 1 and filled[1] and not filled[2]


def test_two_people_keep_their_face_index_when_one_is_missed(tmp_path, astronaut, grace_hopper):
    """Astronaut and Grace Hopper side by side; Grace is covered by a flat block on frames 3-4 (nothing to
    interpolate onto): both keep one face index in every frame, one track each across the gap."""
    d = tmp_path / "data_dst"
    d.mkdir()
    a = cv2.resize(astronaut, (240, 240), interpolation=cv2.INTER_AREA)
    g = cv2.resize(grace_hopper, (205, 240), interpolation=cv2.INTER_AREA)
    for t in range(5):
        canvas = np.full((240, 460, 3), 90, np.uint8)
        canvas[:, 2 * t:240 + 2 * t] = a
        canvas[:, 250:455] = g
        if t in (2, 3):
            canvas[20:230, 260:450] = (180, 150, 130)
        write_image(d / f"{t + 1:06d}.png", canvas)
    res = extract_faces(d, tmp_path / "aligned", ExtractConfig(size=64, workers=1, second_look=False))
    metas = [read_meta(p) for p in list_faces(tmp_path / "aligned")]
    left = {m.face_index for m in metas if m.box[0] < 250}
    right = {m.face_index for m in metas if m.box[0] >= 250}
    assert res.tracks == 2 and len(left) == 1 and len(right) == 1 and left != right
    assert sum(m.box[0] < 250 for m in metas) == 5 and sum(m.box[0] >= 250 for m in metas) == 3


def _person(face: FoundFace, who: int) -> FoundFace:
    """``face`` tagged with a person (kept in ``score``) for the identity below."""
    return FoundFace(face.box, face.landmarks, float(who), face.fit, face.residual)


def _identity(t: int, face: FoundFace) -> np.ndarray:
    """Person 0 and person 1 lie 1.0 apart (different), each face 0.1 off its person's point (same)."""
    emb = np.zeros(128)
    emb[int(face.score)] = 1.0
    emb[2 + t % 3] = 0.1
    return emb


def test_identity_keeps_people_on_their_tracks_where_overlap_would_swap_them():
    """Two people swap places between frames 1 and 2; then person 1 leaves for 3 frames and comes back where
    person 0 was (who moved). Overlap alone swaps or splits them; identity keeps one track per person."""
    layout = [(10, 300)] * 2 + [(300, 10)] * 2 + [(300, None)] * 3 + [(10, 300)] * 2  # x of person 0, person 1
    frames = [tuple(_person(_face(x), who) for who, x in enumerate(xs) if x is not None) for xs in layout]
    calls = []

    def embed(t, face):
        calls.append(t)
        return _identity(t, face)

    def tracks_of(linked):
        return [{f.track for faces in linked for f in faces if f.score == who} for who in (0, 1)]

    a, b = tracks_of(link_tracks(frames, max_gap=5, embed=embed))
    assert len(a) == 1 and len(b) == 1 and a != b
    a, b = tracks_of(link_tracks(frames, max_gap=5))  # overlap alone
    assert len(a) > 1 or len(b) > 1 or a == b
    identities = {}
    link_tracks(frames, max_gap=5, embed=_identity, identities=identities)  # the state carried between windows
    assert all(len(mean) == 128 and isinstance(mean[0], float) and n >= 1 for mean, n in identities.values())


def test_identity_refuses_another_persons_track_and_prefers_the_closer_one():
    from facelab.extract.track import LinkConfig, link_score

    assert link_score(0.8, None) == 0.8 and link_score(0.2, 0.1) is None
    assert link_score(0.9, 0.7) is None and link_score(0.9, 0.7, LinkConfig(max_distance=0.8)) is not None
    assert link_score(0.5, 0.2) > link_score(0.7, 0.5)  # the closer identity wins over a little more overlap
    # two people cross: both faces overlap both tracks; overlap alone would give the track to the wrong face
    frames = [(_person(_face(10), 0), _person(_face(60), 1)), (_person(_face(40), 0), _person(_face(30), 1)),
              (_person(_face(70), 0), _person(_face(0), 1))]
    linked = link_tracks(frames, max_gap=5, embed=_identity)
    for who in (0, 1):
        assert len({f.track for faces in linked for f in faces if f.score == who}) == 1


def test_one_face_links_without_identity(clip, tmp_path, monkeypatch):
    """The common case stays as cheap as overlap alone: a single face through a video (with a covered gap) is
    never embedded; a lone face back after a gap elsewhere costs at most one embedding per track and face."""
    from facelab.landmarks.dlib68 import DlibIdentity

    real, calls = DlibIdentity.embed, []

    def counted(self, image, landmarks):
        calls.append(1)
        return real(self, image, landmarks)

    monkeypatch.setattr(DlibIdentity, "embed", counted)
    res = extract_faces(clip, tmp_path / "aligned", CLIP_CFG)
    assert res.tracks == 1 and calls == []
    frames = [(_face(10),), (), (_face(200),), (_face(205),)]  # back elsewhere: identity asked once a side
    seen = []
    linked = link_tracks(frames, 5, embed=lambda t, f: seen.append(t) or np.zeros(128))
    assert sorted(seen) == [0, 2] and len({f.track for faces in linked for f in faces}) == 1


def _swap_clip(folder: Path, astronaut: np.ndarray, grace_hopper: np.ndarray) -> list[tuple]:
    """Astronaut (0) and Grace Hopper (1) in a left and a right place; returns who is where in each frame."""
    folder.mkdir()
    people = [cv2.resize(astronaut, (220, 240), interpolation=cv2.INTER_AREA),
              cv2.resize(grace_hopper, (205, 240), interpolation=cv2.INTER_AREA)]
    layout = [(0, 1)] * 2 + [(1, 0)] * 2 + [(None, 0)] * 3 + [(1, 0)] * 2  # (left, right); 1 away for 3 frames
    for t, (left, right) in enumerate(layout):
        canvas = np.full((240, 480, 3), 90, np.uint8)
        for who, x in ((left, 10), (right, 255)):
            if who is not None:
                canvas[:, x:x + people[who].shape[1]] = people[who]
        write_image(folder / f"{t + 1:06d}.png", canvas)
    return layout


@pytest.mark.parametrize("how", ["whole", "chunks", "resumed"])
def test_video_people_swapping_places_keep_their_face_index(tmp_path, astronaut, grace_hopper, monkeypatch, how):
    """Real faces through the stage: the two swap places between frames 1 and 2 (overlap alone would swap
    their tracks), Grace leaves for 3 frames and comes back where the astronaut was; every face found in a frame
    keeps its person's face index, also when written a few frames at a time, and when a rerun after a kill
    continues from the frames before the swap (their identities then come from the faces on disk)."""
    import facelab.extract.stage as stage

    if how == "chunks":
        monkeypatch.setattr(stage, "CHUNK_FRAMES", 1)
    layout = _swap_clip(tmp_path / "data_dst", astronaut, grace_hopper)
    cfg = ExtractConfig(size=64, workers=1, second_look=False)
    res = extract_faces(tmp_path / "data_dst", tmp_path / "aligned", cfg)
    if how == "resumed":
        for p in list_faces(tmp_path / "aligned"):  # killed before the swap was written
            if int(read_meta(p).frame_stem) > 2:
                p.unlink()
        (tmp_path / "aligned" / ".extract_state.json").unlink()
        res = extract_faces(tmp_path / "data_dst", tmp_path / "aligned", cfg)
        assert res.skipped == 2
    index: dict[int, set[int]] = {0: set(), 1: set()}
    found = 0
    for p in list_faces(tmp_path / "aligned"):
        m = read_meta(p)
        if m.extra.get("interpolated") or m.extra.get("refound"):
            continue
        place = 0 if (m.box[0] + m.box[2]) / 2 < 240 else 1
        who = layout[int(m.frame_stem) - 1][place]
        assert who is not None
        index[who].add(m.face_index)
        found += 1
    assert found == 15 and res.tracks == 2
    per_index: dict[int, set[str]] = {}
    for p in list_faces(tmp_path / "aligned"):
        m = read_meta(p)
        per_index.setdefault(m.face_index, set()).add(m.source_frame)
    assert res.coverage == tuple((i, len(f)) for i, f in sorted(per_index.items())) and len(res.coverage) == 2
    assert len(index[0]) == 1 and len(index[1]) == 1 and index[0] != index[1]


def test_gap_is_not_filled_onto_another_tracks_face():
    frames = [(_person(_face(10), 0),), (_person(_face(100), 1),), (_person(_face(200), 0), _person(_face(110), 1))]
    linked = link_tracks(frames, 5, embed=_identity)
    filled, _, interp = fill_gaps(linked, 5, relook=lambda t, box, lm: _face(100))
    assert interp == 0 and len(filled[1]) == 1  # person 0's gap passes over person 1's face: left alone
