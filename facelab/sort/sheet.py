"""Contact sheet of aligned faces, optionally with landmarks and masks drawn."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from facelab.align.masks import hull_mask
from facelab.errors import FacelabError
from facelab.utils.items import ItemErrors, run_items
from facelab.workspace.faces import Face, FaceMeta, list_faces, read_face, read_meta
from facelab.workspace.images import write_image

LABEL_H = 14
POOR_FIT = 1.0  # extract's face check (HOG score of the aligned crop + detector score) below this: a doubtful fit
POOR_RESIDUAL = 0.075  # RMS misfit of the alignment landmarks to the mean face (face width ~1) above this
ISSUE_COLOURS = {"interp": (255, 200, 0), "shape": (255, 40, 40), "fit": (255, 40, 40)}


def _number(extra, key: str) -> float | None:
    v = extra.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def fit_issue(meta: FaceMeta) -> str | None:
    """Why a face's landmark fit is doubtful, from what extract recorded: ``interp`` (interpolated across a
    track's gap, not found in its frame), ``shape`` (landmarks far from a face shape), ``fit`` (the aligned crop
    hardly looks like a face); None when nothing is wrong or nothing was recorded."""
    if meta.interpolated:
        return "interp"
    residual, fit = _number(meta.extra, "residual"), _number(meta.extra, "fit")
    if residual is not None and residual > POOR_RESIDUAL:
        return "shape"
    if fit is not None and fit < POOR_FIT:
        return "fit"
    return None


def fit_badness(meta: FaceMeta) -> float:
    """Larger for worse landmark fits (for sorting): interpolated first, then residual over its limit, then a
    low face check."""
    residual = _number(meta.extra, "residual") or 0.0
    fit = _number(meta.extra, "fit")
    return (2.0 if meta.interpolated else 0.0) + residual / POOR_RESIDUAL + \
        (max(0.0, POOR_FIT - fit) if fit is not None else 0.0)


def _face_mask(face: Face) -> np.ndarray:
    """The first stored mask on the face grid, else the landmark hull."""
    if face.meta.masks:
        return face.meta.masks[0].to_face(face.meta.size)
    return hull_mask(face.meta.lm_face, face.meta.size)


def render_tile(face: Face, thumb: int, landmarks: bool, masks: bool, label: str,
                mark_poor: bool = True) -> np.ndarray:
    """One (thumb + LABEL_H, thumb, 3) uint8 tile; a doubtful landmark fit (:func:`fit_issue`) gets a coloured
    frame and its reason before the label."""
    img = cv2.resize(face.image, (thumb, thumb), interpolation=cv2.INTER_AREA)
    scale = thumb / float(face.image.shape[0])
    if masks:
        m = cv2.resize(_face_mask(face).astype(np.float32), (thumb, thumb), interpolation=cv2.INTER_LINEAR)
        tint = img.astype(np.float32)
        tint[..., 0] = tint[..., 0] * (1 - 0.45 * m) + 255 * 0.45 * m
        img = np.clip(tint, 0, 255).astype(np.uint8)
        contours, _ = cv2.findContours((m > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (255, 40, 40), 1)
    if landmarks:
        for x, y in face.meta.lm_face * scale:
            cv2.circle(img, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1)
    issue = fit_issue(face.meta) if mark_poor else None
    if issue is not None:
        cv2.rectangle(img, (1, 1), (thumb - 2, thumb - 2), ISSUE_COLOURS[issue], max(2, thumb // 40))
        label = f"!{issue} {label}"
    tile = np.zeros((thumb + LABEL_H, thumb, 3), np.uint8)
    tile[:thumb] = img
    cv2.putText(tile, label[:24], (2, thumb + LABEL_H - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (230, 230, 230), 1,
                cv2.LINE_AA)
    return tile


def contact_sheet(folder: str | os.PathLike, out: str | os.PathLike | None = None, *, cols: int = 8,
                  max_faces: int = 64, thumb: int = 128, landmarks: bool = False, masks: bool = False,
                  errors: ItemErrors | None = None, mark_poor: bool = True) -> Path:
    """Write a PNG grid of up to ``max_faces`` faces of ``folder`` (evenly spread over the folder); returns it.
    With ``mark_poor`` the faces with a doubtful landmark fit come first, framed and labelled with the reason.
    Files that cannot be shown are left out and recorded in ``errors``."""
    folder = Path(folder)
    errors = errors if errors is not None else ItemErrors()
    metas = list(run_items(list_faces(folder), read_meta, errors))
    if not metas:
        raise FacelabError(f"no readable face files in {folder}; run extract first or pass the aligned folder")
    poor = [p for p, m in metas if mark_poor and fit_issue(m) is not None]
    rest = [p for p, m in metas if not (mark_poor and fit_issue(m) is not None)]
    if max_faces > 0:
        poor = poor[:max_faces]
        room = max_faces - len(poor)
        if len(rest) > room:
            rest = [rest[i] for i in np.linspace(0, len(rest) - 1, room).round().astype(int)] if room > 0 else []
    paths = poor + rest
    tiles = [tile for _, tile in run_items(
        paths, lambda p: render_tile(read_face(p), thumb, landmarks, masks, p.stem, mark_poor), errors)]
    if not tiles:
        raise FacelabError(f"none of the face files in {folder} could be decoded")
    cols = max(1, min(cols, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    th, tw = tiles[0].shape[:2]
    sheet = np.full((rows * th, cols * tw, 3), 32, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * th:(r + 1) * th, c * tw:(c + 1) * tw] = t
    out = Path(out) if out is not None else folder.parent / f"{folder.name}_sheet.png"
    write_image(out, sheet)
    return out
