"""The training data loader: an endless stream of :class:`Batch` built in worker processes.

Faces of both sides are decoded once (:func:`facelab.train.data.load_faceset`) into shared memory; each worker
process (spawn-safe: top-level functions only) draws samples with its own generator, seeded from
``(seed, rank, worker)`` so DDP ranks and workers see different samples, and puts ready batches into a bounded
queue. ``workers=0`` builds batches in the calling process (deterministic for a seed); ``None``/``-1`` picks a count
from the CPUs (1 on a 2-core machine, so the trainer keeps a core).
"""

from __future__ import annotations

import logging
import os
import queue as queue_mod
import shutil
import sys
import time
import traceback
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np
import torch
import torch.multiprocessing as tmp

from facelab.align import canonical_face_type
from facelab.models.batch import Batch
from facelab.train.augment import AugmentConfig
from facelab.train.data import FaceSet, IndexSampler, SideSpec, load_faceset, make_side_batch, preview_indices
from facelab.train.options import TrainOptions
from facelab.utils.items import failure_summary
from facelab.utils.progress import Progress
from facelab.utils.workers import AUTO, resolve_workers

log = logging.getLogger(__name__)

MAX_AUTO_WORKERS = 8
_GET_POLL_S = 1.0
_JOIN_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PipelineSpec:
    """Everything a worker needs besides the faces: batch size and each side's augmentation."""

    batch_size: int
    src: SideSpec
    dst: SideSpec
    uniform_yaw: bool = False


def spec_from_options(opts: TrainOptions) -> PipelineSpec:
    """The pipeline of a run's (effective) options; ct_mode and random HSV apply to src only."""
    o = opts.effective()
    affine = AugmentConfig(scale=o.random_scale)
    return PipelineSpec(
        batch_size=o.batch_size,
        src=SideSpec(flip=o.random_src_flip, warp=o.random_warp, hsv_power=o.random_hsv_power, ct_mode=o.ct_mode,
                     affine=affine),
        dst=SideSpec(flip=o.random_dst_flip, warp=o.random_warp, affine=affine),
        uniform_yaw=o.uniform_yaw,
    )


def auto_workers(world_size: int = 1) -> int:
    """Worker processes per rank: the CPUs left after one per training process, split over ranks (1..8)."""
    return loader_workers(AUTO, world_size)


def loader_workers(requested: int | None, world_size: int = 1) -> int:
    """The loader processes of one rank for a ``workers`` setting (:func:`facelab.utils.workers.resolve_workers`;
    None = automatic): automatic keeps a core per training process and splits the rest over the ranks."""
    ranks = max(1, int(world_size))
    return resolve_workers(AUTO if requested is None else requested, cap=MAX_AUTO_WORKERS, reserve=ranks, share=ranks)


def queue_size(workers: int) -> int:
    """Ready batches kept waiting: two per worker."""
    return max(2, 2 * workers)


def worker_seed(seed: int, rank: int, worker: int) -> np.random.SeedSequence:
    """Independent streams per (seed, rank, worker)."""
    return np.random.SeedSequence(entropy=int(seed), spawn_key=(int(rank), int(worker)))


class BatchProducer:
    """Builds batches as numpy arrays: images (4, B, 3, R, R) = [warped_src, target_src, warped_dst, target_dst],
    masks (4, B, 1, R, R) = [src mask, src eyes+mouth, dst mask, dst eyes+mouth], float32 in [0, 1]."""

    def __init__(self, src: FaceSet, dst: FaceSet, spec: PipelineSpec, seed: np.random.SeedSequence) -> None:
        s_src, s_dst, s_aug = seed.spawn(3)
        self._src, self._dst, self._spec = src, dst, spec
        self._src_idx = IndexSampler(src.yaws, np.random.default_rng(s_src), spec.uniform_yaw)
        self._dst_idx = IndexSampler(dst.yaws, np.random.default_rng(s_dst), spec.uniform_yaw)
        self._rng = np.random.default_rng(s_aug)

    def next_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        b = self._spec.batch_size
        si, sm = make_side_batch(self._src, self._src_idx.draw(b), self._spec.src, self._rng, ct_faces=self._dst)
        di, dm = make_side_batch(self._dst, self._dst_idx.draw(b), self._spec.dst, self._rng)
        return np.concatenate([si, di]), np.concatenate([sm, dm])

    def state_dict(self) -> dict:
        """Plain types only (checkpoints load with ``weights_only=True``)."""
        return {"aug": self._rng.bit_generator.state, "src": self._src_idx.state_dict(),
                "dst": self._dst_idx.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._rng.bit_generator.state = state["aug"]
        self._src_idx.load_state_dict(state["src"])
        self._dst_idx.load_state_dict(state["dst"])


def pin_batches(device: torch.device, cuda_available: bool) -> bool:
    """Whether batches for ``device`` are put in page-locked (pinned) memory: only for a CUDA device on a build
    with CUDA, where a pinned batch is copied asynchronously (``non_blocking=True``); on a CPU pinning is a wasted
    copy, and a build without CUDA cannot pin at all."""
    return device.type == "cuda" and cuda_available


def arrays_to_batch(images: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor) -> Batch:
    """A :class:`Batch` viewing the stacked arrays of :meth:`BatchProducer.next_arrays` (no copy)."""
    im = torch.as_tensor(images)
    mk = torch.as_tensor(masks)
    return Batch(warped_src=im[0], target_src=im[1], target_src_mask=mk[0], target_src_em=mk[1],
                 warped_dst=im[2], target_dst=im[3], target_dst_mask=mk[2], target_dst_em=mk[3])


# ---------------------------------------------------------------------------------------------------------------
# worker processes


def shm_free_bytes() -> int:
    """Free space of the shared-memory filesystem tensors travel through (0 when unknown)."""
    try:
        return int(shutil.disk_usage("/dev/shm").free)
    except OSError:
        return 0


def _pipeline_bytes(src: FaceSet, dst: FaceSet, spec: PipelineSpec, queue_size: int) -> int:
    faces = sum(a.nbytes for fs in (src, dst) for a in (fs.images, fs.masks, fs.em))
    batch = spec.batch_size * 4 * (4 * src.resolution ** 2) * 4  # 4 images of 3 + 4 masks of 1 channel, float32
    return faces + 2 * queue_size * batch


def _share(fs: FaceSet, shm: bool) -> dict[str, Any]:
    """The face set for spawned workers: shared-memory tensors (no copy) when ``shm``, else plain arrays."""
    arrays = {"images": fs.images, "masks": fs.masks, "em": fs.em, "yaws": fs.yaws}
    if shm:
        arrays = {k: torch.from_numpy(v).share_memory_() for k, v in arrays.items()}
    return {**arrays, "names": fs.names, "skipped": fs.skipped}


def _unshare(d: dict[str, Any]) -> FaceSet:
    arr = {k: (d[k].numpy() if isinstance(d[k], torch.Tensor) else d[k]) for k in ("images", "masks", "em", "yaws")}
    return FaceSet(arr["images"], arr["masks"], arr["em"], arr["yaws"], d["names"], d["skipped"])


def _put(q: Any, item: tuple, stop: Any, parent: int | None = None) -> bool:
    """Put ``item`` unless ``stop`` is set (or the parent process is gone) first; True when it was queued."""
    while not stop.is_set():
        if parent is not None and os.getppid() != parent:
            return False
        try:
            q.put(item, timeout=0.1)
            return True
        except queue_mod.Full:
            continue
    return False


def _worker_main(worker: int, src: dict, dst: dict, spec: PipelineSpec, seed: np.random.SeedSequence, q: Any,
                 stop: Any, shm: bool = True) -> None:
    """Worker process entry point: produce batches into ``q`` until ``stop`` is set or the parent dies.

    With ``shm`` batches travel as shared-memory tensors, else as plain arrays through the queue's pipe.
    """
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    parent = os.getppid()
    try:
        producer = BatchProducer(_unshare(src), _unshare(dst), spec, seed)
        while not stop.is_set() and os.getppid() == parent:
            images, masks = producer.next_arrays()
            if shm:
                images, masks = torch.from_numpy(images), torch.from_numpy(masks)
            _put(q, ("batch", images, masks), stop, parent)
    except Exception:  # noqa: BLE001 - reported to the parent, which raises it
        _put(q, ("error", worker, traceback.format_exc()), stop, parent)
        q.close()
        q.join_thread()
        return
    q.cancel_join_thread()  # stopping: batches still buffered are not wanted


def _worker_process(*args: Any) -> None:
    """Process target: run :func:`_worker_main`, then leave with ``os._exit`` so interpreter shutdown never runs
    while the queue's feeder and fd-sharing threads are inside torch's C++ code (that aborts the process)."""
    code = 0
    try:
        _worker_main(*args)
    except BaseException:  # noqa: BLE001 - the exit code tells the parent
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _Workers:
    """The worker processes, their queue and stop event; ``close`` is idempotent and never hangs."""

    def __init__(self, n: int, shared_src: dict, shared_dst: dict, spec: PipelineSpec, seed: int, rank: int,
                 shm: bool) -> None:
        ctx = tmp.get_context("spawn")
        self.queue = ctx.Queue(maxsize=queue_size(n))
        self.stop = ctx.Event()
        self.procs = [
            ctx.Process(target=_worker_process, name=f"facelab-loader-{rank}-{i}", daemon=True,
                        args=(i, shared_src, shared_dst, spec, worker_seed(seed, rank, i), self.queue, self.stop,
                              shm))
            for i in range(n)
        ]
        self.closed = False
        try:
            for p in self.procs:
                p.start()
        except BaseException:
            self.procs = [p for p in self.procs if p.pid is not None]
            self.close()
            raise

    def get(self) -> tuple:
        while True:
            try:
                return self.queue.get(timeout=_GET_POLL_S)
            except queue_mod.Empty:
                if not any(p.is_alive() for p in self.procs):
                    codes = [p.exitcode for p in self.procs]
                    raise RuntimeError(f"data loader workers exited unexpectedly (exit codes {codes})") from None

    def _drain(self) -> None:
        try:
            while True:
                self.queue.get_nowait()
        except (queue_mod.Empty, OSError, EOFError, ValueError):
            pass

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.stop.set()
        deadline = time.monotonic() + _JOIN_TIMEOUT_S
        while any(p.is_alive() for p in self.procs) and time.monotonic() < deadline:
            self._drain()
            for p in self.procs:
                p.join(timeout=0.05)
        for p in self.procs:
            if p.is_alive():
                log.warning("data loader worker %s did not stop; terminating it", p.name)
                p.terminate()
                p.join(timeout=2.0)
            if p.is_alive():
                p.kill()
                p.join()
        self._drain()
        self.queue.close()
        self.queue.join_thread()


def _close_workers(workers: _Workers) -> None:
    workers.close()


# ---------------------------------------------------------------------------------------------------------------
# the loader


class FaceLoader:
    """Endless stream of training batches for one model (resolution, face type) from two aligned-face folders.

    ``counts`` holds ``src`` / ``dst`` (usable faces) and ``src_skipped`` / ``dst_skipped`` (bad files). Use as a
    context manager or call :meth:`close`; a loader that is garbage-collected closes its workers too. With
    ``pin_memory`` (see :func:`pin_batches`) every batch comes in pinned memory.
    """

    def __init__(self, src_dir: Path, dst_dir: Path, resolution: int, face_type: str, opts: TrainOptions,
                 seed: int = 0, rank: int = 0, world_size: int = 1, workers: int | None = None,
                 progress: Progress | None = None, src_holdout: float = 0.0, pin_memory: bool = False) -> None:
        face_type = canonical_face_type(face_type)
        self.resolution = int(resolution)
        self.pin_memory = bool(pin_memory)
        self.spec = spec_from_options(opts)
        src = load_faceset(src_dir, self.resolution, face_type, progress, holdout=src_holdout)
        dst = load_faceset(dst_dir, self.resolution, face_type, progress)
        self.counts: dict[str, int] = {"src": len(src), "dst": len(dst), "src_skipped": src.skipped,
                                       "dst_skipped": dst.skipped, "src_held_out": src.held_out}
        for side, fs in (("src", src), ("dst", dst)):
            if fs.failures:
                log.warning("loader: %s faces left out, %s", side, failure_summary(fs.failures))
        n = opts.workers if workers is None else workers
        self.workers = loader_workers(n, world_size)
        self._producer: BatchProducer | None = None
        self._pool: _Workers | None = None
        if self.workers == 0:
            self._producer = BatchProducer(src, dst, self.spec, worker_seed(seed, rank, 0))
        else:
            shm = shm_free_bytes() > 2 * _pipeline_bytes(src, dst, self.spec, queue_size(self.workers))
            if not shm:
                log.warning("little free shared memory (/dev/shm); loader batches go through pipes instead")
            shared_src, shared_dst = _share(src, shm), _share(dst, shm)
            src, dst = _unshare(shared_src), _unshare(shared_dst)  # keep only the shared copy
            self._pool = _Workers(self.workers, shared_src, shared_dst, self.spec, seed, rank, shm)
            self._finalizer = weakref.finalize(self, _close_workers, self._pool)
        self._src, self._dst = src, dst
        log.info("loader: %d src / %d dst faces (%d / %d skipped), %d workers", len(src), len(dst), src.skipped,
                 dst.skipped, self.workers)

    def next_batch(self) -> Batch:
        """The next batch (tensors float32 on the CPU; pinned with ``pin_memory``)."""
        if self._producer is not None:
            return self._batch(*self._producer.next_arrays())
        if self._pool is None or self._pool.closed:
            raise RuntimeError("the data loader is closed")
        item = self._pool.get()
        if item[0] == "error":
            self.close()
            raise RuntimeError(f"data loader worker {item[1]} failed:\n{item[2]}")
        return self._batch(item[1], item[2])

    def _batch(self, images: np.ndarray | torch.Tensor, masks: np.ndarray | torch.Tensor) -> Batch:
        """The batch viewing the stacked arrays, pinned first (two copies, not eight) with ``pin_memory``."""
        if self.pin_memory:
            images, masks = torch.as_tensor(images).pin_memory(), torch.as_tensor(masks).pin_memory()
        return arrays_to_batch(images, masks)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next_batch()

    def state_dict(self) -> dict | None:
        """The stream position of an in-process loader (``workers=0``), so a resumed run continues the same
        sequence of batches; None with worker processes (their streams are not restorable)."""
        return None if self._producer is None else {"counts": dict(self.counts), **self._producer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict`; ignored (with a log line) when it does not fit this loader."""
        if self._producer is None:
            return
        if state.get("counts", {}).get("src") != self.counts["src"] or \
                state.get("counts", {}).get("dst") != self.counts["dst"]:
            log.info("the face sets changed since the checkpoint; starting a fresh sample stream")
            return
        self._producer.load_state_dict(state)

    def preview_samples(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed, unaugmented faces for previews: src and dst, each (n, 3, R, R) float32 in [0, 1]."""
        out = []
        for fs in (self._src, self._dst):
            idx = preview_indices(len(fs), n)
            out.append(torch.from_numpy(fs.images[idx].astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous())
        return out[0], out[1]

    def close(self) -> None:
        """Stop and join the worker processes (idempotent)."""
        if self._pool is not None:
            self._finalizer()

    def __enter__(self) -> "FaceLoader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
