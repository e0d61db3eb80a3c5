"""Finding bad fits fast: debug frames label each face, the contact sheet puts doubtful fits first and frames
them, and `sort landmark-fit` orders them first."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from facekit import drifting_face_clip

from facelab.extract import ExtractConfig, extract_faces
from facelab.sort import SORT_METHODS, contact_sheet
from facelab.sort.sheet import fit_issue
from facelab.workspace.faces import list_faces, read_meta


@pytest.fixture(scope="module")
def aligned(tmp_path_factory, grace_hopper) -> Path:
    """Six frames of Grace Hopper; frames 3-4 covered by a textured block, so the track's gap is interpolated."""
    d = drifting_face_clip(grace_hopper, tmp_path_factory.mktemp("sheet") / "data_dst", 6, (2, 3), canvas=(250, 260),
                           top=8, step=3, block=(30, 210, 30, 230), follow=False)
    extract_faces(d, d / "aligned", ExtractConfig(size=64, workers=1, second_look=False, debug=True))
    return d / "aligned"


def test_interpolated_faces_are_marked_and_first(aligned, tmp_path):
    metas = {p.name: read_meta(p) for p in list_faces(aligned)}
    poor = sorted(n for n, m in metas.items() if fit_issue(m) == "interp")
    assert poor == ["000003_0.jpg", "000004_0.jpg"]
    sheet = cv2.cvtColor(cv2.imread(str(contact_sheet(aligned, tmp_path / "s.png", cols=6, thumb=64))),
                         cv2.COLOR_BGR2RGB)
    frame_of = lambda i: sheet[1:3, i * 64 + 10: i * 64 + 50].reshape(-1, 3)  # noqa: E731  top edge of tile i
    assert (np.abs(frame_of(0).astype(int) - (255, 200, 0)).max(1) < 40).all()  # first tile: framed (interp)
    assert not (np.abs(frame_of(2).astype(int) - (255, 200, 0)).max(1) < 40).all()  # third: a found face
    plain = cv2.imread(str(contact_sheet(aligned, tmp_path / "p.png", cols=6, thumb=64, mark_poor=False)))
    assert plain.shape == sheet.shape
    order = SORT_METHODS.get("landmark-fit").factory(list_faces(aligned)).order
    assert sorted(p.name for p in order[:2]) == poor


def test_debug_frames_show_interpolated_points(aligned):
    """One debug frame per frame; drawn (before JPEG), interpolated points are yellow and found ones green."""
    from dataclasses import replace

    from facelab.extract.sequence import seed_faces
    from facelab.extract.writer import draw_debug

    dbg = aligned.parent / "aligned_debug"
    assert sorted(p.name for p in dbg.iterdir()) == [f"{t:06d}.jpg" for t in range(1, 7)]
    (face,), _, _ = seed_faces([aligned / "000003_0.jpg"])
    assert face.interpolated and face.track == 0
    canvas = np.full((250, 260, 3), 90, np.uint8)
    for interp, colour in ((True, (255, 220, 0)), (False, (0, 255, 0))):
        drawn = draw_debug(canvas, (replace(face, interpolated=interp),), ExtractConfig(size=64), [0])
        assert ((drawn == colour).all(2)).sum() > 68
