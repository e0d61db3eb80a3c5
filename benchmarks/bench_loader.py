"""Data pipeline speed: samples/s the training loader delivers over samples/s SAEHD consumes, in one run.

Faces: skimage's astronaut and matplotlib's Grace Hopper (dlib HOG + 68 landmarks), moved by known similarities into
several frames per side and written as 512-px whole_face JPEG face files, as extract writes them. The loader
re-crops them to SAEHD's default ``full`` face type at resolution 128 with the default options (random warp,
dst flips) and its automatic worker count. The trainer is SAEHD (liae-ud, default dims) at 128, batch 8, one
one training step per batch, on the CPU (or a visible GPU). Also reported: the loader's speed with ``--ct-mode rct``
and the share of a training run spent waiting for batches when both run together.

    python benchmarks/bench_loader.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import device_name, print_rows

from facelab.align import face_transform, transform_points, warp_to_face  # noqa: E402
from facelab.train.loader import FaceLoader, auto_workers  # noqa: E402
from facelab.train.options import TrainOptions  # noqa: E402
from facelab.train.step import Trainee, new_trainee, train_step  # noqa: E402
from facelab.workspace.faces import FaceMeta, write_face  # noqa: E402

RES = 128
BATCH = 8
FACE_SIZE = 512


def _landmarks(image: np.ndarray) -> np.ndarray:
    import dlib
    import face_recognition_models

    rects = dlib.get_frontal_face_detector()(image, 1)
    r = max(rects, key=lambda r: r.width() * r.height())
    shape = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())(image, r)
    return np.array([(p.x, p.y) for p in shape.parts()], np.float64)


def write_faces(folder: Path, frame: np.ndarray, n: int) -> None:
    """``n`` whole_face files of ``frame``'s face, each from a frame moved by a known rotation/scale/shift."""
    folder.mkdir(parents=True, exist_ok=True)
    lm0 = _landmarks(frame)
    centre = tuple(float(v) for v in lm0.mean(0))
    for k in range(n):
        move = cv2.getRotationMatrix2D(centre, 4.0 * (k - n / 2), 1.0 + 0.02 * (k % 5))
        moved = cv2.warpAffine(frame, move, (frame.shape[1], frame.shape[0]), borderMode=cv2.BORDER_REFLECT)
        lm = transform_points(lm0, move)
        mat = face_transform(lm, FACE_SIZE, "whole_face")
        meta = FaceMeta.create(source_frame=f"data/{k:06d}.png", frame_size=(frame.shape[1], frame.shape[0]),
                               face_index=0, face_type="whole_face", size=FACE_SIZE, box=(0, 0, 1, 1),
                               landmarks_frame=lm, landmarks_face=transform_points(lm, mat), matrix=mat,
                               detector="dlib-hog", landmarks_backend="dlib68")
        write_face(folder / f"{k:06d}_0.jpg", warp_to_face(moved, mat, FACE_SIZE), meta)


def loader_rate(src: Path, dst: Path, opts: TrainOptions, workers: int | None, n_batches: int) -> float:
    """Samples/s delivered after the first batch (workers started and warm)."""
    with FaceLoader(src, dst, RES, "full", opts, workers=workers) as loader:
        loader.next_batch()
        t0 = time.perf_counter()
        for _ in range(n_batches):
            loader.next_batch()
        return n_batches * opts.batch_size / (time.perf_counter() - t0)


def _step(trainee: Trainee, batch, opts: TrainOptions) -> None:
    train_step(trainee, batch, opts.knobs(), opts.clipgrad, opts.mixed_precision)


def trainer_rate(trainee: Trainee, opts: TrainOptions, batch, steps: int, device: torch.device) -> float:
    batch = batch.to(device)
    _step(trainee, batch, opts)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        _step(trainee, batch, opts)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * opts.batch_size / (time.perf_counter() - t0)


def stall_share(src: Path, dst: Path, trainee: Trainee, opts: TrainOptions, steps: int, device: torch.device) -> float:
    """Share of wall time a training run spends waiting for the loader (both running together)."""
    with FaceLoader(src, dst, RES, "full", opts) as loader:
        loader.next_batch()
        waited, t0 = 0.0, time.perf_counter()
        for _ in range(steps):
            w0 = time.perf_counter()
            batch = loader.next_batch().to(device)
            waited += time.perf_counter() - w0
            _step(trainee, batch, opts)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return waited / (time.perf_counter() - t0)


def run(quick: bool) -> list[dict]:
    from matplotlib import cbook
    from skimage import data

    from facelab.models import create_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = auto_workers()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cpus - workers))
    opts = TrainOptions(batch_size=BATCH)
    hopper = cv2.cvtColor(cv2.imread(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.COLOR_BGR2RGB)
    dev = device_name(device)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "src", Path(tmp) / "dst"
        write_faces(src, data.astronaut(), 8 if quick else 24)
        write_faces(dst, hopper, 8 if quick else 24)
        n_batches = 8 if quick else 30
        rate_loader = loader_rate(src, dst, opts, None, n_batches)
        rate_ct = loader_rate(src, dst, replace(opts, ct_mode="rct"), None, n_batches)
        rate_inproc = loader_rate(src, dst, opts, 0, n_batches)
        model = create_model("saehd", {"resolution": RES}, device)
        trainee = new_trainee(model, opts)
        with FaceLoader(src, dst, RES, "full", opts, workers=0) as one:
            batch = one.next_batch()
        steps = 2 if quick else 5
        rate_train = trainer_rate(trainee, opts, batch, steps, device)
        stall = stall_share(src, dst, trainee, opts, steps, device)
    detail = (f"loader {rate_loader:.1f} samples/s with {workers} worker(s), trainer {rate_train:.2f} samples/s "
              f"(SAEHD liae-ud res {RES} batch {BATCH}, {torch.get_num_threads()} torch threads)")
    return [
        {"name": "loader_over_trainer", "value": rate_loader / rate_train, "target": ">= 2", "unit": "x",
         "detail": detail, "device": dev},
        {"name": "loader_ct_rct_over_trainer", "value": rate_ct / rate_train, "target": ">= 2", "unit": "x",
         "detail": f"--ct-mode rct: loader {rate_ct:.1f} samples/s", "device": dev},
        {"name": "loader_workers_over_in_process", "value": rate_loader / rate_inproc, "target": "info", "unit": "x",
         "detail": f"in-process loader {rate_inproc:.1f} samples/s (uses every core through OpenCV's threads; "
         "a worker keeps to one)", "device": dev},
        {"name": "train_time_waiting_for_data", "value": stall, "target": "<= 0.05", "unit": "share",
         "detail": f"{steps} steps with the loader running beside training", "device": dev},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer faces, batches and steps")
    args = ap.parse_args()
    print_rows(run(args.quick))


if __name__ == "__main__":
    main()
