"""Sort methods: each takes the face files of a folder and returns the kept order and the files to trash."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from facelab.align.pose import estimate_pose
from facelab.sort import measures as ms
from facelab.utils.items import ItemErrors, run_items
from facelab.utils.progress import Progress
from facelab.utils.registry import Registry
from facelab.workspace.faces import FaceMeta, read_face, read_meta

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SortPlan:
    order: tuple[Path, ...]  # kept files, first to last
    trash: tuple[Path, ...] = ()


#: ``method(paths, *, count, progress, errors) -> SortPlan``; files a method cannot use are left out of the plan
#: (untouched) and recorded in ``errors`` (an :class:`facelab.utils.items.ItemErrors`).
SortMethod = Callable[..., SortPlan]
SORT_METHODS: Registry[SortMethod] = Registry("sort method")


def _errors(errors: ItemErrors | None) -> ItemErrors:
    return errors if errors is not None else ItemErrors()


def _metas(paths: list[Path], errors: ItemErrors | None = None) -> list[tuple[Path, FaceMeta]]:
    return list(run_items(paths, read_meta, _errors(errors)))


def _images(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None):
    """(path, meta, small image, hull mask) per usable face file; ``progress`` counts the files read."""
    if progress is not None:
        progress(0, total=len(paths))

    def load(p: Path):
        try:
            face = read_face(p)
            return (face.meta, *ms.prepare(face.image, face.meta.lm_face))
        finally:
            if progress is not None:
                progress(1)

    return [(p, *rest) for p, rest in run_items(paths, load, _errors(errors))]


def _keyed(items: list, key: Callable, errors: ItemErrors | None) -> list[tuple[object, tuple]]:
    """``(key(item), item)`` for every item whose key can be computed; the others are recorded in ``errors``."""
    return [(k, it) for it, k in run_items(items, key, _errors(errors), name=lambda it: it[0].name)]


def _ranked(items: list, key: Callable, descending: bool, errors: ItemErrors | None = None) -> SortPlan:
    keyed = [(k, it[0]) for k, it in _keyed(items, key, errors)]
    keyed.sort(key=lambda kv: kv[0], reverse=descending)
    return SortPlan(tuple(p for _, p in keyed))


def pose_of(meta: FaceMeta) -> tuple[float, float, float]:
    """(pitch, yaw, roll) from the face file (recorded at extract, else estimated from its landmarks)."""
    ex = meta.extra
    if all(isinstance(ex.get(k), (int, float)) for k in ("pitch", "yaw", "roll")):
        return float(ex["pitch"]), float(ex["yaw"]), float(ex["roll"])
    return estimate_pose(meta.lm_face, meta.size)


def _origkey(meta: FaceMeta) -> tuple[str, int]:
    return (meta.frame_stem, meta.face_index)


@SORT_METHODS.register("blur", help="sharpest first (gradient energy inside the face hull)")
def by_blur(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None, **_) -> SortPlan:
    return _ranked(_images(paths, progress, errors), lambda it: ms.sharpness(it[2], it[3]), True, errors)


@SORT_METHODS.register("motion-blur", help="least motion blur first (variance of Laplacian k=11 in the hull)")
def by_motion_blur(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None,
                   **_) -> SortPlan:
    return _ranked(_images(paths, progress, errors), lambda it: ms.laplacian_variance(it[2], it[3]), True, errors)


@SORT_METHODS.register("face-yaw", help="by head yaw, one side to the other")
def by_yaw(paths: list[Path], errors: ItemErrors | None = None, **_) -> SortPlan:
    return _ranked(_metas(paths, errors), lambda it: pose_of(it[1])[1], False, errors)


@SORT_METHODS.register("face-pitch", help="by head pitch, looking up to looking down")
def by_pitch(paths: list[Path], errors: ItemErrors | None = None, **_) -> SortPlan:
    return _ranked(_metas(paths, errors), lambda it: pose_of(it[1])[0], False, errors)


@SORT_METHODS.register("source-rect-size", help="largest detector box in the frame first")
def by_rect(paths: list[Path], errors: ItemErrors | None = None, **_) -> SortPlan:
    def area(it):
        x0, y0, x1, y1 = it[1].box
        return (x1 - x0) * (y1 - y0)

    return _ranked(_metas(paths, errors), area, True, errors)


@SORT_METHODS.register("landmark-fit", help="doubtful landmark fits first (interpolated, off the face shape, "
                                          "low face check)")
def by_landmark_fit(paths: list[Path], errors: ItemErrors | None = None, **_) -> SortPlan:
    from facelab.sort.sheet import fit_badness

    return _ranked(_metas(paths, errors), lambda it: fit_badness(it[1]), True, errors)


@SORT_METHODS.register("brightness", help="brightest first (mean HSV value in the hull)")
def by_brightness(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None,
                  **_) -> SortPlan:
    return _ranked(_images(paths, progress, errors), lambda it: ms.hsv_means(it[2], it[3])[1], True, errors)


@SORT_METHODS.register("hue", help="by mean hue in the hull, highest first")
def by_hue(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None, **_) -> SortPlan:
    return _ranked(_images(paths, progress, errors), lambda it: ms.hsv_means(it[2], it[3])[0], True, errors)


@SORT_METHODS.register("black", help="fewest pure-black pixels first (faces cut by the frame border last)")
def by_black(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None, **_) -> SortPlan:
    return _ranked(_images(paths, progress, errors), lambda it: ms.black_pixels(it[2]), False, errors)


@SORT_METHODS.register("origname", help="by original frame name and face index")
def by_origname(paths: list[Path], errors: ItemErrors | None = None, **_) -> SortPlan:
    return _ranked(_metas(paths, errors), lambda it: _origkey(it[1]), False, errors)


@SORT_METHODS.register("oneface", help="trash faces of frames that produced more than one face")
def by_oneface(paths: list[Path], errors: ItemErrors | None = None, **_) -> SortPlan:
    items = sorted(_metas(paths, errors), key=lambda it: _origkey(it[1]))
    per_frame: dict[str, int] = {}
    for _, meta in items:
        per_frame[meta.source_frame] = per_frame.get(meta.source_frame, 0) + 1
    keep = tuple(p for p, m in items if per_frame[m.source_frame] == 1)
    trash = tuple(p for p, m in items if per_frame[m.source_frame] > 1)
    return SortPlan(keep, trash)


@SORT_METHODS.register("hist", help="group similar faces: greedy chain by histogram similarity (Bhattacharyya)")
def by_hist(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None, **_) -> SortPlan:
    items = _images(paths, progress, errors)
    if not items:
        return SortPlan(())
    dist = ms.bhattacharyya_matrix(np.stack([ms.histograms(it[2]) for it in items]))
    order = [0]
    left = np.ones(len(items), bool)
    left[0] = False
    while left.any():
        d = np.where(left, dist[order[-1]], np.inf)
        nxt = int(np.argmin(d))
        order.append(nxt)
        left[nxt] = False
    return SortPlan(tuple(items[i][0] for i in order))


@SORT_METHODS.register("hist-dissim", help="most different from the rest first (summed histogram distance)")
def by_hist_dissim(paths: list[Path], progress: Progress | None = None, errors: ItemErrors | None = None,
                   **_) -> SortPlan:
    items = _images(paths, progress, errors)
    if not items:
        return SortPlan(())
    score = ms.bhattacharyya_matrix(np.stack([ms.histograms(it[2]) for it in items])).sum(1)
    return SortPlan(tuple(items[i][0] for i in np.argsort(-score, kind="stable")))


YAW_BINS = 128
YAW_RANGE = 1.2
PITCH_BINS = 3


def _spread_pick(hists: np.ndarray, k: int) -> list[int]:
    """Farthest-point selection of ``k`` indices by histogram distance, starting at index 0 (the sharpest)."""
    if k >= len(hists):
        return list(range(len(hists)))
    dist = ms.bhattacharyya_matrix(hists)
    chosen = [0]
    nearest = dist[0].copy()
    while len(chosen) < k:
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, dist[nxt])
    return chosen


def _quota(sizes: list[int], total: int) -> list[int]:
    """Split ``total`` over bins holding ``sizes`` items: equal shares, leftovers of small bins go to bigger ones,
    and fewer than one per bin are spread evenly over the bins."""
    quota = [0] * len(sizes)
    remaining, open_bins = total, [i for i, s in enumerate(sizes) if s > 0]
    while remaining > 0 and open_bins:
        if remaining < len(open_bins):  # fewer faces than bins: spread them evenly over the range
            spread = np.linspace(0, len(open_bins) - 1, remaining).round().astype(int)
            open_bins = [open_bins[j] for j in spread]
        share = max(1, remaining // len(open_bins))
        for i in list(open_bins):
            add = min(share, sizes[i] - quota[i], remaining)
            quota[i] += add
            remaining -= add
            if quota[i] >= sizes[i]:
                open_bins.remove(i)
            if remaining == 0:
                break
    return quota


@SORT_METHODS.register("final", help="keep the best --count faces spread over yaw (and pitch); trash the rest")
def by_final(paths: list[Path], count: int = 2000, progress: Progress | None = None,
             errors: ItemErrors | None = None, **_) -> SortPlan:
    posed = _keyed(_images(paths, progress, errors), lambda it: pose_of(it[1]), errors)
    items = [(*it, pose) for pose, it in posed]  # (path, meta, image, mask, (pitch, yaw, roll))
    if len(items) <= count:
        return SortPlan(tuple(it[0] for it in sorted(items, key=lambda it: it[4][1])))
    yaws = np.array([it[4][1] for it in items])
    bins = np.clip(((yaws + YAW_RANGE) / (2 * YAW_RANGE) * YAW_BINS).astype(int), 0, YAW_BINS - 1)
    groups = [[i for i in range(len(items)) if bins[i] == b] for b in range(YAW_BINS)]
    keep: list[int] = []
    for group, q in zip(groups, _quota([len(g) for g in groups], count), strict=True):
        if q == 0:
            continue
        sharp = sorted(group, key=lambda i: -ms.sharpness(items[i][2], items[i][3]))[: max(q, 10 * q)]
        keep += _final_bin(items, sharp, q)
    kept = set(keep)
    keep.sort(key=lambda i: yaws[i])
    return SortPlan(tuple(items[i][0] for i in keep), tuple(it[0] for i, it in enumerate(items) if i not in kept))


def _final_bin(items: list, candidates: list[int], q: int) -> list[int]:
    """Within one yaw bin: split the sharpest candidates by pitch, then pick histogram-diverse faces."""
    pitches = np.array([items[i][4][0] for i in candidates])
    edges = np.quantile(pitches, np.linspace(0, 1, PITCH_BINS + 1)[1:-1]) if len(candidates) > PITCH_BINS else []
    sub = np.searchsorted(edges, pitches) if len(edges) else np.zeros(len(candidates), int)
    parts = [[c for c, s in zip(candidates, sub, strict=True) if s == k] for k in range(PITCH_BINS)]
    chosen: list[int] = []
    for part, pq in zip(parts, _quota([len(p) for p in parts], q), strict=True):
        if pq:
            hists = np.stack([ms.histograms(items[i][2]) for i in part])
            chosen += [part[j] for j in _spread_pick(hists, pq)]
    return chosen


def sort_methods() -> list[str]:
    return SORT_METHODS.names()
