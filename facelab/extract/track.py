"""Faces through a video: link them into tracks, look again where a track loses its face, fill short gaps.

Tracks link by box overlap with each track's box carried forward at its last velocity. A track that misses its
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

LINK_IOU = 0.3  # least overlap of a face with a track's predicted box to join it
BLANK_STD = 6.0  # grey-level spread (0-255) under which a predicted face region is blank: nothing to interpolate
Box = tuple[float, float, float, float]
#: (frame position, predicted box, interpolated landmarks) -> a face found there, or None
Relook = Callable[[int, Box, np.ndarray], FoundFace | None]
#: (frame position, predicted box) -> True when there is nothing there to put a face on (a blank or faded frame)
Blank = Callable[[int, Box], bool]


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


@dataclass
class _Track:
    last: int
    box: Box
    velocity: tuple[float, float] = (0.0, 0.0)

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


def link_tracks(frames: list[tuple[FoundFace, ...]], max_gap: int, min_iou: float = LINK_IOU,
                sizes: list[tuple[int, int] | None] | None = None, first_id: int = 0) -> list[tuple[FoundFace, ...]]:
    """Give every face a track id (``FoundFace.track``); faces that already have one (resumed) keep it.

    Greedy by overlap with the track's box, as it was or carried on at its last velocity (whichever overlaps
    more: a jittery box's velocity overshoots over a gap), frame by frame: a track stays open for ``max_gap``
    frames after it last held a face, and
    ends where the frame size (``sizes``, when given) changes. New ids start at ``first_id`` or above the ids
    present."""
    tracks: dict[int, _Track] = {}
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
        taken = {i for i in ids if i >= 0}
        pairs = sorted(((max(box_iou(tr.predict(t), f.box), box_iou(tr.box, f.box)), tid, k)
                        for tid, tr in tracks.items()
                        if t - tr.last <= max_gap + 1 and tid not in taken
                        for k, f in enumerate(faces) if ids[k] < 0), reverse=True)
        for iou, tid, k in pairs:
            if iou < min_iou:
                break
            if ids[k] < 0 and tid not in taken:
                ids[k] = tid
                taken.add(tid)
        for k in range(len(faces)):
            if ids[k] < 0:
                ids[k], next_id = next_id, next_id + 1
        for f, tid in zip(faces, ids, strict=True):
            if tid in tracks:
                tracks[tid].update(t, f.box)
            else:
                tracks[tid] = _Track(t, f.box)
        out.append(tuple(replace(f, track=tid) for f, tid in zip(faces, ids, strict=True)))
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


def fill_gaps(frames: list[tuple[FoundFace, ...]], max_gap: int, relook: Relook | None = None,
              sizes: list[tuple[int, int] | None] | None = None, blank: Blank | None = None
              ) -> tuple[list[tuple[FoundFace, ...]], int, int]:
    """Frames with each short gap filled: by ``relook`` where it finds the face, else by landmarks interpolated
    linearly between the gap's ends (``interpolated=True``) unless ``blank`` says the frame has nothing there. A
    gap frame of another size than the gap's ends (``sizes``; None: unknown, e.g. unreadable) is left alone.
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
