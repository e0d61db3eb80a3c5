"""Occlusion benchmark of face-mask sources on real aligned faces with real-image occluders pasted at known places.

Faces: frames of the sample videos (when /work/samples or FACELAB_SAMPLES holds them), skimage's astronaut and
matplotlib's Grace Hopper, found with dlib HOG + 68 landmarks and aligned (whole_face). Ground truth: the visible
face V = hull minus occluder. Training occluders come from skimage coffee/chelsea/rocket and the videos' own
background; test occluders from other images (immunohistochemistry, retina, hubble, coins, camera). Thresholds are
picked on a validation split. Prints IoU on clean and occluded faces and the share of occluder pixels kept.

    python benchmarks/bench_masks.py [--quick] [--sheet out.png]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from facelab.align import face_transform, hull_mask, transform_points  # noqa: E402
from facelab.masks.learner import (MaskLearnConfig, hull_minus, mask_iou, occluder_score, pick_threshold,  # noqa: E402
                                   refine, synth_batch, to_tensor, train_occluder_learner, train_refiner)
from facelab.masks.occluders import background_crops  # noqa: E402

SAMPLES = Path(os.environ.get("FACELAB_SAMPLES", "/work/samples"))
SIZE = 64


def _dlib():
    import dlib
    import face_recognition_models

    return dlib.get_frontal_face_detector(), dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())


def _faces_in(frame: np.ndarray, det, pred, size: int):
    """Largest face of an RGB frame: aligned crop float (S,S,3), hull (S,S), box; None when no face."""
    rects = det(frame, 1)
    if not rects:
        return None
    r = max(rects, key=lambda r: r.width() * r.height())
    shape = pred(frame, r)
    lm = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
    mat = face_transform(lm, size, "whole_face")
    crop = cv2.warpAffine(frame, mat, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    hull = hull_mask(transform_points(lm, mat), size)
    return crop.astype(np.float32) / 255.0, hull.astype(np.float32), (r.left(), r.top(), r.right(), r.bottom())


def _video_frames(path: Path, step: int, limit: int | None = None):
    cap = cv2.VideoCapture(str(path))
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok or (limit is not None and i >= limit):
            break
        if i % step == 0:
            yield i, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    cap.release()


def collect(quick: bool) -> dict:
    """Faces by split plus occluder sources; each split is a dict of arrays."""
    import matplotlib.cbook
    from skimage import data

    det, pred = _dlib()
    rng = np.random.default_rng(0)
    splits: dict[str, dict[str, list]] = {k: {"face": [], "hull": [], "name": []} for k in ("train", "val", "test")}
    bg: list[np.ndarray] = []
    for vid, step in (("WolfgangLanger_Pexels.mp4", 8 if quick else 4), ("single_face.mp4", 4 if quick else 2)):
        if not (SAMPLES / vid).is_file():
            continue
        for i, frame in _video_frames(SAMPLES / vid, step):
            got = _faces_in(frame, det, pred, SIZE)
            if got is None:
                continue
            block = (i // (step * 5)) % 5  # blocks of 5 sampled frames: 3 train, 1 val, 1 test
            split = "train" if block < 3 else ("val" if block == 3 else "test")
            for k, v in zip(("face", "hull", "name"), (got[0], got[1], f"{vid}:{i}")):
                splits[split][k].append(v)
            if split == "train":
                bg += background_crops(frame.astype(np.float32) / 255.0, got[2], 96, rng, 1)
    hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[:, :, ::-1]
    for name, img in (("astronaut", data.astronaut()), ("grace_hopper", np.ascontiguousarray(hopper))):
        got = _faces_in(img, det, pred, SIZE)
        if got is not None:
            for k, v in zip(("face", "hull", "name"), (got[0], got[1], name)):
                splits["test"][k].append(v)
    f32 = [lambda im: im.astype(np.float32) / 255.0][0]
    train_src = [f32(data.coffee()), f32(data.chelsea()), f32(data.rocket())] + bg
    gray = [f32(np.repeat(g[:, :, None], 3, 2)) for g in (data.coins(), data.camera())]
    test_src = [f32(data.immunohistochemistry()), f32(data.retina()), f32(data.hubble_deep_field())] + gray
    out = {k: {"face": np.stack(v["face"]), "hull": np.stack(v["hull"]), "name": v["name"]} for k, v in splits.items()
           if v["face"]}
    out["train_src"], out["test_src"] = train_src, test_src
    return out


def eval_set(faces: np.ndarray, hulls: np.ndarray, sources: list[np.ndarray], seed: int):
    """Each face twice: clean and with one occluder. Returns images, hulls, occluder masks, occluded flags."""
    rng = np.random.default_rng(seed)
    from facelab.masks.occluders import paste_occluder

    imgs, hs, occs = [], [], []
    for f, h in zip(faces, hulls):
        occ_img, occ = paste_occluder(f, h, sources, rng)
        imgs += [f, occ_img]
        hs += [h, h]
        occs += [np.zeros_like(h), occ]
    occs_a = np.stack(occs)
    return np.stack(imgs), np.stack(hs), occs_a, occs_a.reshape(len(occs_a), -1).any(1)


def score_source(pred: np.ndarray, hulls: np.ndarray, occs: np.ndarray, occluded: np.ndarray) -> dict[str, float]:
    target = hulls * (1 - occs)
    iou = mask_iou(pred, target)
    o = (occs * hulls) >= 0.5
    kept = ((pred >= 0.5) & o).sum((1, 2)) / np.maximum(o.sum((1, 2)), 1)
    return {"iou_clean": float(iou[~occluded].mean()), "iou_occluded": float(iou[occluded].mean()),
            "occluder_kept": float(kept[occluded].mean())}


def _scores(model, x: np.ndarray) -> np.ndarray:
    return np.concatenate([occluder_score(model, to_tensor(x[i:i + 64], torch.device("cpu")))[:, 0].numpy()
                           for i in range(0, len(x), 64)])


def run(quick: bool, sheet: str | None = None) -> list[dict]:
    torch.manual_seed(0)
    t0 = time.time()
    d = collect(quick)
    tr, va, te = d["train"], d["val"], d["test"]
    print(f"faces train {len(tr['face'])} val {len(va['face'])} test {len(te['face'])} "
          f"(collected in {time.time() - t0:.0f}s)")
    vx, vh, vo, _ = eval_set(va["face"], va["hull"], d["train_src"], 1)
    tx, th, to, toc = eval_set(te["face"], te["hull"], d["test_src"], 2)
    rows = {"hull": score_source(th, th, to, toc)}
    best = None
    for method in ("bas", "sat"):
        cfg = MaskLearnConfig(method=method, steps=150 if quick else 500, refine_steps=100 if quick else 300)
        t1 = time.time()
        model = train_occluder_learner(tr["face"], tr["hull"], d["train_src"], cfg, torch.device("cpu"))
        t = pick_threshold(_scores(model, vx), vh, vh * (1 - vo))
        rows[f"hull-{method}_occ (t={t})"] = score_source(hull_minus(th, _scores(model, tx), t), th, to, toc)
        net = train_refiner(model, t, tr["face"], tr["hull"], d["train_src"], cfg, torch.device("cpu"))
        ref = refine(net, to_tensor(tx, torch.device("cpu")), torch.from_numpy(th)[:, None]).numpy()[:, 0]
        rows[f"refined hull-{method}_occ"] = score_source(ref, th, to, toc)
        print(f"{method}: trained in {time.time() - t1:.0f}s, threshold {t} (validation)")
        if best is None or rows[f"hull-{method}_occ (t={t})"]["iou_occluded"] > best[2]:
            best = (model, t, rows[f"hull-{method}_occ (t={t})"]["iou_occluded"], method)
    _print_table(rows)
    if sheet and best is not None:
        make_sheet(best[0], best[1], Path(sheet), best[3])
    return _ratios(rows)


def _print_table(rows: dict[str, dict[str, float]]) -> None:
    print(f"{'source':<32} {'IoU clean':>9} {'IoU occl.':>9} {'occl. kept':>10}")
    for name, r in rows.items():
        print(f"{name:<32} {r['iou_clean']:9.3f} {r['iou_occluded']:9.3f} {r['occluder_kept']:10.3f}")


def _ratios(rows: dict[str, dict[str, float]]) -> list[dict]:
    dev = platform.processor() or platform.machine()
    hull = rows["hull"]
    learned = {k: v for k, v in rows.items() if k != "hull"}
    name, best = max(learned.items(), key=lambda kv: kv[1]["iou_occluded"])
    out = [
        {"name": "mask_iou_occluded_best_over_hull", "value": best["iou_occluded"] / hull["iou_occluded"],
         "target": "> 1", "unit": f"ratio ({name})", "device": dev},
        {"name": "mask_occluder_kept_best", "value": best["occluder_kept"], "target": "< 0.333",
         "unit": f"share ({name})", "device": dev},
        {"name": "mask_iou_clean_best_minus_hull", "value": best["iou_clean"] - hull["iou_clean"],
         "target": "> -0.05", "unit": f"IoU ({name})", "device": dev},
    ]
    for r in out:
        print(f"RATIO {r['name']} {r['value']:.3f} (target {r['target']}) device={r['device']}")
    return out


def make_sheet(model, t: float, out: Path, method: str, cols: int = 8) -> None:
    """Woman video frames (every 12th) aligned, with the hull-minus-occluder mask outlined in green."""
    path = SAMPLES / "WolfgangLanger_Pexels.mp4"
    if not path.is_file():
        print(f"no {path}: sheet skipped")
        return
    det, pred = _dlib()
    tiles = []
    for i, frame in _video_frames(path, 12):
        got = _faces_in(frame, det, pred, 128)
        if got is None:
            continue
        face, hull, _ = got
        small = cv2.resize(face, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        score = occluder_score(model, to_tensor(small[None], torch.device("cpu")))[0, 0].numpy()
        mask = hull * (cv2.resize(score, (128, 128)) <= t)
        tile = (face * 255).astype(np.uint8).copy()
        cnts, _ = cv2.findContours((mask > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, cnts, -1, (0, 255, 0), 1)
        tile[mask < 0.5] = (tile[mask < 0.5] * 0.5).astype(np.uint8)
        cv2.putText(tile, str(i), (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
        tiles.append(tile)
    rows = [np.concatenate(tiles[r:r + cols] + [np.zeros_like(tiles[0])] * (cols - len(tiles[r:r + cols])), 1)
            for r in range(0, len(tiles), cols)]
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    print(f"sheet {out} ({len(tiles)} faces, mask hull - {method} occluder map)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sheet", default=None, help="PNG contact sheet of the woman video with the mask drawn")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run(args.quick, args.sheet)
