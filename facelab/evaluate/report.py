"""The swap report: identity, expression, pose, structure and stability measured on sampled frames.

Reads the workspace (destination frames, their face files, merged frames, source faces, the model) and returns a
JSON-ready dict; ``write_report`` stores it as ``evaluation.json`` plus ``evaluation.png``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from facelab.align import estimate_pose, face_transform, transform_points
from facelab.errors import FacelabError
from facelab.evaluate import metrics as M
from facelab.models.store import find_swap_model
from facelab.workspace import FaceMeta, Workspace, list_images, read_face, read_image, read_meta
from facelab.workspace.faces import list_faces, readable

log = logging.getLogger(__name__)
Progress = Callable[..., None]


@dataclass(frozen=True)
class EvaluateConfig:
    samples: int = 24  # frames sampled for identity, expression, pose and structure
    stability_frames: int = 60  # consecutive frames for the jitter measures
    src_faces: int = 16  # source faces averaged into the source identity
    crop_size: int = 256  # face crop size for SSIM
    model: str | None = None  # model name under model/; None = the only one there
    device: str = "cpu"


@dataclass(frozen=True)
class FramePair:
    """One destination frame with its (first) face file and merged counterpart."""

    meta: FaceMeta
    original: Path
    merged: Path


def find_pairs(ws: Workspace) -> list[FramePair]:
    """Destination frames that have a face file (face index 0) and a merged frame, in frame order."""
    merged = {p.stem: p for p in list_images(ws.merged)}
    if not merged:
        raise FacelabError(f"no merged frames in {ws.merged}; run `python main.py merge` first")
    metas: dict[str, FaceMeta] = {}
    for _, meta in readable(list_faces(ws.aligned("dst")), read_meta):
        if meta.frame_stem not in metas or meta.face_index < metas[meta.frame_stem].face_index:
            metas[meta.frame_stem] = meta
    pairs = [FramePair(m, ws.resolve(m.source_frame), merged[stem]) for stem, m in sorted(metas.items())
             if stem in merged]
    if not pairs:
        raise FacelabError(f"no merged frame in {ws.merged} has a face file in {ws.aligned('dst')}; "
                           "run `python main.py extract` and `python main.py merge` first")
    return pairs


def _evenly(items: list, n: int) -> list:
    if n <= 0 or len(items) <= n:
        return list(items)
    idx = np.linspace(0, len(items) - 1, n).round().astype(int)
    return [items[i] for i in sorted(set(idx))]


class _Tools:
    """dlib landmarks and identity, loaded once."""

    def __init__(self) -> None:
        from facelab.landmarks import DlibIdentity, create_landmarks

        self.landmarks = create_landmarks("dlib68")
        self.identity = DlibIdentity()


def source_identity(ws: Workspace, tools: _Tools, count: int) -> np.ndarray:
    """Mean dlib embedding of ``count`` source faces spread over the source set."""
    paths = _evenly(list_faces(ws.aligned("src")), count)
    embs = []
    for _, face in readable(paths, read_face):
        embs.append(tools.identity.embed(face.image, face.meta.lm_face))
    if not embs:
        raise FacelabError(f"no readable source faces in {ws.aligned('src')}; run `python main.py extract` first")
    return np.mean(embs, axis=0)


def _crop(image: np.ndarray, lm_frame: np.ndarray, size: int, face_type: str = "full") -> np.ndarray:
    mat = face_transform(lm_frame, size, face_type)
    return cv2.warpAffine(image, mat, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def measure_frame(pair: FramePair, tools: _Tools, src_id: np.ndarray, crop: int) -> dict:
    """Per-frame measures of one swapped frame against its original."""
    orig, swap = read_image(pair.original), read_image(pair.merged)
    box = pair.meta.box
    lm_o = tools.landmarks.landmarks(orig, box)
    lm_s = tools.landmarks.landmarks(swap, box)
    emb_o, emb_s = tools.identity.embed(orig, lm_o), tools.identity.embed(swap, lm_s)
    mat, size = pair.meta.mat, pair.meta.size
    pose_o = estimate_pose(transform_points(lm_o, mat), size)
    pose_s = estimate_pose(transform_points(lm_s, mat), size)
    crop_o = _crop(orig, pair.meta.lm_frame, crop).astype(np.float32) / 255
    crop_s = _crop(swap, pair.meta.lm_frame, crop).astype(np.float32) / 255
    return {
        "frame": pair.meta.frame_stem, "emb_orig": emb_o, "emb_swap": emb_s,
        "swap_to_src": M.embedding_distance(emb_s, src_id), "orig_to_src": M.embedding_distance(emb_o, src_id),
        "landmark_nme": M.landmark_nme(lm_s, lm_o), "pose_error_deg": M.pose_error_deg(pose_s, pose_o),
        "ssim": M.image_ssim(crop_s, crop_o),
    }


def stability(pairs: list[FramePair], tools: _Tools) -> dict:
    """Landmark and face-colour jitter over consecutive frames, swapped vs input."""
    tracks = {"orig": [], "swap": []}
    colours = {"orig": [], "swap": []}
    for pair in pairs:
        orig, swap = read_image(pair.original), read_image(pair.merged)
        lm_o = tools.landmarks.landmarks(orig, pair.meta.box)
        mask = np.zeros(orig.shape[:2], np.uint8)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(lm_o).astype(np.int32)), 1)
        for key, img in (("orig", orig), ("swap", swap)):
            lm = lm_o if key == "orig" else tools.landmarks.landmarks(swap, pair.meta.box)
            tracks[key].append(lm)
            colours[key].append(M.masked_mean_colour(img.astype(np.float32) / 255, mask))
    out = {"frames": len(pairs)}
    for key in ("orig", "swap"):
        t = np.asarray(tracks[key])
        out[f"landmark_jitter_{key}"] = M.landmark_jitter(t)
        out[f"colour_jitter_{key}"] = M.colour_jitter(np.asarray(colours[key]))
        out[f"colour_track_{key}"] = np.asarray(colours[key]).mean(axis=1).tolist()
    return out


def reconstruction_ssim(model_dir: Path, pairs: list[FramePair], device: str) -> float:
    """Mean SSIM of the model's dst->dst reconstruction against the destination face crops."""
    import torch

    from facelab.models.store import load_model
    from facelab.utils.device import select_device

    dev = select_device(device)
    model = load_model(model_dir, dev)
    res, ftype = model.resolution, model.face_type
    crops = np.stack([_crop(read_image(p.original), p.meta.lm_frame, res, ftype) for p in pairs])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255).to(dev)
    with torch.no_grad():
        rec = model.preview(x, x)["dst_dst"].clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    return float(np.mean([M.image_ssim(r.astype(np.float32), c.astype(np.float32) / 255) for r, c in zip(rec, crops, strict=True)]))


def evaluate_swap(ws: Workspace, cfg: EvaluateConfig, progress: Progress | None = None) -> dict:
    """Measure the swap in ``ws``; returns the report dict (see module doc)."""
    pairs = find_pairs(ws)
    model_dir = find_swap_model(ws, cfg.model)
    tools = _Tools()
    src_id = source_identity(ws, tools, cfg.src_faces)
    sampled = _evenly(pairs, cfg.samples)
    rows = []
    for pair in sampled:
        rows.append(measure_frame(pair, tools, src_id, cfg.crop_size))
        if progress:
            progress(1)
    dst_id = np.mean([r["emb_orig"] for r in rows], axis=0)
    for r in rows:
        r["swap_to_dst"] = M.embedding_distance(r.pop("emb_swap"), dst_id)
        r["orig_to_dst"] = M.embedding_distance(r.pop("emb_orig"), dst_id)
    stab = stability(pairs[: cfg.stability_frames], tools) if len(pairs) >= 3 else {}
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "frame"}
    return {
        "frames_sampled": len(rows),
        "identity": {
            "swap_to_src": mean["swap_to_src"], "swap_to_dst": mean["swap_to_dst"],
            "orig_to_src": mean["orig_to_src"], "orig_to_dst": mean["orig_to_dst"],
            "fraction_closer_to_src": float(np.mean([r["swap_to_src"] < r["swap_to_dst"] for r in rows])),
            "moved_toward_src": mean["orig_to_src"] - mean["swap_to_src"],
        },
        "expression": {"landmark_nme": mean["landmark_nme"]},
        "pose": {"pose_error_deg": mean["pose_error_deg"]},
        "structure": {"ssim_swap_vs_dst": mean["ssim"],
                      "reconstruction_ssim_dst": reconstruction_ssim(model_dir, sampled, cfg.device)},
        "stability": stab,
        "model": model_dir.name,
        "per_frame": rows,
    }


def write_report(report: dict, json_path: Path, png_path: Path) -> None:
    """Write ``evaluation.json`` and the at-a-glance ``evaluation.png``."""
    from facelab.evaluate.plot import plot_report
    from facelab.utils.atomic import atomic_path, atomic_write_text

    atomic_write_text(json_path, json.dumps(report, indent=2) + "\n")
    with atomic_path(png_path) as tmp:
        plot_report(report, tmp)
