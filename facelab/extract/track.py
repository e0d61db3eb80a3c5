"""Faces through a video: link them into tracks, look again where a track loses its face, fill short gaps.

Tracks link by box overlap with each track's box carried forward at its last velocity, and by identity (dlib's
128-D face embedding against each track's running mean) only where overlap is in doubt: several faces or open
tracks in a frame (a link to another person's track is refused, the closer identity wins), or a face and a track
left unlinked (a crossing, or a person back after a short gap, rejoins their own track). A track that misses its
face for at most ``max_gap`` frames and finds it again is looked at once more in those frames (dlib's CNN in the
predicted region, then the landmark model in the predicted box with the HOG face check); what is still missing
gets landmarks interpolated between the two ends, marked ``interpolated`` so sort and merge can tell. Each track
keeps one face index for the whole video (the longest track is 0), so ``--reference``, merge and its temporal
smoothing follow the same person from frame to frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from facelab.detect.combine import box_iou
from facelab.extract.frame import FoundFace, FrameFaces

BLANK_STD = 6.0  # grey-level spread (0-255) under which a predicted face region is blank: nothing to interpolate
Box = tuple[float, float, float, float]
#: (frame position, predicted box, interpolated landmarks) -> a face found there, or None
Relook = Callable[[int, Box, np.ndarray], FoundFace | None]
#: (frame position, predicted box) -> True when there is nothing there to put a face on (a blank or faded frame)
Blank = Callable[[int, Box], bool]
#: (frame position, face) -> its 128-D identity embedding, or None where it has none
Embed = Callable[[int, FoundFace], np.ndarray | None]


def looks_blank(image: np.ndarray, box: Box, max_std: float = BLANK_STD) -> bool:
    """Whether the part of uint8 ``image`` inside ``box`` is (nearly) flat, or the box is off the image."""
    h, w = image.shape[:2]
    x0, y0 = int(max(0, box[0])), int(max(0, box[1]))
    x1, y1 = int(min(w, box[2])), int(min(h, box[3]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return True
    region = image[y0:y1, x0:x1].astype(np.float32)
    grey = region.mean(axis=2) if region.ndim == 3 else region
    return float(grey.std()) < max_std


@dataclass(frozen=True)
class LinkConfig:
    """How faces join tracks: by overlap, checked and decided by identity where that is in doubt.

    ``min_iou``: least overlap of a face with a track's box (as it was, or carried on at its last velocity) to
    join it by overlap; ``max_distance``: a link farther than this from the track's mean identity (dlib's 128-D
    embedding, Euclidean; dlib's same-person threshold) is refused; ``identity_weight``: a link's score is its
    overlap less this times its identity distance, so of two faces competing for a track the closer identity wins.
    """

    min_iou: float = 0.3
    max_distance: float = 0.6
    identity_weight: float = 1.0


LINK = LinkConfig()
LINK_IOU = LINK.min_iou  # also the overlap under which a gap filler is not on another track's face


@dataclass
class _Track:
    last: int
    box: Box
    velocity: tuple[float, float] = (0.0, 0.0)
    face: tuple[int, int] | None = None  # (frame, position) of the last face found (not interpolated) on it
    mean: np.ndarray | None = None  # running mean identity of the faces embedded on it
    count: int = 0

    def predict(self, t: int) -> Box:
        dt = t - self.last
        dx, dy = self.velocity[0] * dt, self.velocity[1] * dt
        return (self.box[0] + dx, self.box[1] + dy, self.box[2] + dx, self.box[3] + dy)

    def update(self, t: int, box: Box) -> None:
        dt = max(1, t - self.last)
        c0 = ((self.box[0] + self.box[2]) / 2.0, (self.box[1] + self.box[3]) / 2.0)
        c1 = ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        self.velocity = ((c1[0] - c0[0]) / dt, (c1[1] - c0[1]) / dt)
        self.last, self.box = t, box

    def add_identity(self, emb: np.ndarray) -> None:
        self.count += 1
        self.mean = emb.copy() if self.mean is None else self.mean + (emb - self.mean) / self.count


def link_score(iou: float, distance: float | None, link: LinkConfig = LINK) -> float | None:
    """Score of joining a face to a track (higher first), or None when the link is refused: too little overlap,
    or an identity too far from the track's (``distance``: None when not computed)."""
    if iou < link.min_iou or (distance is not None and distance > link.max_distance):
        return None
    return iou if distance is None else iou - link.identity_weight * distance


def _greedy(pairs: list[tuple[float, int, int]], ids: list[int], taken: set[int]) -> None:
    """Assign (score, track, face) pairs best first, each track and face once (``ids``, ``taken`` updated)."""
    for _, tid, k in sorted(pairs, reverse=True):
        if ids[k] < 0 and tid not in taken:
            ids[k] = tid
            taken.add(tid)


class _Identities:
    """Embeddings of faces, each computed once and only when asked, and each track's mean identity."""

    def __init__(self, frames: list[tuple[FoundFace, ...]], embed: Embed | None) -> None:
        self.frames, self.embed, self._cache = frames, embed, {}

    def face(self, t: int, k: int) -> np.ndarray | None:
        if self.embed is None:
            return None
        if (t, k) not in self._cache:
            emb = self.embed(t, self.frames[t][k])
            self._cache[(t, k)] = None if emb is None else np.asarray(emb, np.float64)
        return self._cache[(t, k)]

    def computed(self, t: int, k: int) -> np.ndarray | None:
        return self._cache.get((t, k))

    def track(self, tr: _Track) -> np.ndarray | None:
        if tr.mean is None and tr.face is not None:  # first need: the identity of its last face
            emb = self.face(*tr.face)
            if emb is not None:
                tr.add_identity(emb)
        return tr.mean

    def distance(self, tr: _Track, t: int, k: int) -> float | None:
        mean = self.track(tr)
        emb = self.face(t, k) if mean is not None else None
        return None if emb is None else float(np.linalg.norm(emb - mean))


def _link_frame(t: int, faces: tuple[FoundFace, ...], ids: list[int], live: dict[int, _Track],
                who: _Identities, link: LinkConfig) -> None:
    """Link the untracked faces of frame ``t`` to the ``live`` tracks (``ids`` updated).

    Overlap alone decides while one face meets one track (no embedding); where several faces or tracks are in
    play, identity checks and ranks every overlap link; a face still unlinked then joins a still unlinked open
    track of the same identity, nearest first (a crossing, or a re-appearance elsewhere after a short gap)."""
    free = [k for k in range(len(faces)) if ids[k] < 0]
    if not free or not live:
        return
    taken = {i for i in ids if i >= 0}
    doubt = who.embed is not None and (len(free) > 1 or len(live) > 1)
    pairs = []
    for tid, tr in live.items():
        for k in free:
            iou = max(box_iou(tr.predict(t), faces[k].box), box_iou(tr.box, faces[k].box))
            if iou < link.min_iou:
                continue
            score = link_score(iou, who.distance(tr, t, k) if doubt else None, link)
            if score is not None:
                pairs.append((score, tid, k))
    _greedy(pairs, ids, taken)
    left = [k for k in free if ids[k] < 0]
    lost = [tid for tid in live if tid not in taken]
    if who.embed is None or not left or not lost:
        return
    pairs = []
    for tid in lost:
        for k in left:
            d = who.distance(live[tid], t, k)
            if d is not None and d <= link.max_distance:
                pairs.append((-d, tid, k))
    _greedy(pairs, ids, taken)


def link_tracks(frames: list[tuple[FoundFace, ...]], max_gap: int, link: LinkConfig = LINK,
                sizes: list[tuple[int, int] | None] | None = None, first_id: int = 0, embed: Embed | None = None,
                identities: dict[int, tuple[list[float], int]] | None = None) -> list[tuple[FoundFace, ...]]:
    """Give every face a track id (``FoundFace.track``); faces that already have one (resumed) keep it.

    Frame by frame (see :func:`_link_frame`): a track stays open for ``max_gap`` frames after it last held a
    face, and ends where the frame size (``sizes``, when given) changes. ``embed(frame position, face)``: the
    face's 128-D identity (None: none), asked only where identity decides; without it, overlap alone links.
    ``identities``: track id -> (mean identity as a plain list, faces in it), read as the tracks' start and
    updated in place (so successive windows of one video share it). New ids start at ``first_id`` or above the
    ids present."""
    tracks: dict[int, _Track] = {}
    who = _Identities(frames, embed)
    known = identities if identities is not None else {}
    next_id = max(first_id, 1 + max((f.track for faces in frames for f in faces), default=-1))
    out = []
    last_size = None
    for t, faces in enumerate(frames):
        size = sizes[t] if sizes is not None else None
        if size is not None:
            if last_size is not None and size != last_size:
                tracks.clear()
            last_size = size
        ids = [f.track for f in faces]
        live = {tid: tr for tid, tr in tracks.items() if t - tr.last <= max_gap + 1 and tid not in ids}
        _link_frame(t, faces, ids, live, who, link)
        for k in range(len(faces)):
            if ids[k] < 0:
                ids[k], next_id = next_id, next_id + 1
        for k, (f, tid) in enumerate(zip(faces, ids, strict=True)):
            if tid in tracks:
                tracks[tid].update(t, f.box)
            else:
                tracks[tid] = tr = _Track(t, f.box)
                if tid in known:
                    tr.mean, tr.count = np.asarray(known[tid][0], np.float64), int(known[tid][1])
            if not f.interpolated:
                tracks[tid].face = (t, k)
            emb = who.computed(t, k)
            if emb is not None:
                tracks[tid].add_identity(emb)
        out.append(tuple(replace(f, track=tid) for f, tid in zip(faces, ids, strict=True)))
    for tid, tr in tracks.items():
        if tr.mean is not None:
            known[tid] = ([float(v) for v in tr.mean], tr.count)
    return out


def find_gaps(frames: list[tuple[FoundFace, ...]], max_gap: int) -> list[tuple[int, int, int]]:
    """(track, last frame with the face, next frame with it) for every gap of 1..``max_gap`` frames."""
    seen: dict[int, list[int]] = {}
    for t, faces in enumerate(frames):
        for f in faces:
            seen.setdefault(f.track, []).append(t)
    gaps = []
    for tid, ts in seen.items():
        for a, b in zip(ts, ts[1:], strict=False):
            if 1 < b - a <= max_gap + 1:
                gaps.append((tid, a, b))
    return gaps


def _lerp_box(a: Box, b: Box, w: float) -> Box:
    return tuple(float(x + (y - x) * w) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _occupied(faces: tuple[FoundFace, ...], box: Box, tid: int) -> bool:
    return any(f.track != tid and box_iou(f.box, box) >= LINK_IOU for f in faces)


def fill_gaps(frames: list[tuple[FoundFace, ...]], max_gap: int, relook: Relook | None = None,
              sizes: list[tuple[int, int] | None] | None = None, blank: Blank | None = None
              ) -> tuple[list[tuple[FoundFace, ...]], int, int]:
    """Frames with each short gap filled: by ``relook`` where it finds the face, else by landmarks interpolated
    linearly between the gap's ends (``interpolated=True``) unless ``blank`` says the frame has nothing there. A
    gap frame of another size than the gap's ends (``sizes``; None: unknown, e.g. unreadable), or where another
    track's face already is, is left alone.
    Returns (frames, found again, interpolated)."""
    out = [list(faces) for faces in frames]
    found = filled = 0
    for tid, a, b in find_gaps(frames, max_gap):
        fa = next(f for f in frames[a] if f.track == tid)
        fb = next(f for f in frames[b] if f.track == tid)
        for t in range(a + 1, b):
            if sizes is not None and (sizes[t] is None or sizes[t] != sizes[a]):
                continue
            w = (t - a) / float(b - a)
            box = _lerp_box(fa.box, fb.box, w)
            lm = fa.landmarks + (fb.landmarks - fa.landmarks) * w
            if _occupied(frames[t], box, tid):  # another track's face is there: not this one
                continue
            face = relook(t, box, lm) if relook is not None else None
            if face is not None:
                out[t].append(replace(face, track=tid, refound=True))
                found += 1
                continue
            if blank is not None and blank(t, box):
                continue
            out[t].append(FoundFace(box, lm, 0.0, fa.fit + (fb.fit - fa.fit) * w,
                                    fa.residual + (fb.residual - fa.residual) * w, 0, None, tid, True))
            filled += 1
    return [tuple(f) for f in out], found, filled


def track_indices(frames: list[tuple[FoundFace, ...]], fixed: dict[int, int] | None = None) -> dict[int, int]:
    """Face index of each track: ``fixed`` ones (resumed) kept, the others by frames held, most first."""
    fixed = dict(fixed or {})
    counts: dict[int, int] = {}
    for faces in frames:
        for f in faces:
            counts[f.track] = counts.get(f.track, 0) + 1
    free = (i for i in range(len(counts) + len(fixed) + 1) if i not in set(fixed.values()))
    for tid in sorted(counts, key=lambda k: (-counts[k], k)):
        if tid not in fixed:
            fixed[tid] = next(free)
    return fixed


def tracked_share(frames: list[tuple[FoundFace, ...]]) -> dict[int, float]:
    """Per track: frames holding its face over the frames from its first to its last appearance."""
    span: dict[int, list[int]] = {}
    for t, faces in enumerate(frames):
        for f in faces:
            span.setdefault(f.track, []).append(t)
    return {tid: len(ts) / float(ts[-1] - ts[0] + 1) for tid, ts in span.items()}


def order_by_track(found: FrameFaces, faces: tuple[FoundFace, ...], index: dict[int, int]) -> FrameFaces:
    """``found`` with ``faces`` sorted by their track's face index."""
    return replace(found, faces=tuple(sorted(faces, key=lambda f: index[f.track])))
