"""Whether a frames folder is a video, and the video pass of the stage: faces written earlier (resume), tracks,
gaps looked at again and filled, one face index per track for the whole video.

Frames are tracked and written in chunks as they come: each chunk is linked to the frames written before it (read
back from their face files, so a rerun after a kill continues the same tracks), and its last ``max_gap + 1``
frames wait for the next chunk, so a gap is only filled once both of its ends are known.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import numpy as np

from facelab.detect.dlib_backends import dlib_available
from facelab.errors import FaceFileError
from facelab.extract.config import ExtractConfig
from facelab.extract.frame import FaceFinder, FoundFace, FrameFaces
from facelab.extract.track import Box, fill_gaps, link_tracks, looks_blank, order_by_track, track_indices
from facelab.landmarks import DlibIdentity
from facelab.workspace.faces import read_meta
from facelab.workspace.images import read_image

log = logging.getLogger(__name__)
MIN_VIDEO_FRAMES = 3
CHUNK_FRAMES = 64  # frames tracked and written together (plus the ones held back for the next gap)
FRAMES_KEPT = 3  # frame images kept in memory while tracking (gap frames come in order; identity looks back)

Seeded = tuple[tuple[FoundFace, ...], tuple[int, int] | None, dict[int, int]]


def is_video(frames: list[Path], cfg: ExtractConfig) -> bool:
    """``sequence`` resolved: auto = a video's frames when there are a few and every name is a number."""
    if cfg.sequence != "auto":
        return cfg.sequence == "video"
    return len(frames) >= MIN_VIDEO_FRAMES and all(p.stem.isdigit() for p in frames)


def _num(extra, key: str, default: float) -> float:
    v = extra.get(key, default)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def seed_faces(paths: list[Path]) -> Seeded:
    """Faces written earlier for one frame, as tracked FoundFaces (unreadable or untracked files left out), the
    frame size, and each track's face index."""
    faces, index, size = [], {}, None
    for path in paths:
        try:
            meta = read_meta(path)
        except FaceFileError:
            continue
        track = meta.track
        if track is None:
            continue
        e = meta.extra
        faces.append(FoundFace(tuple(meta.box), meta.lm_frame, _num(e, "score", 0.0), _num(e, "fit", 0.0),
                               _num(e, "residual", 0.0), 0, None, track, meta.interpolated))
        index[track] = meta.face_index
        size = tuple(meta.frame_size)
    return tuple(faces), size, index  # type: ignore[return-value]


class VideoTracker:
    """Tracks the faces of one video's frames over successive calls (see the module docstring).

    ``order``: every frame of the video in order; ``done``: face files of frames finished earlier, by frame
    (updated with :meth:`written`); ``finder()``: the FaceFinder that looks again in gaps (built on first need).
    Each track's running identity is kept between calls in memory only: after a rerun it starts again from the
    track's last face on disk, embedded when first needed.
    """

    def __init__(self, order: list[str], done: dict[str, list[Path]], cfg: ExtractConfig,
                 frame_path: Callable[[str], Path], finder: Callable[[], FaceFinder]) -> None:
        self.order, self.cfg, self.frame_path, self.finder = order, cfg, frame_path, finder
        self.position = {name: t for t, name in enumerate(order)}
        self._seeded: dict[str, Seeded] = {}
        self.index: dict[int, int] = {}
        self.identities: dict[int, tuple[list[float], int]] = {}
        self._identity: DlibIdentity | bool | None = None  # built on first need; False: dlib missing
        self._embedded: dict[tuple[str, Box], np.ndarray | None] = {}
        self.done = dict(done)
        for paths in self.done.values():  # every track of an earlier run keeps its face index
            self.index.update(seed_faces(paths)[2])

    @property
    def hold(self) -> int:
        """Frames kept back at the end of a chunk: a gap ending there is filled with the next chunk."""
        return self.cfg.max_gap + 1

    def _identity_net(self) -> DlibIdentity | None:
        if self._identity is None:
            self._identity = DlibIdentity() if dlib_available(need_models=True)[0] else False
            if not self._identity:
                log.warning("dlib's face recognition model is missing: video tracks link by overlap alone")
        return self._identity or None

    def written(self, name: str, paths: list[Path]) -> None:
        self.done[name] = list(paths)
        self._seeded.pop(name, None)

    def _seed(self, name: str) -> Seeded:
        if name not in self._seeded:
            self._seeded[name] = seed_faces(self.done.get(name, []))
        return self._seeded[name]

    def track(self, pending: dict[str, FrameFaces]) -> dict[str, FrameFaces]:
        """``pending`` (frames found and not written) with track ids, gaps filled, sorted by face index."""
        if not pending:
            return {}
        ts = sorted(self.position[n] for n in pending)
        window = self.order[max(0, ts[0] - self.hold): ts[-1] + 1]
        frames: list[tuple[FoundFace, ...]] = []
        sizes: list[tuple[int, int] | None] = []
        for name in window:
            if name in pending:
                frames.append(tuple(pending[name].faces))
                sizes.append(tuple(pending[name].frame_size))  # type: ignore[arg-type]
            else:
                faces, size, _ = self._seed(name)
                frames.append(faces)
                sizes.append(size)
        images: dict[int, np.ndarray] = {}

        def image(t: int) -> np.ndarray:
            if t not in images:
                if len(images) >= FRAMES_KEPT:
                    images.pop(next(iter(images)))
                images[t] = read_image(self.frame_path(window[t]))
            return images[t]

        def embed(t: int, face: FoundFace) -> np.ndarray | None:
            key = (window[t], tuple(face.box))
            if key not in self._embedded:
                net = self._identity_net()
                self._embedded[key] = None if net is None else net.embed(image(t), face.landmarks)
            return self._embedded[key]

        frames = link_tracks(frames, self.cfg.max_gap, sizes=sizes, first_id=1 + max(self.index, default=-1),
                             embed=embed, identities=self.identities)
        self._embedded = {k: v for k, v in self._embedded.items() if k[0] in pending}  # held back: asked again

        def relook(t: int, box, lm: np.ndarray) -> FoundFace | None:
            if window[t] not in pending:  # written earlier: its faces stay as they are
                return None
            return self.finder().relook(image(t), box)

        def blank(t: int, box) -> bool:
            return window[t] not in pending or looks_blank(image(t), box)

        filled, _, _ = fill_gaps(frames, self.cfg.max_gap, relook, sizes, blank)
        self.index = track_indices(filled, self.index)
        where = {name: t for t, name in enumerate(window)}
        return {name: order_by_track(ff, filled[where[name]], self.index) for name, ff in pending.items()}


def face_indices(faces: tuple[FoundFace, ...], index: dict[int, int] | None) -> list[int]:
    """Face index of each face: its track's, or its position when untracked."""
    if index is None or any(f.track < 0 for f in faces):
        return list(range(len(faces)))
    return [index[f.track] for f in faces]
