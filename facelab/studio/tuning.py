"""Live merge tuning: one destination frame re-rendered under the page's settings through the merge stage's own
functions (plan, crop, predict, face enhancer, occluder / region masks, colour statistics,
:func:`facelab.merge.render.render_frame`).

The model (and any enhancer or mask model) stays loaded, and each frame's crops, predictions and model masks are
kept (they depend only on the enhancer settings and the mask mode), so a re-render after moving a slider runs only
the CPU half of the merge.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from facelab.errors import FacelabError
from facelab.merge.config import MergeConfig, MergeSettings
from facelab.merge.enhance import with_enhancer
from facelab.merge.masks import MASK_MODES
from facelab.merge.plan import MergePlan, build_plan, check_stored
from facelab.merge.predict import IdentityPredictor, Predictor, load_predictor
from facelab.merge.render import render_frame
from facelab.merge.stage import (
    ColorStats,
    MergePaths,
    Prepared,
    add_model_masks,
    begin,
    crop_faces,
    face_inputs,
    model_masker,
    predict_batches,
)
from facelab.workspace.images import read_image
from facelab.workspace.layout import Workspace

CACHED_FRAMES = 48
CACHED_MODELS = 2  # enhancer / mask-model sessions kept open (per setting)


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray  # uint8 RGB merged frame
    mask: np.ndarray  # uint8 merged mask
    seconds: float
    number: int


def _mtime(folder: Path) -> int:
    """A folder's modification time: it changes when files are added, removed or renamed in it."""
    try:
        return folder.stat().st_mtime_ns
    except OSError:
        return 0


class Tuner:
    """Renders single frames for the page. Thread-safe: one render at a time (the model and caches are shared)."""

    def __init__(self, ws: Workspace, model_dir: Path | None, device: torch.device | str = "cpu") -> None:
        self.ws = ws
        self.paths = MergePaths.of(ws)
        self.model_dir = model_dir
        self.device = torch.device(device)
        self.lock = threading.RLock()
        self._predictor: Predictor | None = None
        self._plan: MergePlan | None = None
        self._plan_key: tuple | None = None
        self._stats: ColorStats | None = None
        self._begun = False  # the predictor has seen the tracks of the current plan
        self._enhanced: OrderedDict[tuple, Predictor] = OrderedDict()  # (enhancer, blend) -> predictor
        self._maskers: OrderedDict[str, object] = OrderedDict()  # mask mode -> model masker (or None)
        self._items: OrderedDict[tuple, Prepared] = OrderedDict()  # (pos, enhancer, blend) -> predicted frame
        self._masks: OrderedDict[tuple, list] = OrderedDict()  # (pos, mask mode) -> model masks per face

    # -- model and plan ------------------------------------------------------------------------------------------
    def predictor(self) -> Predictor:
        with self.lock:
            if self._predictor is None:
                self._predictor = IdentityPredictor(256, "whole_face") if self.model_dir is None else \
                    load_predictor(self.model_dir, self.device)
            return self._predictor

    def enhanced(self, base: MergeConfig) -> Predictor:
        """The predictor with ``base``'s face enhancer, as the merge stage wraps it (opened once per setting)."""
        key = (base.enhancer, base.enhancer_blend)
        if key not in self._enhanced:
            self._enhanced[key] = with_enhancer(self.predictor(), base.enhancer, base.enhancer_blend,
                                                str(self.device))
            _trim(self._enhanced, CACHED_MODELS)
        self._enhanced.move_to_end(key)
        return self._enhanced[key]

    def masker(self, cfg: MergeConfig):
        """The occluder / face-parser masks ``cfg``'s mask mode needs (None when none), opened once per mode."""
        if cfg.mask_mode not in self._maskers:
            self._maskers[cfg.mask_mode] = model_masker(MergeSettings(cfg), str(self.device))
            _trim(self._maskers, CACHED_MODELS)
        return self._maskers[cfg.mask_mode]

    def plan(self, base: MergeConfig | None = None) -> MergePlan:
        """The plan for ``base``'s landmark smoothing (None: the current plan's), rebuilt when frames or face files
        were added or removed. Frame settings are applied per render, so it is built with motion measured on every
        frame (the motion blur filter is off where the frame's setting is 0)."""
        with self.lock:
            if base is not None:
                smoothing = (base.smooth, base.smooth_window)
            elif self._plan_key is not None:
                smoothing = self._plan_key[:2]
            else:
                smoothing = (MergeConfig().smooth, MergeConfig().smooth_window)
            key = (*smoothing, _mtime(self.paths.frames), _mtime(self.paths.aligned))
            if self._plan is None or key != self._plan_key:
                probe = dataclasses.replace(MergeConfig(), smooth=smoothing[0], smooth_window=smoothing[1],
                                            motion_blur=1)
                self._plan = build_plan(self.paths.frames, self.paths.aligned, MergeSettings(probe), self.ws)
                self._plan_key = key
                self._items.clear()
                self._masks.clear()
                self._stats = None
                self._begun = False
            return self._plan

    def frames(self) -> list[dict]:
        return [{"pos": f.pos, "number": f.number, "stem": f.stem, "faces": len(f.faces)}
                for f in self.plan().frames]

    def mask_modes(self) -> list[str]:
        """Mask mode names with ``stored:NAME`` spelled out for every mask the destination faces hold."""
        stored = sorted({m.name for f in self.plan().frames for face in f.faces for m in face.meta.masks})
        names = []
        for name in MASK_MODES.names():
            names.extend([name.replace("NAME", s) for s in stored] if "NAME" in name else [name])
        return names

    def invalidate(self) -> None:
        """Forget the plan and predictions (face files changed)."""
        with self.lock:
            self._plan = None
            self._items.clear()
            self._masks.clear()
            self._stats = None
            self._begun = False

    # -- rendering -----------------------------------------------------------------------------------------------
    def _prepared(self, pos: int, plan: MergePlan, base: MergeConfig) -> Prepared:
        """Frame ``pos`` read, cropped and predicted (with ``base``'s enhancer), as the merge stage prepares it."""
        key = (pos, base.enhancer, base.enhancer_blend)
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
            return item
        frame = plan.frames[pos]
        image = read_image(frame.path)
        predictor = self.enhanced(base)
        if not self._begun:  # as the merge stage: the predictor sees every track of the plan first
            begin(self.predictor(), plan)
            self._begun = True
        mats, crops = crop_faces(image, frame, predictor)
        item = Prepared(frame, image, mats, crops, [])
        if crops:
            predict_batches([item], predictor, base.batch)
        self._items[key] = item
        _trim(self._items, CACHED_FRAMES)
        return item

    def _with_masks(self, item: Prepared, cfg: MergeConfig, batch: int) -> Prepared:
        """``item`` with the occluder / region masks of ``cfg``'s mask mode (none needed: unchanged)."""
        masker = self.masker(cfg)
        if masker is None:
            return item
        key = (item.frame.pos, cfg.mask_mode)
        if key not in self._masks:
            probe = Prepared(item.frame, item.image, item.mats, item.crops, item.preds)
            add_model_masks([probe], masker, batch)
            self._masks[key] = probe.masks
            _trim(self._masks, CACHED_FRAMES)
        return Prepared(item.frame, item.image, item.mats, item.crops, item.preds, self._masks[key])

    def original(self, pos: int) -> np.ndarray:
        plan = self.plan()
        return read_image(self._frame(plan, pos).path)

    def _frame(self, plan: MergePlan, pos: int):
        if not 0 <= pos < len(plan.frames):
            raise FacelabError(f"frame position {pos} is outside 0..{len(plan.frames) - 1}")
        return plan.frames[pos]

    def render(self, pos: int, settings: MergeSettings) -> Rendered:
        """Frame ``pos`` merged under ``settings`` (its frame range applied), as ``merge`` would write it."""
        t0 = time.perf_counter()
        base = settings.base
        with self.lock:
            plan = self.plan(base)
            frame = self._frame(plan, pos)
            cfg = settings.for_frame(frame.number)
            check_stored(cfg, frame.faces)
            if not frame.faces:
                image = read_image(frame.path)
                return Rendered(image, np.zeros(image.shape[:2], np.uint8), time.perf_counter() - t0, frame.number)
            item = self._with_masks(self._prepared(pos, plan, base), cfg, base.batch)
            stats = None
            if cfg.uses_color and base.color_smooth > 1:
                if self._stats is None:
                    self._stats = ColorStats(plan, self.predictor())
                stats = self._stats
            faces = face_inputs(item, self.enhanced(base), stats, cfg.color_smooth)
        image, mask = render_frame(item.image, faces, cfg)
        return Rendered(image, mask, time.perf_counter() - t0, frame.number)


def _trim(cache: OrderedDict, size: int) -> None:
    while len(cache) > size:
        cache.popitem(last=False)
