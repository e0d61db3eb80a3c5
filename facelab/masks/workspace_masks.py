"""Mask stages on a workspace: train the occluder learner on a side's faces, apply it, remove stored masks.

The learner lives in ``model/mask_<method>/`` in facelab's one checkpoint format (:mod:`facelab.utils.checkpoint`)
with kind ``mask``: config.json says ``"kind": "mask"``, so listing swap models never mistakes it for one.
``ckpt_last.pt`` is the newest learner; each training run also leaves ``ckpt_<run:07d>.pt`` (the newest
``backups`` kept) so a worse retrain can be undone. Masks are stored in each face file as a named
:class:`MaskRecord` (metadata only; pixels untouched).
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from facelab.align import hull_mask
from facelab.errors import FacelabError
from facelab.masks.learner import (
    MaskLearnConfig,
    RefineNet,
    create_learner,
    grow,
    hull_minus,
    mask_iou,
    occluder_score,
    pick_setting,
    pick_threshold,
    refined_score,
    synth_batch,
    to_tensor,
    train_occluder_learner,
    train_refiner,
)
from facelab.masks.occluders import background_crops, package_textures
from facelab.utils import checkpoint as ckio
from facelab.utils.items import ItemErrors
from facelab.utils.progress import Progress
from facelab.workspace import Workspace
from facelab.workspace.faces import Face, MaskRecord, list_faces, read_face, read_meta, update_meta
from facelab.workspace.images import read_image
from facelab.workspace.usable import check_usable
from facelab.wsol.sat_conv import stem_from_bas

log = logging.getLogger(__name__)
KIND = "mask"
REQUIRED = ("cfg", "threshold", "learner", "refiner")
BACKUPS = 2  # learners of earlier training runs kept as numbered backups
MASK_STORE_MAX = 256  # stored masks are at most this many pixels wide


@dataclass(frozen=True)
class MaskModel:
    learner: torch.nn.Module
    refiner: RefineNet | None
    threshold: float
    dilation: int  # pixels at the learner's size by which the occluder region is widened
    cfg: MaskLearnConfig


def _side_face(ws: Workspace, path: Path, size: int) -> tuple[Face, np.ndarray, np.ndarray, Path]:
    """One face file for the learner: (face, image (S,S,3) float32, hull (S,S), its frame inside the workspace)."""
    face = read_face(path)
    meta = face.meta
    frame = check_usable(meta, path, ws)
    image = cv2.resize(face.image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return face, image, hull_mask(meta.lm_face * (size / meta.size), size), frame


def load_side_faces(ws: Workspace, side: str, size: int, rng: np.random.Generator,
                    errors: ItemErrors | None = None):
    """Faces (N,S,S,3), hulls (N,S,S), background crops of their frames (sources) and the face paths. A face
    file that cannot be used (unreadable, its source frame outside the workspace, ...) is recorded in ``errors``."""
    errors = errors if errors is not None else ItemErrors()
    faces, hulls, bg, used = [], [], [], []
    frames_seen: set[Path] = set()
    for p in list_faces(ws.aligned(side)):  # type: ignore[arg-type]
        with errors.guard(p.name):
            face, image, hull, frame = _side_face(ws, p, size)
            if frame not in frames_seen and frame.is_file() and len(frames_seen) < 200:
                bg += background_crops(read_image(frame).astype(np.float32) / 255.0, face.meta.box, 96, rng, 1)
                frames_seen.add(frame)
            faces.append(image)
            hulls.append(hull)
            used.append(p)
    if len(faces) < 4:
        raise FacelabError(f"{ws.aligned(side)} has {len(faces)} readable face files; run `extract` first "
                           "(the mask learner needs at least 4 faces)")
    return np.stack(faces), np.stack(hulls), bg, used


def _val_setting(scores: np.ndarray, hulls: np.ndarray, occs: np.ndarray) -> tuple[float, int, float]:
    """(threshold, dilation) picked under the leak budget and the validation IoU it gives."""
    t, d = pick_setting(scores, hulls, occs)
    return t, d, float(mask_iou(hull_minus(hulls, grow(scores, d), t), hulls * (1 - occs)).mean())


def read_tags(path: Path, names: list[str]) -> np.ndarray:
    """Bool (N,) of the face file ``names`` listed (one name per line, ``#`` comments) in the tag file ``path``."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FacelabError(f"cannot read tag list {path}: {exc.strerror}") from exc
    tagged = {Path(ln.split("#")[0].strip()).name for ln in lines if ln.split("#")[0].strip()}
    unknown = tagged - set(names)
    if unknown:
        raise FacelabError(f"{path} names faces that are not in the aligned folder, e.g. {sorted(unknown)[0]!r}; "
                           "list face file names such as 000123_0.jpg")
    return np.array([n in tagged for n in names], bool)


def train_mask_model(ws: Workspace, side: str, cfg: MaskLearnConfig, device: torch.device,
                     progress: Progress | None = None, occluded_list: Path | None = None) -> dict:
    """Train on ``side``'s faces (80 %), pick threshold and dilation on the rest with synthetic pastes, save.

    ``occluded_list``: optional file of face names a person tagged "occluded" (e.g. a hand over the face); those
    faces become real occluded examples instead of clean ones.
    """
    out = ws.model(f"mask_{cfg.method}")
    ckio.check_folder_kind(out, KIND)  # before minutes of training, not after
    init = None
    if cfg.method == "sat" and cfg.sat_init == "bas":
        init = stem_from_bas(read_mask_checkpoint(ws.model("mask_bas"))["learner"])
    rng = np.random.default_rng(cfg.seed)
    errors = ItemErrors()
    faces, hulls, bg, used = load_side_faces(ws, side, cfg.size, rng, errors)
    tags = read_tags(occluded_list, [p.name for p in used]) if occluded_list else np.zeros(len(faces), bool)
    real_occluded = faces[tags] if tags.any() else None
    faces, hulls = faces[~tags], hulls[~tags]
    if len(faces) < 4:
        raise FacelabError(f"only {len(faces)} untagged faces in {ws.aligned(side)}; tag fewer faces as occluded")
    order = rng.permutation(len(faces))
    n_val = max(2, len(faces) // 5)
    val, train = order[:n_val], order[n_val:]
    sources = package_textures() + bg
    t0 = time.time()
    learner = train_occluder_learner(faces[train], hulls[train], sources, cfg, device, progress, real_occluded,
                                     init)
    vx, _, vo, vh = synth_batch(faces[val], hulls[val], sources, np.random.default_rng(cfg.seed + 7), 64)
    xs, hs = to_tensor(vx, device), torch.from_numpy(vh)[:, None].to(device)
    scores = occluder_score(learner, xs)[:, 0].cpu().numpy()
    t, d, val_iou = _val_setting(scores, vh, vo)
    refiner, ref_iou = None, None
    if cfg.refine_steps > 0:
        t_fit = pick_threshold(scores, vh, vh * (1 - vo))
        refiner = train_refiner(learner, t_fit, faces[train], hulls[train], sources, cfg, device, progress)
        rt, rd, ref_iou = _val_setting(refined_score(refiner, xs, hs)[:, 0].cpu().numpy(), vh, vo)
        if ref_iou > val_iou:  # keep the refiner only when it helps on the validation pastes
            t, d = rt, rd
        else:
            refiner = None
    info = {"faces": len(faces), "tagged_occluded": int(tags.sum()), "dilation": d, "val_iou": val_iou, "val_iou_refined": ref_iou,
            "seconds": round(time.time() - t0, 1)}
    save_mask_model(out, learner, refiner, t, d, cfg, info)
    return {"model": str(out), "faces": len(faces), "tagged_occluded": int(tags.sum()), "threshold": t, "dilation_px": d, "val_iou": round(val_iou, 4),
            "val_iou_refined": None if ref_iou is None else round(ref_iou, 4), "refiner_used": refiner is not None,
            "failed": len(errors), "failures": errors.as_tuple()}


def save_mask_model(out: Path, learner: torch.nn.Module, refiner: RefineNet | None, t: float, d: int,
                    cfg: MaskLearnConfig, info: dict, backups: int = BACKUPS) -> Path:
    """Write ``config.json`` (kind ``mask``) and then ``ckpt_last.pt`` plus the numbered backup of this training
    run, all atomic; config.json goes first so a folder with a checkpoint always says it holds a mask learner."""
    out = Path(out)
    ckio.check_folder_kind(out, KIND)
    done = ckio.list_backups(out)
    run = done[-1][0] + 1 if done else 1
    state = {"format_version": ckio.FORMAT_VERSION, "kind": KIND, "run": run, "cfg": asdict(cfg),
             "threshold": float(t), "dilation": int(d), "learner": learner.state_dict(),
             "refiner": refiner.state_dict() if refiner is not None else {}}
    ckio.write_config(out, {"kind": KIND, "run": run, "cfg": asdict(cfg), "threshold": float(t), **info})
    return ckio.save_checkpoint(out, state, backups, iteration=run)


def migrate(state: dict[str, Any]) -> dict[str, Any]:
    """A mask checkpoint dict in the current layout. The first learners (format 1, no ``dilation``) widened
    nothing, and their refiner kept pixels of p(visible) >= 0.5, i.e. a refined score <= 0.5."""
    if "dilation" in state:
        return state
    threshold = 0.5 if state["refiner"] else float(state["threshold"])
    return {**state, "dilation": 0, "threshold": threshold}


def read_mask_checkpoint(out: Path) -> dict[str, Any]:
    """The checked ``ckpt_last.pt`` of the mask learner folder ``out`` (safe loading; old layouts migrated)."""
    path = ckio.last_path(out)
    if not path.is_file():
        raise FacelabError(f"no mask learner at {path}; train one first (`python main.py mask train`)")
    return migrate(ckio.read_checkpoint(path, KIND, REQUIRED))


def load_mask_model(out: Path, device: torch.device) -> MaskModel:
    """The mask learner of folder ``out`` (and its refiner, if it kept one) in eval mode on ``device``."""
    state = read_mask_checkpoint(out)
    try:
        cfg = MaskLearnConfig(**state["cfg"])
    except (TypeError, ValueError) as exc:
        raise FacelabError(f"{ckio.last_path(out)} holds mask learner settings this facelab cannot use ({exc}); "
                           "train it again (`python main.py mask train`)") from exc
    learner = create_learner(cfg)
    learner.load_state_dict(state["learner"])
    refiner = None
    if state["refiner"]:
        refiner = RefineNet()
        refiner.load_state_dict(state["refiner"])
        refiner = refiner.to(device).eval()
    return MaskModel(learner.to(device).eval(), refiner, float(state["threshold"]), int(state["dilation"]), cfg)


@torch.no_grad()
def face_mask(model: MaskModel, image: np.ndarray, lm_face: np.ndarray, device: torch.device) -> np.ndarray:
    """Visible-face mask of one face image (uint8 RGB, R x R): the hull at full resolution minus the occluder
    region found at the learner's size. float32 (R,R) in {0,1}."""
    r, s = image.shape[0], model.cfg.size
    small = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    hull_s = hull_mask(lm_face * (s / r), s)
    x = to_tensor(small[None], device)
    if model.refiner is not None:
        score = refined_score(model.refiner, x, torch.from_numpy(hull_s)[None, None].to(device))
    else:
        score = occluder_score(model.learner, x)
    occ = hull_s * (grow(score[:, 0].cpu().numpy(), model.dilation)[0] > model.threshold)
    occ_full = cv2.resize(occ, (r, r), interpolation=cv2.INTER_LINEAR)
    return (hull_mask(lm_face, r) * (occ_full < 0.5)).astype(np.float32)


def _apply_one(ws: Workspace, path: Path, model: MaskModel, method: str, name: str, device: torch.device,
               force: bool) -> bool:
    """Store mask ``name`` in one face file; False when it has one already (and not ``force``)."""
    meta = read_meta(path)
    check_usable(meta, path, ws)  # e.g. a source frame outside the workspace: refused, not masked
    if not force and meta.mask(name) is not None:
        return False
    face = read_face(path)
    mask = face_mask(model, face.image, face.meta.lm_face, device)
    store = min(face.meta.size, MASK_STORE_MAX)
    small = cv2.resize(mask, (store, store), interpolation=cv2.INTER_AREA) if store != mask.shape[0] else mask
    update_meta(path, face.meta.with_mask(MaskRecord.from_array(name, method, small, face.meta.size)))
    return True


def apply_masks(ws: Workspace, side: str, method: str, name: str, device: torch.device, force: bool = False,
                progress: Progress | None = None) -> dict:
    """Store mask ``name`` in every face file of ``side`` (faces that have it are skipped unless ``force``).
    A face file that fails is left as it was and named in ``failures``; the others go on."""
    model = load_mask_model(ws.model(f"mask_{method}"), device)
    done = skipped = 0
    errors = ItemErrors()
    for p in list_faces(ws.aligned(side)):  # type: ignore[arg-type]
        with errors.guard(p.name):
            if _apply_one(ws, p, model, method, name, device, force):
                done += 1
            else:
                skipped += 1
        if progress:
            progress(1)
    return {"masked": done, "skipped": skipped, "errors": len(errors), "failures": errors.as_tuple()}


def remove_masks(ws: Workspace, side: str, name: str, progress: Progress | None = None) -> dict:
    """Remove mask ``name`` from every face file of ``side`` (other masks and pixels untouched); a face file that
    fails is left as it was and named in ``failures``."""
    removed = 0
    errors = ItemErrors()
    for p in list_faces(ws.aligned(side)):  # type: ignore[arg-type]
        with errors.guard(p.name):
            meta = read_meta(p)
            if meta.mask(name) is not None:
                update_meta(p, meta.without_mask(name))
                removed += 1
        if progress:
            progress(1)
    return {"removed": removed, "errors": len(errors), "failures": errors.as_tuple()}
