"""Shared fixtures. Real faces come from packages (skimage astronaut, matplotlib's Grace Hopper)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# One torch thread: on a busy 2-core box two threads run several times slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory):
    """The user cache (training's kernel choices, ...) in a folder of this session, never the real one; processes
    the tests start inherit it. A test that needs its own sets ``FACELAB_CACHE`` again."""
    saved = os.environ.get("FACELAB_CACHE")
    os.environ["FACELAB_CACHE"] = str(tmp_path_factory.mktemp("user_cache"))
    yield
    if saved is None:
        os.environ.pop("FACELAB_CACHE", None)
    else:
        os.environ["FACELAB_CACHE"] = saved


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """Eileen Collins, 512x512 uint8 RGB."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    """Grace Hopper, 600x512 uint8 RGB."""
    import matplotlib.cbook

    from facelab.workspace import read_image

    return read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture
def ws(tmp_path: Path):
    from facelab.workspace import Workspace

    w = Workspace(tmp_path / "workspace")
    w.init()
    return w


def _write_aligned_variants(image: np.ndarray, folder: Path, stem: str, n: int, size: int, seed: int) -> int:
    """Write ``n`` aligned full faces of ``image`` under random rotation/scale/shift/flip of the frame."""
    import cv2
    from facekit import find_landmarks

    from facelab.align import face_transform, transform_points, warp_to_face
    from facelab.workspace.faces import FaceMeta, write_face

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    h, w = image.shape[:2]
    written = 0
    for i in range(n):
        frame = image[:, ::-1].copy() if i % 2 else image
        if i:
            rot = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-12, 12), rng.uniform(0.85, 1.15))
            rot[:, 2] += rng.uniform(-0.05, 0.05, 2) * (w, h)
            frame = cv2.warpAffine(frame, rot, (w, h), borderMode=cv2.BORDER_REFLECT)
        lm = find_landmarks(frame)
        if lm is None:
            continue
        mat = face_transform(lm, size, "full")
        meta = FaceMeta.create(source_frame=f"data/{stem}_{i:02d}.png", frame_size=(w, h), face_index=0,
                               face_type="full", size=size, box=(*lm.min(0), *lm.max(0)), landmarks_frame=lm,
                               landmarks_face=transform_points(lm, mat), matrix=mat, detector="dlib_hog",
                               landmarks_backend="dlib68")
        write_face(folder / f"{stem}_{i:02d}_0.jpg", warp_to_face(frame, mat, size), meta)
        written += 1
    return written


@pytest.fixture(scope="session")
def aligned_faceset(tmp_path_factory, astronaut, grace_hopper) -> tuple[Path, Path]:
    """A small real faceset: (src_dir, dst_dir) of aligned full faces (128 px JPEG face files with metadata).

    src = the astronaut, dst = Grace Hopper; 8 variants each (flips, rotation, scale, shift of the frame), every
    one detected and landmarked by dlib and aligned by ``facelab.align``.
    """
    root = tmp_path_factory.mktemp("faceset")
    src, dst = root / "src", root / "dst"
    assert _write_aligned_variants(astronaut, src, "astronaut", 8, 128, seed=1) >= 6
    assert _write_aligned_variants(grace_hopper, dst, "hopper", 8, 128, seed=2) >= 6
    return src, dst
