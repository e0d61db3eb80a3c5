"""Occlusion benchmark of face-mask sources on real aligned faces with real-image occluders pasted at known places.

Faces: frames of the sample videos (fetched and cached like `workspace samples`, or from $FACELAB_SAMPLES), skimage's astronaut and
matplotlib's Grace Hopper, found with dlib HOG + 68 landmarks and aligned (whole_face). Ground truth: the visible
face V = hull minus occluder. Training occluders come from skimage coffee/chelsea/rocket/colorwheel/brick/grass/
gravel/moon/page/clock and the videos' own background; test occluders from other images (immunohistochemistry, retina, hubble, coins, camera). Thresholds are
picked on a validation split. Prints IoU on clean and occluded faces and the share of occluder pixels kept. SAT
runs twice: from scratch (its default CNN stem) and with that stem started from the BAS learner of the same run.

    python benchmarks/bench_masks.py [--quick] [--sheet out.png] [--ae-model workspace/model/NAME]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import device_name, print_rows, sample_videos  # noqa: E402

from facelab.align import face_transform, hull_mask, transform_points  # noqa: E402
from facelab.errors import FacelabError  # noqa: E402
from facelab.masks.learner import (  # noqa: E402
    MaskLearnConfig,
    grow,
    hull_minus,
    mask_iou,
    occluder_kept,
    occluder_score,
    pick_setting,
    pick_threshold,
    refined_score,
    to_tensor,
    train_occluder_learner,
    train_refiner,
)
from facelab.masks.occluders import background_crops, package_textures  # noqa: E402
from facelab.wsol.sat_conv import stem_from_bas  # noqa: E402

SIZE = 64


def _videos() -> tuple[Path, Path] | None:
    try:
        return sample_videos()
    except FacelabError:
        return None

# yes/no tags a person gives in seconds from a contact sheet: the woman's hand is over her face in these frames
HAND_FRAMES = ("woman", 60, 220)


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
    videos = _videos()
    for vid, path, step in (("woman", videos[0] if videos else None, 8 if quick else 4),
                            ("man", videos[1] if videos else None, 4 if quick else 2)):
        if path is None:
            continue
        for i, frame in _video_frames(path, step):
            got = _faces_in(frame, det, pred, SIZE)
            if got is None:
                continue
            block = (i // (step * 5)) % 5  # blocks of 5 sampled frames: 3 train, 1 val, 1 test
            split = "train" if block < 3 else ("val" if block == 3 else "test")
            for k, v in zip(("face", "hull", "name"), (got[0], got[1], f"{vid}:{i}"), strict=True):
                splits[split][k].append(v)
            if split == "train":
                bg += background_crops(frame.astype(np.float32) / 255.0, got[2], 96, rng, 1)
    hopper = cv2.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))[:, :, ::-1]
    for name, img in (("astronaut", data.astronaut()), ("grace_hopper", np.ascontiguousarray(hopper))):
        got = _faces_in(img, det, pred, SIZE)
        if got is not None:
            for k, v in zip(("face", "hull", "name"), (got[0], got[1], name), strict=True):
                splits["test"][k].append(v)
    f32 = [lambda im: im.astype(np.float32) / 255.0][0]
    train_src = package_textures() + bg
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
    for f, h in zip(faces, hulls, strict=True):
        occ_img, occ = paste_occluder(f, h, sources, rng)
        imgs += [f, occ_img]
        hs += [h, h]
        occs += [np.zeros_like(h), occ]
    occs_a = np.stack(occs)
    return np.stack(imgs), np.stack(hs), occs_a, occs_a.reshape(len(occs_a), -1).any(1)


def score_source(pred: np.ndarray, hulls: np.ndarray, occs: np.ndarray, occluded: np.ndarray) -> dict[str, float]:
    iou = mask_iou(pred, hulls * (1 - occs))
    kept = occluder_kept(pred, hulls, occs)
    return {"iou_clean": float(iou[~occluded].mean()), "iou_occluded": float(iou[occluded].mean()),
            "occluder_kept": float(kept[occluded].mean())}


def _scores(model, x: np.ndarray) -> np.ndarray:
    return np.concatenate([occluder_score(model, to_tensor(x[i:i + 64], torch.device("cpu")))[:, 0].numpy()
                           for i in range(0, len(x), 64)])


def _setting_rows(name: str, vs: np.ndarray, ts: np.ndarray, val, test, rows: dict) -> tuple[float, int]:
    """Rows for the max-IoU threshold and for the (threshold, dilation) picked under the leak budget (validation)."""
    vx, vh, vo, _ = val
    th, to, toc = test
    t0 = pick_threshold(vs, vh, vh * (1 - vo))
    rows[f"hull - {name} (t={t0}, max val IoU)"] = score_source(hull_minus(th, ts, t0), th, to, toc)
    t, d = pick_setting(vs, vh, vo)
    rows[f"hull - {name} (t={t}, grow {d}px)"] = score_source(hull_minus(th, grow(ts, d), t), th, to, toc)
    return t0, d


def ae_masks(model_dir: str, faces: np.ndarray) -> np.ndarray:
    """The autoencoder's learned destination mask of each face (N,S,S), from a trained facelab model folder."""
    from facelab.models.store import load_model

    model = load_model(model_dir, "cpu")
    if model.face_type != "whole_face":
        print(f"note: the model was trained on {model.face_type} crops, the benchmark uses whole_face")
    r = model.resolution
    x = torch.from_numpy(np.stack([cv2.resize(f, (r, r)) for f in faces])).permute(0, 3, 1, 2)
    with torch.no_grad():
        m = torch.cat([model.predict(x[i:i + 16])["dst_mask"] for i in range(0, len(x), 16)])[:, 0].numpy()
    return np.stack([cv2.resize(v, faces.shape[1:3]) for v in m])


def run(quick: bool, sheet: str | None = None, ae_model: str | None = None) -> list[dict]:
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    t0 = time.time()
    d = collect(quick)
    tr, va, te = d["train"], d["val"], d["test"]
    print(f"faces train {len(tr['face'])} val {len(va['face'])} test {len(te['face'])} "
          f"(collected in {time.time() - t0:.0f}s)")
    val = eval_set(va["face"], va["hull"], d["train_src"], 1)
    tx, th, to, toc = eval_set(te["face"], te["hull"], d["test_src"], 2)
    test = (th, to, toc)
    rows = {"hull": score_source(th, th, to, toc)}
    if ae_model:
        rows["autoencoder learned mask"] = score_source(ae_masks(ae_model, tx), th, to, toc)
    sheet_model = None
    bas_state = None
    for method, init, steps in (("bas", "none", 150 if quick else 500), ("sat", "none", 150 if quick else 400),
                                ("sat", "bas", 150 if quick else 400)):
        cfg = MaskLearnConfig(method=method, steps=steps, refine_steps=60 if quick else 200, sat_init=init)
        name = f"{method} occluder" + (", stem from bas" if init == "bas" else "")
        t1 = time.time()
        model = train_occluder_learner(tr["face"], tr["hull"], d["train_src"], cfg, cpu,
                                       init=stem_from_bas(bas_state) if init == "bas" else None)
        vs, ts = _scores(model, val[0]), _scores(model, tx)
        t_best, d_best = _setting_rows(name, vs, ts, val, test, rows)
        print(f"{name}: learner trained in {time.time() - t1:.0f}s ({steps} steps)")
        if method == "bas":
            bas_state = model.state_dict()
            sheet_model = (model, *pick_setting(vs, val[1], val[2]))
            t2 = time.time()
            net = train_refiner(model, t_best, tr["face"], tr["hull"], d["train_src"], cfg, cpu)
            vr = refined_score(net, to_tensor(val[0], cpu), torch.from_numpy(val[1])[:, None]).numpy()[:, 0]
            tr_ = refined_score(net, to_tensor(tx, cpu), torch.from_numpy(th)[:, None]).numpy()[:, 0]
            _setting_rows("bas occluder refined by U-Net", vr, tr_, val, test, rows)
            print(f"bas refiner trained in {time.time() - t2:.0f}s")
    _print_table(rows)
    if sheet and sheet_model is not None:
        make_sheet(*sheet_model, Path(sheet), "bas, free labels only")
        tagged = _tagged_learner(tr, d["train_src"], val, quick)
        if tagged is not None:
            out = Path(sheet).with_name(Path(sheet).stem + "_tagged.png")
            make_sheet(*tagged, out, "bas, plus yes/no hand tags of training frames")
    return _ratios(rows)


def _tagged_learner(tr: dict, sources: list[np.ndarray], val, quick: bool):
    """BAS occluder learner whose training frames tagged "hand over face" are real occluded examples."""
    vid, lo, hi = HAND_FRAMES
    tags = np.array([n.startswith(vid + ":") and lo <= int(n.split(":")[1]) <= hi for n in tr["name"]])
    if not tags.any():
        return None
    cfg = MaskLearnConfig(method="bas", steps=150 if quick else 500)
    model = train_occluder_learner(tr["face"][~tags], tr["hull"][~tags], sources, cfg, torch.device("cpu"),
                                   real_occluded=tr["face"][tags])
    print(f"tagged learner: {int(tags.sum())} training faces tagged occluded")
    return (model, *pick_setting(_scores(model, val[0]), val[1], val[2]))


def _print_table(rows: dict[str, dict[str, float]]) -> None:
    print(f"{'source':<56} {'IoU clean':>9} {'IoU occl.':>9} {'occl. kept':>10}")
    for name, r in rows.items():
        print(f"{name:<56} {r['iou_clean']:9.3f} {r['iou_occluded']:9.3f} {r['occluder_kept']:10.3f}")


def _ratios(rows: dict[str, dict[str, float]]) -> list[dict]:
    dev = device_name()
    hull = rows["hull"]
    # the headline source is fixed in advance: hull minus the BAS occluder map, threshold and dilation picked on the
    # validation split under the leak budget (no refiner); every other row is printed for comparison
    name = next(k for k in rows if k.startswith("hull - bas occluder (") and "grow" in k)
    best = rows[name]
    out = [
        {"name": "mask_iou_occluded_best_over_hull", "value": best["iou_occluded"] / hull["iou_occluded"],
         "target": "> 1", "unit": f"ratio ({name})", "device": dev},
        {"name": "mask_occluder_kept_best", "value": best["occluder_kept"], "target": "< 0.333",
         "unit": f"share ({name})", "device": dev},
        {"name": "mask_iou_clean_best_minus_hull", "value": best["iou_clean"] - hull["iou_clean"],
         "target": "> -0.05", "unit": f"IoU ({name})", "device": dev},
    ]
    print_rows(out)
    return out


def make_sheet(model, t: float, d: int, out: Path, method: str, cols: int = 8) -> None:
    """Woman video frames (every 12th) aligned, with the hull-minus-occluder mask outlined in green (outside dimmed).
    ``method`` only labels the printout."""
    videos = _videos()
    if videos is None:
        print("no sample videos: sheet skipped")
        return
    path = videos[0]
    det, pred = _dlib()
    tiles = []
    for i, frame in _video_frames(path, 12):
        got = _faces_in(frame, det, pred, 128)
        if got is None:
            continue
        face, hull, _ = got
        small = cv2.resize(face, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        score = grow(occluder_score(model, to_tensor(small[None], torch.device("cpu")))[:, 0].numpy(), d)[0]
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
    print(f"sheet {out} ({len(tiles)} faces, mask = hull - occluder map of {method})")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sheet", default=None, help="PNG contact sheet of the woman video with the mask drawn")
    ap.add_argument("--ae-model", default=None, help="trained facelab model folder: adds its learned mask as a row")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run(args.quick, args.sheet, args.ae_model)
