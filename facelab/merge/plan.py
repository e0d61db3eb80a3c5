"""The merge plan: which frames exist, which face files belong to each, and their (smoothed) landmarks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelab.errors import FacelabError
from facelab.merge.config import MergeConfig, MergeSettings
from facelab.merge.masks import parse_mask_mode
from facelab.merge.render import StoredMask
from facelab.merge.temporal import motion_at, smooth_tracks
from facelab.utils.items import ItemErrors
from facelab.workspace.faces import FaceMeta, list_faces, read_meta
from facelab.workspace.images import list_images
from facelab.workspace.layout import Workspace
from facelab.workspace.usable import check_usable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedFace:
    path: Path
    meta: FaceMeta
    landmarks: np.ndarray  # (68, 2) frame landmarks used for the transform (smoothed when on)

    @property
    def index(self) -> int:
        return self.meta.face_index

    def stored_masks(self) -> dict[str, StoredMask]:
        return {m.name: StoredMask(m, self.meta.mat, self.meta.size) for m in self.meta.masks}


@dataclass(frozen=True)
class PlannedFrame:
    pos: int  # position in the sorted frame list
    number: int  # frame number used by frame ranges
    path: Path
    cfg: MergeConfig
    faces: tuple[PlannedFace, ...] = ()
    motion: tuple[float, float] = (0.0, 0.0)

    @property
    def stem(self) -> str:
        return self.path.stem


@dataclass(frozen=True)
class MergePlan:
    frames: tuple[PlannedFrame, ...]
    bad_faces: int = 0  # face files skipped as unreadable or unusable (named in ``failures``)
    orphan_faces: int = 0  # face files whose frame is not in the frames folder
    failures: tuple[str, ...] = ()  # "face file: why" of every skipped face file


def frame_number(path: Path, pos: int) -> int:
    """The digits of the stem (``000010.png`` -> 10); the 1-based position when the stem is not a number."""
    return int(path.stem) if path.stem.isdigit() else pos + 1


def read_face_metas(aligned: Path, errors: ItemErrors, ws: Workspace | None = None
                    ) -> dict[str, dict[int, tuple[Path, FaceMeta]]]:
    """Face files of ``aligned`` grouped by frame stem and face index; unreadable or unusable files
    (:func:`facelab.workspace.usable.check_usable`) are skipped and recorded in ``errors``."""
    grouped: dict[str, dict[int, tuple[Path, FaceMeta]]] = {}
    for path in list_faces(aligned):
        with errors.guard(path.name):
            meta = read_meta(path)
            check_usable(meta, path, ws)
            per_frame = grouped.setdefault(meta.frame_stem, {})
            if meta.face_index in per_frame:
                log.warning("%s repeats face %d of frame %s; keeping %s", path.name, meta.face_index,
                            meta.frame_stem, per_frame[meta.face_index][0].name)
                continue
            per_frame[meta.face_index] = (path, meta)
    return grouped


def build_plan(frames_dir: Path, aligned_dir: Path, settings: MergeSettings, ws: Workspace | None = None
               ) -> MergePlan:
    """Pair frames with their face files, smooth each face's landmark track, attach per-frame settings.

    Face files that cannot be used are left out (counted and named in the plan); with ``ws`` their source frame
    must also lie inside it."""
    frames = list_images(frames_dir)
    if not frames:
        raise FacelabError(f"no frames in {frames_dir}; run `python main.py video extract` first")
    errors = ItemErrors()
    grouped = read_face_metas(aligned_dir, errors, ws)
    stems = {p.stem for p in frames}
    orphans = sum(len(v) for k, v in grouped.items() if k not in stems)
    per_frame = [grouped.get(p.stem, {}) for p in frames]
    raw_lm = [{i: pm[1].lm_frame for i, pm in faces.items()} for faces in per_frame]
    base = settings.base
    lms = smooth_tracks(raw_lm, base.smooth_window) if base.smooth else raw_lm
    planned = []
    for pos, (path, faces) in enumerate(zip(frames, per_frame, strict=True)):
        number = frame_number(path, pos)
        cfg = settings.for_frame(number)
        pf = tuple(PlannedFace(faces[i][0], faces[i][1], np.asarray(lms[pos][i], np.float64)) for i in sorted(faces))
        check_stored(cfg, pf)
        motion = motion_at(lms, pos) if cfg.motion_blur > 0 else (0.0, 0.0)
        planned.append(PlannedFrame(pos, number, path, cfg, pf, motion))
    return MergePlan(tuple(planned), len(errors), orphans, errors.as_tuple())


def check_stored(cfg: MergeConfig, faces: tuple[PlannedFace, ...]) -> None:
    """Raise :class:`FacelabError` when the mask mode names a stored mask some of ``faces`` do not hold."""
    name = parse_mask_mode(cfg.mask_mode).stored
    if name is None:
        return
    for face in faces:
        if face.meta.mask(name) is None:
            have = ", ".join(m.name for m in face.meta.masks) or "none"
            raise FacelabError(f"{face.path} has no stored mask {name!r} (it has: {have}); run `python main.py mask` "
                               f"on data_dst/aligned or choose another --mask-mode")
