"""The training data pipeline on real face files: re-crop, masks, batch contract, seeding, workers, shutdown."""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from data_testkit import dlib_landmarks, write_aligned, write_side

from facelab.align import eyes_mouth_mask, face_transform, hull_mask, transform_points, warp_to_face
from facelab.errors import FacelabError
from facelab.imageops.color import transfer_stats
from facelab.train import data as D
from facelab.train import loader as L
from facelab.train.options import TrainOptions
from facelab.workspace.faces import read_face

R = 64


@pytest.fixture(scope="module")
def landmarks(astronaut, grace_hopper):
    return dlib_landmarks(astronaut), dlib_landmarks(grace_hopper)


@pytest.fixture(scope="module")
def sides(tmp_path_factory, astronaut, grace_hopper, landmarks):
    """data_src/aligned: 4 astronaut whole_face files; data_dst/aligned: 3 Grace Hopper ones."""
    root = tmp_path_factory.mktemp("faces")
    write_side(root / "src", astronaut, landmarks[0], 4)
    write_side(root / "dst", grace_hopper, landmarks[1], 3)
    return root / "src", root / "dst"


def _opts(**kw) -> TrainOptions:
    return replace(TrainOptions(batch_size=3, workers=0), **kw)


def _direct_crop(frame: np.ndarray, lm: np.ndarray, face_type: str) -> np.ndarray:
    """Align the frame straight to R (area-downscaled by 2 first, so neither side aliases)."""
    direct_mat = face_transform(lm, R, face_type)
    small = cv2.resize(frame, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    half = np.array([[2.0, 0, 0.5], [0, 2.0, 0.5], [0, 0, 1]])  # small pixel -> frame pixel
    return warp_to_face(small, (np.vstack([direct_mat, [0, 0, 1]]) @ half)[:2], R, cv2.INTER_CUBIC)


def test_recrop_whole_face_to_full_matches_direct_alignment(tmp_path, astronaut, landmarks):
    lm = landmarks[0]
    path = write_aligned(tmp_path, astronaut, lm, "000001", "whole_face", 256, ext=".png")
    image, mask, em, _ = D.prepare_face(path, R, "full")
    direct_mat = face_transform(lm, R, "full")
    direct = _direct_crop(astronaut, lm, "full")
    diff = np.abs(image.astype(np.float32) - direct.astype(np.float32)) / 255.0
    assert diff.mean() < 0.03 and np.percentile(diff, 95) < 0.1, (diff.mean(), np.percentile(diff, 95))
    # a whole_face crop resized without re-cropping would be visibly different (the face is smaller in it)
    wrong = cv2.resize(read_face(path).image, (R, R), interpolation=cv2.INTER_AREA)
    assert (np.abs(wrong.astype(np.float32) - direct) / 255.0).mean() > 2 * diff.mean()
    # the masks follow the re-cropped landmarks
    lm_full = transform_points(lm, direct_mat)
    assert np.mean(np.abs(mask / 255.0 - hull_mask(lm_full, R))) < 0.02
    assert np.mean(np.abs(em / 255.0 - eyes_mouth_mask(lm_full, R))) < 0.02


def test_same_face_type_is_a_resize(tmp_path, astronaut, landmarks):
    path = write_aligned(tmp_path, astronaut, landmarks[0], "000001", "full", 256, ext=".png")
    image, _, _, _ = D.prepare_face(path, R, "f")  # DeepFaceLab's short name of the same type
    diff = np.abs(image.astype(np.float32) - _direct_crop(astronaut, landmarks[0], "full")) / 255.0
    assert diff.mean() < 0.02 and np.percentile(diff, 95) < 0.06, (diff.mean(), np.percentile(diff, 95))


def test_stored_mask_priority(tmp_path, astronaut, landmarks):
    box = np.zeros((256, 256), np.float32)
    box[64:192, 64:192] = 1.0
    full = np.ones((256, 256), np.float32)
    p1 = write_aligned(tmp_path, astronaut, landmarks[0], "000001", masks=(("xseg", box),))
    _, mask, em, _ = D.prepare_face(p1, R, "whole_face")
    m = mask / 255.0
    assert em.max() > 0 and em[m == 0].max() == 0  # eyes+mouth kept inside the (binarised) stored mask
    assert m[18:46, 18:46].min() == 1.0 and m[:14].max() == 0.0 and m[:, 50:].max() == 0.0
    assert abs(m.sum() - 32 * 32) < 64  # the 128-px box at 1/4 scale, to within a pixel row of edge blending
    p2 = write_aligned(tmp_path, astronaut, landmarks[0], "000002", masks=(("xseg", box), ("learned", full)))
    assert D.prepare_face(p2, R, "whole_face")[1].min() == 255  # learned wins over xseg
    p3 = write_aligned(tmp_path, astronaut, landmarks[0], "000003", masks=(("bas", box),))  # not a training mask
    lm_model = transform_points(read_face(p3).meta.lm_face, np.array([[R / 256, 0, 0], [0, R / 256, 0]]))
    np.testing.assert_array_equal(D.prepare_face(p3, R, "whole_face")[1] / 255.0, hull_mask(lm_model, R))


def test_yaw_from_metadata_or_pose(tmp_path, astronaut, landmarks):
    p1 = write_aligned(tmp_path, astronaut, landmarks[0], "000001", extra={"yaw": 0.7})
    assert D.prepare_face(p1, R, "whole_face")[3] == pytest.approx(0.7)
    p2 = write_aligned(tmp_path, astronaut, landmarks[0], "000002")
    assert abs(D.prepare_face(p2, R, "whole_face")[3]) < 0.6  # near-frontal face


def test_bad_files_skipped_and_counted(tmp_path, sides):
    src, _ = sides
    folder = tmp_path / "aligned"
    folder.mkdir()
    for p in src.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "zz_corrupt.jpg").write_bytes(b"\xff\xd8garbage")
    cv2.imwrite(str(folder / "zz_plain.png"), np.zeros((32, 32, 3), np.uint8))  # an image, not a face file
    fs = D.load_faceset(folder, R, "full")
    assert len(fs) == 4 and fs.skipped == 2
    assert fs.images.shape == (4, R, R, 3) and fs.images.dtype == np.uint8
    assert fs.masks.shape == fs.em.shape == (4, R, R) and fs.yaws.shape == (4,)


def test_side_without_faces_is_an_error(tmp_path, sides):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FacelabError, match="run extract first") as err:
        L.FaceLoader(sides[0], empty, R, "full", _opts())
    assert str(empty) in str(err.value)
    (empty / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(FacelabError, match="run extract first"):
        L.FaceLoader(empty, sides[1], R, "full", _opts())


def test_batch_contract(sides):
    with L.FaceLoader(*sides, R, "full", _opts(random_src_flip=True), workers=0) as loader:
        assert loader.counts == {"src": 4, "dst": 3, "src_skipped": 0, "dst_skipped": 0, "src_held_out": 0}
        batch = next(iter(loader))
    assert batch.size == 3
    for f in fields(batch):
        t = getattr(batch, f.name)
        channels = 1 if ("mask" in f.name or f.name.endswith("_em")) else 3
        assert t.shape == (3, channels, R, R) and t.dtype == torch.float32, f.name
        assert t.min() >= 0.0 and t.max() <= 1.0, f.name
    for side in ("src", "dst"):
        m = getattr(batch, f"target_{side}_mask")
        em = getattr(batch, f"target_{side}_em")
        assert 0.2 < m.mean() < 0.9  # a full-face crop is mostly face
        assert 0.0 < em.mean() < 0.5 * m.mean()
        assert (em * (1 - m)).mean() < 0.01  # eyes and mouth lie inside the face mask
        assert torch.allclose(em.amax(dim=(1, 2, 3)), torch.ones(3))  # each sample scaled to a peak of 1
        warped, target = getattr(batch, f"warped_{side}"), getattr(batch, f"target_{side}")
        assert (warped - target).abs().mean() > 0.005  # the warp only touches the input


def test_same_seed_same_batch(sides):
    def first(seed, rank=0):
        with L.FaceLoader(*sides, R, "full", _opts(), seed=seed, rank=rank, workers=0) as loader:
            it = iter(loader)
            next(it)
            return next(it)

    a, b, c, d = first(1), first(1), first(2), first(1, rank=1)
    for f in fields(a):
        torch.testing.assert_close(getattr(a, f.name), getattr(b, f.name), rtol=0, atol=0)
    assert not torch.equal(a.warped_src, c.warped_src)
    assert not torch.equal(a.warped_src, d.warped_src)  # DDP ranks see different samples


def test_preview_samples_fixed_and_unaugmented(sides):
    with L.FaceLoader(*sides, R, "full", _opts(), workers=0) as loader:
        s1, d1 = loader.preview_samples(5)
        s2, d2 = loader.preview_samples(5)
        ref, _, _, _ = D.prepare_face(sorted(sides[0].iterdir())[0], R, "full")
    assert s1.shape == (5, 3, R, R) and d1.shape == (5, 3, R, R) and s1.dtype == torch.float32
    assert torch.equal(s1, s2) and torch.equal(d1, d2)
    np.testing.assert_allclose(s1[0].permute(1, 2, 0).numpy(), ref / 255.0, atol=1e-6)


def test_ct_mode_recolours_src_toward_dst(sides):
    def mean_lab(opts):
        with L.FaceLoader(*sides, R, "full", opts, workers=0) as loader:
            b = loader.next_batch()
        img = b.target_src.permute(0, 2, 3, 1).reshape(-1, R, 3).numpy()
        dst = b.target_dst.permute(0, 2, 3, 1).reshape(-1, R, 3).numpy()
        return transfer_stats(img)[0], transfer_stats(dst)[0]

    plain, dst = mean_lab(_opts(batch_size=6))
    moved, _ = mean_lab(_opts(batch_size=6, ct_mode="rct"))
    assert np.abs(moved - dst).sum() < 0.5 * np.abs(plain - dst).sum()


def test_random_hsv_changes_src_input_only(sides):
    def first(opts):
        with L.FaceLoader(*sides, R, "full", opts, workers=0, seed=3) as loader:
            return loader.next_batch()

    a, b = first(_opts(batch_size=1)), first(_opts(batch_size=1, random_hsv_power=0.3))
    torch.testing.assert_close(a.target_src, b.target_src, rtol=0, atol=0)
    torch.testing.assert_close(a.target_src_mask, b.target_src_mask, rtol=0, atol=0)
    assert (a.warped_src - b.warped_src).abs().mean() > 1e-3


def test_index_sampler_epochs_and_uniform_yaw():
    rng = np.random.default_rng(0)
    s = D.IndexSampler(np.zeros(5), rng)
    drawn = s.draw(10)
    assert sorted(drawn[:5].tolist()) == list(range(5)) and sorted(drawn[5:].tolist()) == list(range(5))
    yaws = np.array([0.0] * 90 + [1.0] * 10)
    u = D.IndexSampler(yaws, np.random.default_rng(1), uniform_yaw=True).draw(4000)
    assert 0.45 < np.mean(yaws[u] == 1.0) < 0.55  # two bins, sampled uniformly
    plain = D.IndexSampler(yaws, np.random.default_rng(1)).draw(4000)
    assert np.mean(yaws[plain] == 1.0) == pytest.approx(0.1, abs=0.01)


def test_worker_error_is_reported(sides):
    fs = D.load_faceset(sides[0], R, "full")
    shared = L._share(fs, shm=True)
    broken = dict(shared, images=shared["images"][..., :2])  # wrong channel count: colour maths must fail
    q = _ThreadQueue()
    spec = L.spec_from_options(_opts(ct_mode="rct"))
    L._worker_main(0, broken, shared, spec, L.worker_seed(0, 0, 0), q, threading.Event())
    kind, worker, tb = q.q.get_nowait()
    assert kind == "error" and worker == 0 and "Error" in tb


class _ThreadQueue:
    """What a worker needs of a multiprocessing queue, over ``queue.Queue`` (to run the worker in a thread)."""

    def __init__(self, maxsize: int = 0) -> None:
        self.q: queue.Queue = queue.Queue(maxsize)

    def put(self, item, timeout=None):
        self.q.put(item, timeout=timeout)

    def close(self): ...

    def join_thread(self): ...

    def cancel_join_thread(self): ...


def test_worker_without_shared_memory_sends_arrays(sides):
    """The fallback when /dev/shm is small: plain arrays through the queue, same batch as in-process."""
    src, dst = D.load_faceset(sides[0], R, "full"), D.load_faceset(sides[1], R, "full")
    spec = L.spec_from_options(_opts())
    q, stop = _ThreadQueue(maxsize=1), threading.Event()
    t = threading.Thread(target=L._worker_main, args=(0, L._share(src, False), L._share(dst, False), spec,
                                                      L.worker_seed(7, 0, 0), q, stop, False))
    t.start()
    kind, images, masks = q.q.get(timeout=60)
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive()
    assert kind == "batch" and isinstance(images, np.ndarray) and images.shape == (4, 3, 3, R, R)
    ref = L.BatchProducer(src, dst, spec, L.worker_seed(7, 0, 0)).next_arrays()
    np.testing.assert_array_equal(images, ref[0])
    np.testing.assert_array_equal(masks, ref[1])


def test_auto_workers():
    assert L.auto_workers(1) >= 1
    assert L.auto_workers(64) == 1


def test_worker_processes_deliver_and_shut_down(sides):
    start = time.monotonic()
    loader = L.FaceLoader(*sides, R, "full", _opts(batch_size=2), workers=1)
    procs = list(loader._pool.procs)
    assert len(procs) == 1 and procs[0].is_alive()
    batches = [loader.next_batch() for _ in range(3)]
    assert all(b.warped_src.shape == (2, 3, R, R) for b in batches)
    assert not torch.equal(batches[0].warped_src, batches[1].warped_src)
    time.sleep(0.5)  # let the worker fill the queue and block on it
    t0 = time.monotonic()
    loader.close()
    loader.close()  # idempotent
    assert time.monotonic() - t0 < 10.0
    assert all(not p.is_alive() and p.exitcode == 0 for p in procs)  # joined (no zombies), clean exit
    with pytest.raises(RuntimeError, match="closed"):
        loader.next_batch()
    assert time.monotonic() - start < 90.0


def test_state_dict_resumes_the_stream(sides, tmp_path):
    with L.FaceLoader(*sides, R, "full", _opts(), seed=4, workers=0) as a:
        a.next_batch()
        path = tmp_path / "state.pt"
        torch.save({"loader": a.state_dict()}, path)
        expect = [a.next_batch() for _ in range(2)]
    with L.FaceLoader(*sides, R, "full", _opts(), seed=99, workers=0) as b:
        b.load_state_dict(torch.load(path, weights_only=True)["loader"])
        got = [b.next_batch() for _ in range(2)]
    for e, g in zip(expect, got, strict=True):
        for f in fields(e):
            assert torch.equal(getattr(e, f.name), getattr(g, f.name)), f.name


def test_exit_without_close_does_not_hang(sides, tmp_path):
    """A training process that ends without closing its loader exits promptly and leaves no worker behind."""
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from facelab.train.loader import FaceLoader\n"
        "from facelab.train.options import TrainOptions\n"
        "if __name__ == '__main__':\n"
        "    loader = FaceLoader(Path(sys.argv[1]), Path(sys.argv[2]), 32, 'full', TrainOptions(batch_size=2),\n"
        "                        workers=1)\n"
        "    loader.next_batch()\n"
        "    print(*[p.pid for p in loader._pool.procs], flush=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(L.__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, str(script), str(sides[0]), str(sides[1])], capture_output=True, text=True,
                         timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    pids = [int(v) for v in out.stdout.split()]
    assert pids
    time.sleep(0.5)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
