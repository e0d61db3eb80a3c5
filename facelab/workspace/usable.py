"""Whether a face file that parses can be used by a stage: its source frame inside the workspace and landmarks a
face transform can be fitted to. A face file may come from anyone, so it may be bad in ways no parser sees."""

from __future__ import annotations

import os
from pathlib import Path

from facelab.align import face_transform, invert_affine
from facelab.workspace.faces import FaceMeta
from facelab.workspace.layout import Workspace


def check_usable(meta: FaceMeta, face_file: str | os.PathLike[str], ws: Workspace | None = None) -> Path | None:
    """Raise when face file ``face_file`` (with metadata ``meta``) cannot be used; returns its source frame.

    With ``ws`` the source frame goes through the workspace's path guard (:meth:`Workspace.frame_path`, which
    raises :class:`facelab.errors.FaceFileError`); the frame and face landmarks must each give an invertible face
    transform (else ``ValueError`` / ``numpy.linalg.LinAlgError``). Stages call it inside their per-item policy
    (:mod:`facelab.utils.items`), so a refused file is a named skip.
    """
    frame = ws.frame_path(meta, face_file) if ws is not None else None
    for landmarks in (meta.lm_frame, meta.lm_face):
        invert_affine(face_transform(landmarks, max(meta.size, 64), "full"))
    return frame
