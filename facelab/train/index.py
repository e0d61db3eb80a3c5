""""Training" a training-free model: index the source faces (but the held-out share) and save the index in the
same checkpoint format as a trained model, with a preview in DeepFaceLab's columns.

Re-running indexes the current source set again (faces may have been added or removed), keeping the settings the
model was created with; a conflicting setting is an error, as for a trained model's architecture.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facelab.errors import FacelabError
from facelab.models.warp import WarpModel, build_index
from facelab.train import checkpoint as ck
from facelab.train.options import TrainOptions
from facelab.train.preview import compose_preview, write_preview
from facelab.train.result import TrainResult, check_arch
from facelab.workspace.faces import list_faces
from facelab.workspace.holdout import held_out_paths

log = logging.getLogger(__name__)


def spread(paths: list[Path], n: int) -> list[Path]:
    """``n`` of ``paths`` spread evenly from first to last (repeats when fewer; none when ``paths`` is empty)."""
    if not paths:
        return []
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


def preview_grid(model: WarpModel, src_dir: Path, dst_dir: Path, held: set[str], n: int = 4) -> np.ndarray:
    """[src, src->src, dst, dst->dst, src->dst] for ``n`` source faces (held-out ones first: the index never saw
    them) and ``n`` destination faces; dst->dst is the destination itself (there is nothing to reconstruct)."""
    from facelab.models.warp import read_source_faces

    srcs = [p for p in list_faces(src_dir) if str(p) in held] or list_faces(src_dir)
    pick = lambda paths: spread(paths, n)  # noqa: E731
    src_faces, _ = read_source_faces(pick(srcs), model.resolution, model.face_type)
    dst_faces, _ = read_source_faces(pick(list_faces(dst_dir)), model.resolution, model.face_type)
    if not src_faces or not dst_faces:
        raise FacelabError(f"no readable faces in {src_dir} or {dst_dir} for the preview")
    cols = []
    for faces in (src_faces, dst_faces):
        crops = np.stack([f[0] for f in faces]).astype(np.float32) / 255.0
        lms = np.stack([f[1] for f in faces])
        choices = [model.best_single(lm, near_frame=f[2] if faces is src_faces else None)
                   for lm, f in zip(lms, faces, strict=True)]
        cols.append((crops, model.swap(crops, lms, choices)[0]))
    (src, src_src), (dst, src_dst) = cols
    return compose_preview(src[:n], src_src[:n], dst[:n], dst[:n], src_dst[:n])


def index_run(model_dir: Path, model_type: str, arch_overrides: dict[str, Any], opts: TrainOptions,
              src_dir: Path, dst_dir: Path, preview: bool = True,
              progress: Callable[..., None] | None = None):
    """Build (or rebuild) the index of ``model_dir`` from ``src_dir``; returns a :class:`TrainResult`."""
    t0 = time.monotonic()
    overrides = {k: v for k, v in (arch_overrides or {}).items() if v is not None}
    created = not ck.has_checkpoint(model_dir)
    arch, data = overrides, {"holdout": opts.holdout}
    if not created:
        ckpt = ck.read_checkpoint(ck.last_path(model_dir))
        if ckpt["model_type"] != model_type:
            raise FacelabError(f"{model_dir} holds a {ckpt['model_type']} model, not {model_type}; "
                               f"use --model {ckpt['model_type']} or another --name")
        check_arch(model_type, ckpt["arch"], overrides, model_dir)
        arch, data = dict(ckpt["arch"]), dict(ckpt.get("data", {}))
    paths = list_faces(src_dir)
    held = held_out_paths(paths, float(data.get("holdout", 0.0)))
    if progress is not None:
        progress(0, total=len(paths) - len(held))
    model = build_index(src_dir, arch, exclude=held, progress=progress)
    ckpt = ck.make_checkpoint(model, {}, 0, {}, opts=dataclasses.asdict(opts), data=data)
    ck.save_checkpoint(model_dir, ckpt, opts.backups)
    ck.write_config(model_dir, model_dir.name, ckpt)
    if preview:
        write_preview(model_dir, preview_grid(model, src_dir, dst_dir, held), 0, opts.preview_history)
    log.info("indexed %d source faces (%d usable, %d held out) into %s", len(model), int(model.usable.sum()),
             len(held), model_dir)
    seconds = time.monotonic() - t0
    return TrainResult(model_dir=model_dir, created=created, start_iteration=0, iteration=0, seconds=seconds,
                       ms_per_iter=0.0, src_loss=math.nan, dst_loss=math.nan, stopped_by="indexed",
                       skipped_steps=0, rollbacks=0, saves=1)
