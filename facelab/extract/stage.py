"""The extract stage: frames folder -> aligned face files, in parallel, resumable."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from facelab.align.smooth import smooth_landmarks
from facelab.errors import FacelabError
from facelab.extract.config import AUTO_MAX_WORKERS, ExtractConfig
from facelab.extract.frame import FaceFinder, FrameFaces, reference_embedding
from facelab.extract.sequence import CHUNK_FRAMES, VideoTracker, face_indices, is_video
from facelab.extract.state import face_coverage, load_state, save_state, scan_faces
from facelab.extract.writer import write_debug, write_faces
from facelab.utils.items import ITEM_ERRORS, ItemErrors, item_message
from facelab.utils.progress import Progress
from facelab.utils.workers import resolve_workers
from facelab.workspace.images import list_images, read_image

log = logging.getLogger(__name__)
STATE_EVERY = 10  # frames between state-file writes
FRAME_ERRORS = (*ITEM_ERRORS, RuntimeError)  # the per-item policy, plus what a detector backend raises


@dataclass(frozen=True)
class ExtractResult:
    """Counts of one extract run."""

    frames: int  # frames in the input folder
    processed: int
    faces: int
    no_face: int
    multi_face: int
    errors: int
    skipped: int  # finished earlier (resumed)
    rejected: int  # detections dropped by the checks
    seconds: float
    error_files: tuple[str, ...] = ()  # "frame: why" of every frame that failed
    found_again: int = 0  # video: faces a track lost and a second look found
    interpolated: int = 0  # video: faces filled in by interpolating a track's landmarks across a short gap
    tracks: int = 0  # video: face tracks
    coverage: tuple[tuple[int, int], ...] = ()  # video: (face index, frames holding a face file with it)

    @property
    def failures(self) -> tuple[str, ...]:
        return self.error_files

    def summary(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 2)
        d["error_files"] = ", ".join(self.error_files[:5]) + (" ..." if len(self.error_files) > 5 else "")
        d["coverage"] = coverage_text(self.coverage, self.frames)
        if not self.coverage:
            del d["coverage"]  # photos: no tracks
        return d


def coverage_text(coverage: tuple[tuple[int, int], ...], frames: int, most: int = 4) -> str:
    """``face 0: 472/472 frames (100%), face 1: ...`` (the ``most`` first face indices), or empty."""
    parts = [f"face {i}: {n}/{frames} frames ({100.0 * n / max(1, frames):.0f}%)" for i, n in coverage[:most]]
    return ", ".join(parts) + (f" (+{len(coverage) - most} more)" if len(coverage) > most else "")


@dataclass(frozen=True)
class FrameOutcome:
    """What happened to one frame (sent back from a worker)."""

    source_frame: str
    written: int
    found: FrameFaces | None = None
    error: str | None = None  # one line: why the frame failed
    rejected: int = 0


@dataclass
class _Tally:
    processed: int = 0
    faces: int = 0
    no_face: int = 0
    multi_face: int = 0
    rejected: int = 0
    errors: ItemErrors = field(default_factory=ItemErrors)


# --- per-frame work (runs in the parent or in a worker process) -------------------------------------------------

@dataclass(frozen=True)
class _Job:
    path: Path
    source_frame: str
    write: bool
    aligned_dir: Path
    debug_dir: Path | None
    second_look: bool = False  # a photo: dlib's CNN also looks at a reduced copy


def _process(finder: FaceFinder, job: _Job) -> FrameOutcome:
    try:
        image = read_image(job.path)
        found = finder.find(image, job.second_look)
        rejected = sum(found.rejected.values())
        if not job.write:
            return FrameOutcome(job.source_frame, 0, found, rejected=rejected)
        write_faces(image, found.faces, job.source_frame, job.aligned_dir, finder.cfg)
        if job.debug_dir is not None:
            write_debug(image, found.faces, job.path.stem, job.debug_dir, finder.cfg)
        return FrameOutcome(job.source_frame, len(found.faces), found, rejected=rejected)
    except FRAME_ERRORS as exc:
        return FrameOutcome(job.source_frame, 0, None, error=item_message(exc, job.path.name))


_WORKER_FINDER: list[FaceFinder] = []  # process-local: each worker loads its models once


def _init_worker(cfg: ExtractConfig, reference: np.ndarray | None) -> None:
    cv2.setNumThreads(1)
    _WORKER_FINDER.append(FaceFinder(cfg, reference))


def _work(job: _Job) -> FrameOutcome:
    return _process(_WORKER_FINDER[0], job)


def _run_jobs(jobs: list[_Job], cfg: ExtractConfig, reference: np.ndarray | None) -> Iterator[FrameOutcome]:
    if not jobs:
        return
    n = worker_processes(cfg.workers, len(jobs))
    if n == 0:
        finder = FaceFinder(cfg, reference)
        for job in jobs:
            yield _process(finder, job)
        return
    check_backends(cfg)  # fail here with the backend's own message, not as a broken worker pool
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker, initargs=(cfg, reference)) as pool:
        yield from pool.map(_work, jobs, chunksize=2)


def check_backends(cfg: ExtractConfig) -> None:
    """Raise the backend's FacelabError in this process when the detector or landmark model cannot load."""
    from facelab.detect import create_detector, detector_available
    from facelab.landmarks import create_landmarks, landmarks_available

    if not detector_available(cfg.detector)[0]:
        create_detector(cfg.detector)
        raise FacelabError(f"detector {cfg.detector}: {detector_available(cfg.detector)[1]}")
    if not landmarks_available(cfg.landmarks)[0]:
        create_landmarks(cfg.landmarks)
        raise FacelabError(f"landmarks {cfg.landmarks}: {landmarks_available(cfg.landmarks)[1]}")


def worker_processes(workers: int, jobs: int) -> int:
    """Processes to start for ``jobs`` frames (see :func:`facelab.utils.workers.resolve_workers`): automatic is one
    per core, at most :data:`AUTO_MAX_WORKERS`; never more than jobs. One worker is this process: while workers
    run, this process only waits, so a single one would add its start-up and nothing else."""
    n = min(resolve_workers(workers, cap=AUTO_MAX_WORKERS), jobs)
    return 0 if n <= 1 else n


# --- smoothing of single-face runs -------------------------------------------------------------------------------

def smooth_runs(order: list[str], found: dict[str, FrameFaces], cfg: ExtractConfig) -> dict[str, FrameFaces]:
    """Smooth landmarks over runs of consecutive frames (in ``order``) that each hold exactly one face."""
    params = {"window": cfg.smooth_window} if cfg.smooth_method == "savgol" else {}
    out = dict(found)
    run: list[str] = []
    for name in order + [""]:
        ff = found.get(name)
        if ff is not None and len(ff.faces) == 1:
            run.append(name)
            continue
        if len(run) >= 3:
            seq = np.stack([found[n].faces[0].landmarks for n in run])
            smoothed = smooth_landmarks(seq, cfg.smooth_method, **params)
            for n, lm in zip(run, smoothed, strict=True):
                out[n] = replace(found[n], faces=(replace(found[n].faces[0], landmarks=lm),))
        run = []
    return out


# --- the stage ---------------------------------------------------------------------------------------------------

def _source_name(path: Path, root: Path) -> str:
    """``path`` relative to ``root``: as written first (a frames folder linked elsewhere keeps its workspace name),
    else after resolving both."""
    for p, r in ((path, root), (path.resolve(), root.resolve())):
        try:
            return p.relative_to(r).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def _retire_old_faces(existing: dict[str, list[Path]], frames: set[str], aligned_dir: Path) -> None:
    """``--force``: move earlier face files of the frames about to be redone to ``<aligned>_trash`` (never delete)."""
    trash = aligned_dir.parent / f"{aligned_dir.name}_trash"
    for name, paths in existing.items():
        if name not in frames:
            continue
        trash.mkdir(parents=True, exist_ok=True)
        for p in paths:
            dest = trash / p.name
            k = 1
            while dest.exists():
                dest = trash / f"{p.stem}.{k}{p.suffix}"
                k += 1
            shutil.move(str(p), str(dest))


def _plan(frames_dir: Path, aligned_dir: Path, root: Path,
          force: bool) -> tuple[list[Path], list[Path], dict, dict[str, list[Path]]]:
    """(all frames, frames to do, state, face files of earlier runs by frame) after resume bookkeeping."""
    if not frames_dir.is_dir():
        raise FacelabError(f"frames folder {frames_dir} does not exist; extract frames first "
                           "(`python main.py video extract`) or pass --input")
    frames = list_images(frames_dir)
    names = {p: _source_name(p, root) for p in frames}
    existing, complete = scan_faces(aligned_dir)
    state = {} if force else load_state(aligned_dir)
    if force:
        _retire_old_faces(existing, set(names.values()), aligned_dir)
        existing, complete = {}, set()
    done = set(state) | complete  # a frame a kill cut short between its faces is redone
    for name in complete:
        state.setdefault(name, len(existing[name]))
    return frames, [p for p in frames if names[p] not in done], state, existing


def _tally(t: _Tally, o: FrameOutcome, state: dict[str, int], count_faces: bool) -> None:
    t.processed += 1
    t.rejected += o.rejected
    if o.error is not None:
        t.errors.add(Path(o.source_frame).name, o.error)
        return
    n = len(o.found.faces) if o.found is not None else o.written
    t.no_face += n == 0
    t.multi_face += n > 1
    if count_faces:
        t.faces += o.written
        state[o.source_frame] = o.written


def extract_faces(frames_dir: str | os.PathLike, aligned_dir: str | os.PathLike, cfg: ExtractConfig,
                  progress: Progress | None = None, *, source_root: str | os.PathLike | None = None,
                  debug_dir: str | os.PathLike | None = None, force: bool = False) -> ExtractResult:
    """Detect, align and write every face of the frames in ``frames_dir`` into ``aligned_dir``.

    Face files are named ``<frame_stem>_<i>`` (largest face first) and record ``source_frame`` relative to
    ``source_root`` (default: the parent of ``frames_dir``, i.e. the workspace). Finished frames are skipped
    unless ``force``. ``progress(0, total=frames)`` comes first, then ``progress(skipped)`` for frames finished
    earlier and ``progress(1, faces=...)`` once per frame done.
    """
    t0 = time.perf_counter()
    frames_dir, aligned_dir = Path(frames_dir), Path(aligned_dir)
    root = Path(source_root) if source_root is not None else frames_dir.parent
    frames, todo, state, existing = _plan(frames_dir, aligned_dir, root, force)
    video = is_video(frames, cfg)
    collect = cfg.smooth or video  # frames are written by the collector: in chunks (tracking), at the end (smoothing)
    aligned_dir.mkdir(parents=True, exist_ok=True)
    dbg = None
    if cfg.debug:
        dbg = Path(debug_dir) if debug_dir is not None else aligned_dir.parent / "aligned_debug"
        dbg.mkdir(parents=True, exist_ok=True)
    reference = reference_embedding(cfg.reference, cfg) if cfg.reference and todo else None
    jobs = [_Job(p, _source_name(p, root), not collect, aligned_dir, dbg, not video) for p in todo]
    if progress is not None:
        progress(0, total=len(frames))
        if len(frames) > len(todo):
            progress(len(frames) - len(todo))
    tally = _Tally()
    tracker = None
    if video:
        order = [_source_name(p, root) for p in frames]
        tracker = VideoTracker(order, existing, cfg, dict(zip(order, frames, strict=True)).__getitem__,
                               _LazyFinder(cfg, reference))
    collector = _Collector(jobs, cfg, state, dbg, tally.errors, tracker, aligned_dir)
    try:
        for i, outcome in enumerate(_run_jobs(jobs, cfg, reference)):
            _tally(tally, outcome, state, count_faces=not collect)
            if collect and outcome.found is not None:
                collector.add(outcome.source_frame, outcome.found)
            if not collect and i % STATE_EVERY == STATE_EVERY - 1:
                save_state(aligned_dir, state)
            if progress is not None:
                progress(1, faces=tally.faces if not collect else collector.faces + collector.waiting)
        collector.flush()
    finally:
        save_state(aligned_dir, state)
    return ExtractResult(len(frames), tally.processed, tally.faces + collector.faces, tally.no_face,
                         tally.multi_face, len(tally.errors), len(frames) - len(todo), tally.rejected,
                         time.perf_counter() - t0, tally.errors.as_tuple(), collector.refound, collector.interpolated,
                         len(tracker.index) if tracker is not None else 0,
                         face_coverage(aligned_dir, [_source_name(p, root) for p in frames]) if video else ())


class _LazyFinder:
    """The FaceFinder of the parent process that looks again in gaps, loaded on first use."""

    def __init__(self, cfg: ExtractConfig, reference: np.ndarray | None) -> None:
        self.cfg, self.reference, self._finder = cfg, reference, None

    def __call__(self) -> FaceFinder:
        if self._finder is None:
            self._finder = FaceFinder(self.cfg, self.reference)
        return self._finder


class _Collector:
    """Frames found but not yet written: video frames are tracked and written a chunk at a time (the last
    ``max_gap + 1`` wait for the next chunk), ``--smooth`` runs are written at the end. A frame that fails to
    write is recorded in ``errors`` and left unfinished, so a rerun retries it."""

    def __init__(self, jobs: list[_Job], cfg: ExtractConfig, state: dict[str, int], dbg: Path | None,
                 errors: ItemErrors, tracker: VideoTracker | None, aligned_dir: Path) -> None:
        self.jobs = {j.source_frame: j for j in jobs}
        self.cfg, self.state, self.dbg, self.errors, self.tracker = cfg, state, dbg, errors, tracker
        self.aligned_dir = aligned_dir
        self.pending: dict[str, FrameFaces] = {}
        self.faces = self.refound = self.interpolated = 0

    @property
    def waiting(self) -> int:
        return sum(len(f.faces) for f in self.pending.values())

    def add(self, name: str, found: FrameFaces) -> None:
        self.pending[name] = found
        if self.tracker is not None and not self.cfg.smooth and len(self.pending) >= CHUNK_FRAMES + self.tracker.hold:
            self.flush(keep=self.tracker.hold)

    def flush(self, keep: int = 0) -> None:
        """Write every pending frame but the last ``keep``."""
        names = list(self.pending)
        ready = self.tracker.track(self.pending) if self.tracker is not None else self.pending
        if self.cfg.smooth:
            ready = smooth_runs(names, ready, self.cfg)
        index = self.tracker.index if self.tracker is not None else None
        for name in names[:len(names) - keep]:
            job, ff = self.jobs[name], ready[name]
            del self.pending[name]
            with self.errors.guard(job.path.name):
                image = read_image(job.path)
                indices = face_indices(ff.faces, index)
                paths = write_faces(image, ff.faces, name, job.aligned_dir, self.cfg, indices)
                if self.dbg is not None:
                    write_debug(image, ff.faces, job.path.stem, self.dbg, self.cfg, indices)
                self.state[name] = len(ff.faces)
                self.faces += len(paths)
                self.refound += sum(f.refound for f in ff.faces)
                self.interpolated += sum(f.interpolated for f in ff.faces)
                if self.tracker is not None:
                    self.tracker.written(name, paths)
        save_state(self.aligned_dir, self.state)
