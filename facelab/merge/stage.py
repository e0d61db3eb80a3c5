"""The merge stage: every destination frame in, a merged frame and its mask out.

The main process reads frames, crops the faces and runs the model on batches of faces; worker processes do the CPU
work (mask, colour transfer, blending, PNG encoding) over all cores. Frames already merged are skipped unless
``force``; frames without a face file are copied unchanged (bytes copied when the formats match).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from facelab.merge.config import MergeConfig, MergeSettings
from facelab.merge.filters import lab_stats
from facelab.merge.plan import MergePlan, PlannedFrame, build_plan
from facelab.merge.predict import Predictor, Tracks, load_predictor
from facelab.merge.render import FaceInput, RenderJob, init_worker, run_render_job
from facelab.merge.temporal import window_average
from facelab.utils.atomic import atomic_write_bytes
from facelab.utils.items import ITEM_ERRORS, ItemErrors
from facelab.utils.progress import Progress, no_progress
from facelab.utils.workers import resolve_workers
from facelab.workspace.images import encode_image, read_image
from facelab.workspace.layout import Workspace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergePaths:
    """Where the stage reads and writes (all derived from the workspace unless overridden)."""

    frames: Path
    aligned: Path
    merged: Path
    merged_mask: Path

    @classmethod
    def of(cls, ws: Workspace, frames: Path | None = None, aligned: Path | None = None,
           merged: Path | None = None, merged_mask: Path | None = None) -> "MergePaths":
        return cls(frames or ws.frames("dst"), aligned or ws.aligned("dst"), merged or ws.merged,
                   merged_mask or ws.merged_mask)


@dataclass(frozen=True)
class MergeResult:
    frames: int
    merged: int
    copied_no_face: int
    skipped_done: int
    faces: int
    bad_face_files: int
    orphan_face_files: int
    seconds: float
    model_seconds: float
    read_crop_seconds: float
    render_seconds: float  # summed over workers (CPU time of the rendering itself)
    failures: tuple[str, ...] = ()  # "name: why" of every face file or frame skipped on an error

    def summary(self) -> dict[str, object]:
        fps = self.merged / self.seconds if self.seconds > 0 else 0.0
        return {"frames": self.frames, "merged": self.merged, "copied (no face)": self.copied_no_face,
                "skipped (already merged)": self.skipped_done, "faces": self.faces,
                "unusable face files": self.bad_face_files, "face files without a frame": self.orphan_face_files,
                "failed": len(self.failures),
                "seconds": round(self.seconds, 2), "merged frames/s": round(fps, 2),
                "model seconds": round(self.model_seconds, 2), "render seconds (workers)": round(self.render_seconds, 2)}


def output_paths(paths: MergePaths, frame: PlannedFrame, cfg: MergeConfig) -> tuple[Path, Path]:
    return paths.merged / f"{frame.stem}.{cfg.output_format}", paths.merged_mask / f"{frame.stem}.png"


def copy_frame(frame: PlannedFrame, out_path: Path, mask_path: Path) -> None:
    """A frame without faces: bytes copied when the format matches, else re-encoded; an all-zero mask."""
    if frame.path.suffix.lower() == out_path.suffix.lower():
        atomic_write_bytes(out_path, frame.path.read_bytes())
        h, w = read_image(frame.path, grey=True).shape
    else:
        img = read_image(frame.path)
        atomic_write_bytes(out_path, encode_image(img, out_path.suffix))
        h, w = img.shape[:2]
    atomic_write_bytes(mask_path, encode_image(np.zeros((h, w), np.uint8), ".png"))


# ---------------------------------------------------------------------------------------------------------------
# preparing faces (main process)


@dataclass
class Prepared:
    """A frame read and cropped, waiting for (or holding) its predictions."""

    frame: PlannedFrame
    image: np.ndarray
    mats: list[np.ndarray]
    crops: list[np.ndarray]
    preds: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    masks: list[dict[str, np.ndarray]] = field(default_factory=list)  # occluder / region terms per face


def crop_faces(image: np.ndarray, frame: PlannedFrame, predictor: Predictor) -> tuple[list, list]:
    """Frame->model matrices (from the planned landmarks) and the cubic crops at model resolution, float32."""
    from facelab.align import face_transform

    r = predictor.resolution
    mats, crops = [], []
    for face in frame.faces:
        mat = face_transform(face.landmarks, r, predictor.face_type)
        crop = cv2.warpAffine(image, mat, (r, r), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT)
        mats.append(mat)
        crops.append(crop.astype(np.float32) / 255.0)
    return mats, crops


def plan_tracks(plan: MergePlan, resolution: int, face_type: str) -> Tracks:
    """Every face track of ``plan``: face index -> [(frame position, landmarks (68, 2) in the model crop)]."""
    from facelab.align import face_transform, transform_points

    tracks: dict[int, list[tuple[int, np.ndarray]]] = {}
    for frame in plan.frames:
        for face in frame.faces:
            mat = face_transform(face.landmarks, resolution, face_type)
            tracks.setdefault(face.index, []).append((frame.pos, transform_points(face.landmarks, mat)))
    return tracks


def dst_stats(crop: np.ndarray, landmarks: np.ndarray, mat: np.ndarray) -> np.ndarray:
    """Lab mean/std (2, 3) of a destination crop inside its landmark hull."""
    from facelab.align import hull_mask, transform_points

    return lab_stats(crop, hull_mask(transform_points(landmarks, mat), crop.shape[0]))


def begin(predictor: Predictor, plan: MergePlan) -> None:
    """Hand ``predictor`` every face track of ``plan`` (predictors without a ``begin`` need none)."""
    start = getattr(predictor, "begin", None)
    if start is not None:
        start(plan_tracks(plan, predictor.resolution, predictor.face_type))


def predict_batches(items: list[Prepared], predictor: Predictor, batch: int) -> float:
    """Fill ``preds`` of every item, ``batch`` faces per model call; returns the seconds spent in the model."""
    from facelab.align import transform_points

    flat = [(it, k) for it in items for k in range(len(it.crops))]
    spent = 0.0
    for start in range(0, len(flat), batch):
        chunk = flat[start:start + batch]
        crops = np.stack([it.crops[k] for it, k in chunk])
        lms = np.stack([transform_points(it.frame.faces[k].landmarks, it.mats[k]) for it, k in chunk])
        keys = [(it.frame.faces[k].index, it.frame.pos) for it, k in chunk]
        t0 = time.perf_counter()
        faces, prd, dst = predictor(crops, lms, keys)
        spent += time.perf_counter() - t0
        for j, (it, _) in enumerate(chunk):
            it.preds.append((faces[j], prd[j], dst[j]))
    return spent


class ColorStats:
    """Destination Lab statistics per (frame position, face index), computed from crops or on demand."""

    def __init__(self, plan: MergePlan, predictor: Predictor) -> None:
        self.plan = plan
        self.predictor = predictor
        self.stats: dict[int, dict[int, np.ndarray]] = {}

    def add(self, item: Prepared) -> None:
        for face, mat, crop in zip(item.frame.faces, item.mats, item.crops, strict=True):
            self.stats.setdefault(face.index, {})[item.frame.pos] = dst_stats(crop, face.landmarks, mat)

    def _ensure(self, pos: int) -> None:
        frame = self.plan.frames[pos]
        if all(pos in self.stats.get(f.index, {}) for f in frame.faces):
            return
        image = read_image(frame.path)
        mats, crops = crop_faces(image, frame, self.predictor)
        self.add(Prepared(frame, image, mats, crops, []))

    def pair(self, pos: int, face_index: int, window: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(this frame's stats, the window average) for one face; a neighbour that cannot be read is left out of
        the window (its own failure is reported where that frame is merged)."""
        half = window // 2
        for p in range(max(0, pos - half), min(len(self.plan.frames), pos + half + 1)):
            if not any(f.index == face_index for f in self.plan.frames[p].faces):
                continue
            try:
                self._ensure(p)
            except ITEM_ERRORS as exc:
                if p == pos:
                    raise
                log.warning("colour window of %s: left out %s (%s)", self.plan.frames[pos].stem,
                            self.plan.frames[p].stem, exc)
        per_face = self.stats.get(face_index, {})
        avg = window_average(per_face, pos, window)
        return None if avg is None or pos not in per_face else (per_face[pos], avg)


def face_inputs(item: Prepared, predictor: Predictor, stats: ColorStats | None, window: int) -> list[FaceInput]:
    """The render inputs of a predicted frame; colour statistics paired only when ``stats`` is given."""
    faces = []
    for face, mat, crop, (pred, prd, dst) in zip(item.frame.faces, item.mats, item.crops, item.preds, strict=True):
        pair = stats.pair(item.frame.pos, face.index, window) if stats is not None else None
        faces.append(FaceInput(face.index, predictor.face_type, face.landmarks, mat, crop, pred, prd, dst,
                               face.stored_masks(), item.frame.motion, pair,
                               item.masks[len(faces)] if item.masks else {}))
    return faces


def to_job(item: Prepared, predictor: Predictor, stats: ColorStats | None, paths: MergePaths) -> RenderJob:
    cfg = item.frame.cfg
    faces = face_inputs(item, predictor, stats if cfg.uses_color else None, cfg.color_smooth)
    out_path, mask_path = output_paths(paths, item.frame, cfg)
    return RenderJob(item.image, tuple(faces), cfg, out_path, mask_path)


# ---------------------------------------------------------------------------------------------------------------
# the stage


class Renderer:
    """Runs render jobs in a process pool (bounded queue) or inline; reports each finished frame. A frame whose
    rendering fails is recorded in ``errors`` (no output written) and the others go on."""

    def __init__(self, workers: int, progress: Progress, errors: ItemErrors) -> None:
        self.workers = workers
        self.progress = progress
        self.errors = errors
        self.seconds = 0.0
        self.rendered = 0
        self.pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=init_worker) \
            if workers > 0 else None
        self.inflight: deque[tuple[str, Future]] = deque()
        if self.pool is not None:  # start the workers now, while the main process loads the model
            for _ in range(workers):
                self.pool.submit(time.perf_counter)

    def submit(self, job: RenderJob, name: str) -> None:
        """Render ``job`` (frame ``name``) inline or in the pool."""
        if self.pool is None:
            with self.errors.guard(name):
                self.seconds += run_render_job(job)
                self.rendered += 1
            self.progress(1)
            return
        self.inflight.append((name, self.pool.submit(run_render_job, job)))
        while len(self.inflight) > 2 * self.workers:
            self._finish_one()

    def _finish_one(self) -> None:
        name, future = self.inflight.popleft()
        with self.errors.guard(name):
            self.seconds += future.result()
            self.rendered += 1
        self.progress(1)

    def close(self) -> None:
        try:
            while self.inflight:
                self._finish_one()
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)


def _prepared(frames: list[PlannedFrame], predictor: Predictor, batch: int, errors: ItemErrors,
              progress: Progress) -> Iterator[tuple[list[Prepared], int]]:
    """Frames read and cropped, in chunks of at least ``batch`` faces, each with the number of frames consumed so
    far. A frame that cannot be read or cropped is recorded in ``errors`` and reported done."""
    chunk: list[Prepared] = []
    n = 0
    for consumed, frame in enumerate(frames, start=1):
        try:
            image = read_image(frame.path)
            mats, crops = crop_faces(image, frame, predictor)
        except ITEM_ERRORS as exc:
            errors.add(frame.path.name, exc)
            progress(1)
            continue
        chunk.append(Prepared(frame, image, mats, crops, []))
        n += len(crops)
        if n >= batch:
            yield chunk, consumed
            chunk, n = [], 0
    if chunk:
        yield chunk, len(frames)


def _copy_or_skip(plan: MergePlan, paths: MergePaths, force: bool, errors: ItemErrors, report: Progress
                  ) -> tuple[list[PlannedFrame], int, int]:
    """Frames already merged are skipped (unless ``force``), frames without a face copied; returns the frames
    left to merge, and the copied and skipped counts. A frame that cannot be copied is recorded in ``errors``."""
    todo, copied, skipped = [], 0, 0
    for frame in plan.frames:
        out_path, mask_path = output_paths(paths, frame, frame.cfg)
        if not force and out_path.exists() and mask_path.exists():
            skipped += 1
        elif not frame.faces:
            with errors.guard(frame.path.name):
                copy_frame(frame, out_path, mask_path)
                copied += 1
        else:
            todo.append(frame)
            continue
        report(1)
    return todo, copied, skipped


def merge_frames(ws: Workspace, model_dir: Path | None, settings: MergeSettings | MergeConfig | None = None,
                 device: torch.device | str = "cpu", *, force: bool = False, progress: Progress | None = None,
                 predictor: Predictor | None = None, paths: MergePaths | None = None) -> MergeResult:
    """Merge every destination frame: ``merged/<stem>.png`` and ``merged_mask/<stem>.png``.

    ``predictor`` defaults to the model in ``model_dir`` on ``device``. ``progress(n)`` is called once per frame
    handled, after one ``progress(0, total=N)``. One bad face file or frame never stops the stage: unusable face
    files are left out (their frame merged with its other faces, or copied when it has none), frames that fail
    get no output, and every one is named in ``failures``.
    """
    t_start = time.perf_counter()
    if not isinstance(settings, MergeSettings):
        settings = MergeSettings(settings if settings is not None else MergeConfig())
    paths = paths or MergePaths.of(ws)
    report = progress or no_progress
    plan = build_plan(paths.frames, paths.aligned, settings, ws)
    errors = ItemErrors(list(plan.failures))
    report(0, total=len(plan.frames))
    todo, copied, skipped = _copy_or_skip(plan, paths, force, errors, report)
    model_s = read_s = 0.0
    # a pool costs a second or two to start: not worth it for a couple of frames
    workers = min(resolve_workers(settings.base.workers), len(todo)) if len(todo) >= 3 else 0
    renderer = Renderer(workers, report, errors)
    try:
        if todo:
            if predictor is None:
                if model_dir is None:
                    raise ValueError("merge_frames needs model_dir or a predictor")
                predictor = load_predictor(model_dir, torch.device(device))
            from facelab.merge.enhance import with_enhancer

            predictor = with_enhancer(predictor, settings.base.enhancer, settings.base.enhancer_blend, str(device))
            begin(predictor, plan)
            model_s, read_s = _run(todo, plan, predictor, settings.base, paths, renderer,
                                   model_masker(settings, str(device)))
    finally:
        renderer.close()
    if model_dir is not None and todo:
        write_merge_record(paths.merged, Path(model_dir), settings.base)
    return MergeResult(len(plan.frames), renderer.rendered, copied, skipped, sum(len(f.faces) for f in todo),
                       plan.bad_faces, plan.orphan_faces, time.perf_counter() - t_start, model_s, read_s,
                       renderer.seconds, errors.as_tuple())


MERGE_RECORD = "merge.json"


def write_merge_record(merged: Path, model_dir: Path, cfg: MergeConfig) -> None:
    """``merged/merge.json``: which model and settings made the merged frames (evaluate reads it)."""
    import dataclasses
    import json

    from facelab.utils.checkpoint import now_iso

    doc = {"model": model_dir.name, "settings": dataclasses.asdict(cfg), "updated": now_iso()}
    atomic_write_bytes(merged / MERGE_RECORD, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))


def model_masker(settings: MergeSettings, device: str = "cpu"):
    """The occluder / face-parser masks the mask modes of ``settings`` need (None when they need none)."""
    from facelab.merge.masks import model_terms, parse_mask_mode

    modes = [settings.base.mask_mode, *(r.overrides["mask_mode"] for r in settings.ranges if "mask_mode" in r.overrides)]
    terms = [t for m in modes for t in model_terms(parse_mask_mode(m))]
    if not terms:
        return None
    from facelab.masks.onnx_masks import ModelMasks

    return ModelMasks(terms, device)


def add_model_masks(items: list[Prepared], masker, batch: int) -> None:
    """Fill ``masks`` of every item from its destination crops, ``batch`` faces per call."""
    flat = [(it, k) for it in items for k in range(len(it.crops))]
    for start in range(0, len(flat), batch):
        chunk = flat[start:start + batch]
        for (it, _), masks in zip(chunk, masker(np.stack([it.crops[k] for it, k in chunk])), strict=True):
            it.masks.append(masks)


def _run(todo: list[PlannedFrame], plan: MergePlan, predictor: Predictor, base: MergeConfig, paths: MergePaths,
         renderer: Renderer, masker=None) -> tuple[float, float]:
    """Crop, predict and hand frames to the renderer in order, holding each back until the colour window ahead of
    it has statistics. Returns (model seconds, read + crop seconds)."""
    smooth_color = base.color_smooth > 1 and any(f.cfg.uses_color for f in todo)
    stats = ColorStats(plan, predictor) if smooth_color else None
    half = base.color_smooth // 2 if smooth_color else 0
    pending: deque[Prepared] = deque()
    model_s = read_s = 0.0
    t_read = time.perf_counter()
    for chunk, done in _prepared(todo, predictor, base.batch, renderer.errors, renderer.progress):
        read_s += time.perf_counter() - t_read
        model_s += predict_batches(chunk, predictor, base.batch)
        if masker is not None:
            add_model_masks(chunk, masker, base.batch)
        if stats is not None:
            for item in chunk:
                stats.add(item)
        pending.extend(chunk)
        next_pos = todo[done].pos if done < len(todo) else len(plan.frames) + half + 1
        while pending and pending[0].frame.pos + half < next_pos:
            _submit(pending.popleft(), predictor, stats, paths, renderer)
        t_read = time.perf_counter()
    while pending:
        _submit(pending.popleft(), predictor, stats, paths, renderer)
    return model_s, read_s


def _submit(item: Prepared, predictor: Predictor, stats: ColorStats | None, paths: MergePaths,
            renderer: Renderer) -> None:
    """Hand one predicted frame to the renderer; a frame whose render inputs fail is recorded and reported done."""
    try:
        job = to_job(item, predictor, stats, paths)
    except ITEM_ERRORS as exc:
        renderer.errors.add(item.frame.path.name, exc)
        renderer.progress(1)
        return
    renderer.submit(job, item.frame.path.name)
