"""Merge preview: a labelled grid of chosen frames (rows) under combinations of settings (columns), so a person
picks settings by looking instead of stepping through an interactive merger."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.merge.config import GLOBAL_KEYS, MergeConfig, MergeSettings
from facelab.merge.plan import MergePlan, PlannedFrame, build_plan
from facelab.merge.predict import Predictor, load_predictor
from facelab.merge.render import FaceInput, render_frame
from facelab.merge.stage import ColorStats, MergePaths, Prepared, begin, crop_faces, face_inputs, predict_batches
from facelab.workspace.images import read_image
from facelab.workspace.layout import Workspace

LABEL_H = 22
_TYPES = {"int": int, "float": float, "str": str, "bool": lambda v: str(v).lower() in ("1", "true", "yes", "y", "on")}


def parse_vary(text: str) -> tuple[str, list[Any]]:
    """``"mode=overlay,seamless"`` -> ("mode", ["overlay", "seamless"]) with values typed like the config field."""
    key, sep, values = text.partition("=")
    key = key.strip().replace("-", "_")
    fields = {f.name: f for f in dataclasses.fields(MergeConfig)}
    if not sep or not values.strip():
        raise FacelabError(f"--vary {text!r} must look like name=value1,value2 (e.g. mode=overlay,seamless)")
    if key not in fields or key in GLOBAL_KEYS:
        allowed = sorted(set(fields) - GLOBAL_KEYS)
        raise FacelabError(f"--vary {key!r} is not a per-frame merge setting; choose from {', '.join(allowed)}")
    cast = _TYPES[str(fields[key].type)]
    try:
        return key, [cast(v.strip()) for v in values.split(",") if v.strip()]
    except ValueError:
        raise FacelabError(f"--vary {text!r}: values must be {fields[key].type}") from None


def combos(varies: Sequence[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Cartesian product of the varied settings, first --vary slowest (one empty combo when nothing varies)."""
    keys = [k for k, _ in varies]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(v for _, v in varies))]


def label_of(number: int, combo: dict[str, Any]) -> str:
    return f"#{number} " + " ".join(f"{k}={v}" for k, v in combo.items())


def draw_cell(image: np.ndarray, label: str, width: int, height: int) -> np.ndarray:
    """``image`` resized into ``width`` x ``height`` under a black band with ``label`` (cv2.putText)."""
    cell = np.zeros((height + LABEL_H, width, 3), np.uint8)
    cell[LABEL_H:] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    cv2.putText(cell, label, (4, LABEL_H - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return cell


def render_preview(ws: Workspace, model_dir: Path | None, settings: MergeSettings, frames: Sequence[int],
                   varies: Sequence[tuple[str, list[Any]]], device: torch.device | str = "cpu", *,
                   predictor: Predictor | None = None, paths: MergePaths | None = None,
                   cell_width: int = 360) -> np.ndarray:
    """The grid (uint8 RGB): one row per frame number, one column per combination of ``varies``."""
    paths = paths or MergePaths.of(ws)
    plan = build_plan(paths.frames, paths.aligned, settings, ws)
    by_number = {f.number: f for f in plan.frames}
    missing = [n for n in frames if n not in by_number]
    if missing:
        raise FacelabError(f"frame(s) {', '.join(map(str, missing))} not in {paths.frames}; pick from "
                           f"{plan.frames[0].number}..{plan.frames[-1].number}")
    cols = combos(varies)
    for combo in cols:
        try:
            dataclasses.replace(settings.base, **combo)  # validate every combination before any work
        except ValueError as exc:
            raise FacelabError(f"--vary {combo}: {exc}") from None
    chosen = [by_number[n] for n in frames]
    if predictor is None and any(f.faces for f in chosen):
        if model_dir is None:
            raise ValueError("render_preview needs model_dir or a predictor")
        predictor = load_predictor(model_dir, torch.device(device))
    if predictor is not None:
        from facelab.merge.enhance import with_enhancer

        predictor = with_enhancer(predictor, settings.base.enhancer, settings.base.enhancer_blend, str(device))
        begin(predictor, plan)
    rows = []
    for frame in chosen:
        image = read_image(frame.path)
        faces = _face_inputs(frame, image, plan, predictor, settings.base) if frame.faces else []
        height = max(1, round(cell_width * image.shape[0] / image.shape[1]))
        cells = [draw_cell(render_frame(image, faces, dataclasses.replace(frame.cfg, **combo))[0],
                           label_of(frame.number, combo), cell_width, height) for combo in cols]
        rows.append(np.concatenate(cells, axis=1))
    width = max(r.shape[1] for r in rows)
    return np.concatenate([cv2.copyMakeBorder(r, 0, 0, 0, width - r.shape[1], cv2.BORDER_CONSTANT) for r in rows])


def render_frames(paths: MergePaths, predictor: Predictor, settings: MergeSettings,
                  stems: Sequence[str]) -> dict[str, np.ndarray]:
    """The merged frames (uint8 RGB) of the frames named ``stems``, rendered in memory as the merge stage would
    (the predictor sees every track of the plan first); frames without a face come back unchanged."""
    plan = build_plan(paths.frames, paths.aligned, settings)
    by_stem = {f.stem: f for f in plan.frames}
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise FacelabError(f"frame(s) {', '.join(missing[:5])} not in {paths.frames}")
    begin(predictor, plan)
    out = {}
    for stem in stems:
        frame = by_stem[stem]
        image = read_image(frame.path)
        faces = _face_inputs(frame, image, plan, predictor, settings.base) if frame.faces else []
        out[stem] = render_frame(image, faces, frame.cfg)[0]
    return out


def _face_inputs(frame: PlannedFrame, image: np.ndarray, plan: MergePlan, predictor: Predictor,
                 base: MergeConfig) -> list[FaceInput]:
    mats, crops = crop_faces(image, frame, predictor)
    item = Prepared(frame, image, mats, crops, [])
    predict_batches([item], predictor, base.batch)
    from facelab.merge.config import MergeSettings
    from facelab.merge.stage import add_model_masks, model_masker

    masker = model_masker(MergeSettings(frame.cfg))
    if masker is not None:
        add_model_masks([item], masker, base.batch)
    stats = ColorStats(plan, predictor) if base.color_smooth > 1 else None
    return face_inputs(item, predictor, stats, base.color_smooth)
