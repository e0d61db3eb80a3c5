"""The training-free swap model: an index of source faces, and a swap that warps the best-matching one onto each
destination face.

"Training" (:func:`build_index`) reads every usable source face, re-crops it to the model's face type and
resolution, and stores it (JPEG bytes) with its landmarks, source frame number and a quality verdict
(:mod:`facelab.models.warp.quality`: occluded or badly landmarked faces are never shown). Swapping a destination
track (:meth:`WarpModel.plan_tracks`) picks a source face per frame by Viterbi over match costs plus a switch
penalty (:mod:`facelab.models.warp.select`), cross-fading at switches; each face is then warped piecewise-affinely
onto the destination landmarks (:mod:`facelab.models.warp.pwa`) and handed to the normal merge (colour transfer,
masks and blending unchanged). It plays the graphics-based row of the DeepFaceLab paper's comparison (fit, warp,
segment, blend): what the pipeline gives in seconds, beside what training adds.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np
import torch
from torch import nn

from facelab.align import FACE_TYPE_NAMES, canonical_face_type, hull_mask, transform_points, umeyama
from facelab.errors import FacelabError
from facelab.imageops.color import color_transfer
from facelab.models.base import TRAINING_FREE, SwapModel
from facelab.models.common import coerce_arch
from facelab.models.warp.features import FaceFeatures, MatchWeights, cost_matrix, describe_many, match_costs
from facelab.models.warp.pwa import warp_to_landmarks
from facelab.models.warp.quality import assess
from facelab.models.warp.select import crossfade_weights, frame_gap_pair_cost, select_track
from facelab.workspace.images import decode_image

log = logging.getLogger(__name__)

Choice = list[tuple[int, float]]  # (source face index, weight), weights summing to 1
STABLE = tuple(range(17, 68))  # the points the source geometry is fitted on (no jaw)
INNER = tuple(range(27, 68))  # nose, eyes and mouth: where the source's own geometry may be kept


@dataclass(frozen=True)
class WarpArch:
    """Settings of a training-free model, fixed when it is indexed (stored like a trained model's architecture).

    switch_cost: match-cost units a change of source face must save before it happens (hysteresis); crossfade:
    frames over which a change blends old and new; shape_keep: share of the source face's own geometry of eyes,
    nose and mouth kept on top of the destination's landmarks (0 = exactly the destination's expression, more =
    more of the source's identity); min_usable: fewest usable source faces accepted.
    """

    resolution: int = field(default=256, metadata={
        "help": "Face resolution in pixels. Fixed at creation.", "range": (16, 1024)})
    face_type: str = field(default="whole_face", metadata={
        "help": "Face type: h, mf, f, wf, head or a DeepFaceLab spelling. Fixed at creation.",
        "choices": FACE_TYPE_NAMES})
    switch_cost: float = field(default=2.0, metadata={
        "help": "Match cost a change of source face must save before it happens (hysteresis). Fixed at creation.",
        "range": (0, None)})
    crossfade: int = field(default=6, metadata={
        "help": "Frames over which a change of source face blends old and new. Fixed at creation.", "range": (0, 1000)})
    shape_keep: float = field(default=0.3, metadata={
        "help": "Share (0-1) of the source face's own eyes, nose and mouth geometry kept on the "
                "destination's landmarks. Fixed at creation.", "range": (0, 1)})
    min_usable: int = field(default=20, metadata={
        "help": "Fewest usable source faces accepted. Fixed at creation.", "range": (1, 1_000_000)})
    jpeg_quality: int = field(default=95, metadata={
        "help": "JPEG quality (50-100) of the indexed source faces. Fixed at creation.", "range": (50, 100)})

    def __post_init__(self) -> None:
        if self.resolution < 32 or self.resolution > 1024:
            raise ValueError(f"resolution {self.resolution} must be in [32, 1024]")
        object.__setattr__(self, "face_type", canonical_face_type(self.face_type))
        if self.switch_cost < 0 or self.crossfade < 0 or self.min_usable < 1:
            raise ValueError("switch_cost and crossfade must be >= 0 and min_usable >= 1")
        if not 0.0 <= self.shape_keep <= 1.0:
            raise ValueError(f"shape_keep must be in [0, 1], not {self.shape_keep}")
        if not 50 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [50, 100], not {self.jpeg_quality}")


FACE_CACHE = 256  # decoded source faces kept in memory (a track mostly reuses a few)
_BUFFERS = ("jpeg", "offsets", "landmarks", "frames", "usable", "score")


class WarpModel(nn.Module, SwapModel):
    """The training-free swap model. Its index lives in buffers (so it saves and loads like any model's weights):
    ``jpeg`` (all faces' JPEG bytes, uint8), ``offsets`` (N+1, int64), ``landmarks`` (N, 68, 2) in crop pixels,
    ``frames`` (N,) source frame numbers, ``usable`` (N,) bool, ``score`` (N,) quality in [0, 1]."""

    name = "warp"
    kind = TRAINING_FREE
    arch_cls = WarpArch

    def __init__(self, arch: WarpArch | Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.arch = coerce_arch(WarpArch, arch, self.name)
        self.weights = MatchWeights()
        self._set_index({"jpeg": torch.zeros(0, dtype=torch.uint8), "offsets": torch.zeros(1, dtype=torch.int64),
                         "landmarks": torch.zeros(0, 68, 2), "frames": torch.zeros(0, dtype=torch.int64),
                         "usable": torch.zeros(0, dtype=torch.bool), "score": torch.zeros(0)})

    # -- the index ----------------------------------------------------------------------------------------------
    def _set_index(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for key in _BUFFERS:
            self.register_buffer(key, torch.as_tensor(tensors[key]).detach().cpu().clone())
        self._faces: OrderedDict[int, np.ndarray] = OrderedDict()  # decoded faces, most recent last
        n = len(self)
        self._features = describe_many(self.landmarks.numpy(), self.resolution) if n else None

    def __len__(self) -> int:
        return int(self.offsets.numel() - 1)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Take the index of ``state_dict`` whatever its size (the index is data, not a fixed set of weights)."""
        missing = [k for k in _BUFFERS if k not in state_dict]
        extra = [k for k in state_dict if k not in _BUFFERS]
        if strict and (missing or extra):
            raise KeyError(f"warp index: missing {missing}, unexpected {extra}")
        self._set_index({**{k: getattr(self, k) for k in _BUFFERS}, **{k: state_dict[k] for k in _BUFFERS
                                                                        if k in state_dict}})
        check_index(self)
        return missing, extra

    @property
    def features(self) -> FaceFeatures:
        if self._features is None:
            raise FacelabError("the warp model's index is empty; run `python main.py train --model warp`")
        return self._features

    def face(self, index: int) -> np.ndarray:
        """Source face ``index`` as uint8 RGB (R, R, 3); the last :data:`FACE_CACHE` decoded faces are kept."""
        if index in self._faces:
            self._faces.move_to_end(index)
            return self._faces[index]
        a, b = int(self.offsets[index]), int(self.offsets[index + 1])
        try:  # the index comes from a checkpoint file: the same size guard as every image read
            self._faces[index] = decode_image(self.jpeg[a:b].numpy().tobytes(), f"source face {index}",
                                              max_pixels=1024 * 1024)
        except FacelabError as exc:
            raise FacelabError(f"the warp index is damaged ({exc}); index the source faces again") from exc
        while len(self._faces) > FACE_CACHE:
            self._faces.popitem(last=False)
        return self._faces[index]

    # -- choosing source faces ----------------------------------------------------------------------------------
    def plan_tracks(self, tracks: Mapping[int, Sequence[tuple[int, np.ndarray]]]) -> dict[tuple[int, int], Choice]:
        """For every face track (face index -> [(frame position, crop landmarks (68, 2))], in frame order): the
        source faces to show per frame, ``{(face index, position): [(source index, weight), ...]}``."""
        out: dict[tuple[int, int], Choice] = {}
        usable = self.usable.numpy()
        pair = frame_gap_pair_cost(self.frames.numpy(), self.arch.switch_cost)
        for face_index, track in tracks.items():
            if not track:
                continue
            track = sorted(track, key=lambda item: item[0])
            dst = describe_many(np.stack([lm for _, lm in track]), self.resolution)
            costs = cost_matrix(dst, self.features, self.weights)
            path = select_track(costs, self.arch.switch_cost, usable, pair_cost=pair)
            for (pos, _), choice in zip(track, crossfade_weights(path, self.arch.crossfade), strict=True):
                out[(face_index, pos)] = choice
        return out

    def best_single(self, landmarks: np.ndarray, near_frame: int | None = None, gap: int = 12) -> Choice:
        """The best usable source face for one face on its own (no track); with ``near_frame`` (a source face's
        own frame number) faces within ``gap`` frames of it are not chosen, so a source face is rebuilt from
        other moments of the video, never from itself."""
        costs = match_costs(describe_many(np.asarray(landmarks)[None], self.resolution), self.features,
                            self.weights)
        allowed = self.usable.numpy().copy() if bool(self.usable.any()) else np.ones(len(self), bool)
        if near_frame is not None:
            far = np.abs(self.frames.numpy() - int(near_frame)) > gap
            allowed = allowed & far if (allowed & far).any() else far
        return [(int(np.argmin(np.where(allowed, costs, np.inf))), 1.0)]

    # -- swapping -----------------------------------------------------------------------------------------------
    def target_landmarks(self, src_lm: np.ndarray, dst_lm: np.ndarray) -> np.ndarray:
        """Where the source face's points land: the destination's landmarks, with ``shape_keep`` of the source's
        own eyes/nose/mouth geometry (source landmarks fitted onto the destination by a similarity)."""
        keep = self.arch.shape_keep
        if keep <= 0:
            return dst_lm
        mat = umeyama(src_lm[list(STABLE)], dst_lm[list(STABLE)])
        fitted = transform_points(src_lm, mat[:2])
        out = np.array(dst_lm, np.float64)
        out[list(INNER)] += keep * (fitted[list(INNER)] - out[list(INNER)])
        return out

    def swap_one(self, dst_lm: np.ndarray, choice: Choice) -> tuple[np.ndarray, np.ndarray]:
        """(face (R, R, 3) float32, coverage (R, R)) of ``choice`` warped onto ``dst_lm`` (crop pixels)."""
        r = self.resolution
        face = np.zeros((r, r, 3), np.float32)
        cover = np.zeros((r, r), np.float32)
        for index, weight in choice:
            src_lm = self.landmarks[index].numpy().astype(np.float64)
            warped, cov = warp_to_landmarks(self.face(index), src_lm, self.target_landmarks(src_lm, dst_lm), r,
                                            self.face_type)
            face += weight * warped
            cover += weight * cov
        return face, cover

    def swap(self, crops: np.ndarray, landmarks: np.ndarray,
             choices: Sequence[Choice | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Merge's prediction for B destination faces: ``crops`` (B, R, R, 3), ``landmarks`` (B, 68, 2) in crop
        pixels, ``choices`` from :meth:`plan_tracks` (None: the best face for that frame alone). Returns faces
        (B, R, R, 3) float32, predicted masks (B, R, R) (the destination hull where the warp covers it) and
        destination masks (B, R, R) (the destination hull)."""
        r = self.resolution
        faces, prd, dst = [], [], []
        for crop, lm, choice in zip(crops, landmarks, choices, strict=True):
            lm = np.asarray(lm, np.float64)
            face, cover = self.swap_one(lm, choice if choice else self.best_single(lm))
            keep = skin_mask(lm, r) * np.clip(cover, 0.0, 1.0)
            crop = np.asarray(crop, np.float32)
            # the source's skin tone is matched to the destination's on the same pixels before the two meet, so the
            # seam inside the face (source skin -> destination forehead) carries no colour step
            face = color_transfer("rct", face, crop, keep > 0.5, keep > 0.5)
            faces.append(face * keep[..., None] + crop * (1.0 - keep[..., None]))
            prd.append(keep)
            dst.append(hull_mask(lm, r))
        return np.stack(faces), np.stack(prd).astype(np.float32), np.stack(dst).astype(np.float32)


def skin_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """float32 (size, size) in [0, 1]: where a warped source face shows its own skin, not its hair or background:
    the landmark hull with the brows raised a little, eroded by size/40 and feathered (sigma size/60). Beyond it
    the destination's own pixels stay, so a source's fringe or temple hair never enters the swap."""
    hull = hull_mask(landmarks, size, eyebrows_expand=0.4)
    grow = max(1, size // 40)
    hull = cv2.erode(hull, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    return np.clip(cv2.GaussianBlur(hull, (0, 0), max(0.5, size / 60.0)), 0.0, 1.0).astype(np.float32)


def check_index(model: WarpModel) -> None:
    """Shapes of a loaded index agree with each other (a foreign or damaged file is an error, not a crash later)."""
    n = len(model)
    ok = (model.landmarks.shape == (n, 68, 2) and model.frames.shape == (n,) and model.usable.shape == (n,)
          and model.score.shape == (n,) and model.offsets.dtype == torch.int64
          and (n == 0 or (int(model.offsets[0]) == 0 and int(model.offsets[-1]) == model.jpeg.numel()
                          and bool((model.offsets[1:] >= model.offsets[:-1]).all()))))
    if not ok:
        raise ValueError("the index's arrays do not agree in size")


# -- building the index ------------------------------------------------------------------------------------------
def frame_number(source_frame: str, fallback: int) -> int:
    """The trailing digits of a source frame's stem (``data_src/000123.png`` -> 123), else ``fallback``."""
    found = re.search(r"(\d+)$", Path(source_frame).stem)
    return int(found.group(1)) if found else int(fallback)


def read_source_faces(paths: Sequence[Path], resolution: int, face_type: str,
                      progress: Callable[[int], None] | None = None) -> tuple[list, int]:
    """Re-crop readable face files to the model: ``([(image uint8 (R,R,3), landmarks (68,2), frame number)], bad
    files)``; a file that fails is logged and skipped (the per-item policy of :mod:`facelab.utils.items`)."""
    from facelab.imageops.crop import crop_face, face_to_model_matrix
    from facelab.utils.items import ItemErrors
    from facelab.workspace.faces import read_face

    faces, errors = [], ItemErrors()
    for i, path in enumerate(paths):
        with errors.guard(Path(path).name):
            face = read_face(path)
            mat = face_to_model_matrix(face.meta, resolution, face_type)
            lm = transform_points(face.meta.lm_face, mat)
            faces.append((crop_face(face.image, mat, resolution), lm, frame_number(face.meta.source_frame, i)))
        if progress is not None:
            progress(1)
    return faces, len(errors)


def index_from_faces(faces: Sequence[tuple[np.ndarray, np.ndarray, int]], arch: WarpArch) -> WarpModel:
    """A model indexing ``faces`` (uint8 RGB crops at ``arch.resolution``, their crop landmarks, frame numbers);
    every face is judged by :func:`facelab.models.warp.quality.assess`."""
    if not faces:
        raise FacelabError("no readable source faces to index; run `python main.py extract --side src` first")
    images = np.stack([f[0] for f in faces])
    lms = np.stack([f[1] for f in faces]).astype(np.float32)
    quality = assess(images, lms, arch.resolution, face_type=arch.face_type)
    blobs = []
    for image in images:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, arch.jpeg_quality])
        blobs.append(np.frombuffer(buf.tobytes(), np.uint8))
    offsets = np.concatenate([[0], np.cumsum([len(b) for b in blobs])]).astype(np.int64)
    model = WarpModel(arch)
    model.load_state_dict({"jpeg": torch.from_numpy(np.concatenate(blobs)), "offsets": torch.from_numpy(offsets),
                           "landmarks": torch.from_numpy(lms), "frames": torch.tensor([f[2] for f in faces]),
                           "usable": torch.from_numpy(quality.usable.copy()),
                           "score": torch.from_numpy(quality.score.copy())})
    usable = int(quality.usable.sum())
    if usable < arch.min_usable:
        raise FacelabError(f"only {usable} of {len(faces)} source faces are usable (unoccluded, eyes open, landmarks "
                           f"in place); the training-free model needs at least {arch.min_usable}: extract more "
                           "source frames (a longer clip, or `video extract data_src` without --fps)")
    return model


def build_index(folder: Path, arch: WarpArch | Mapping[str, Any] | None = None, exclude: set[str] | None = None,
                progress: Callable[[int], None] | None = None) -> WarpModel:
    """Index the face files of ``folder`` (but those in ``exclude``, e.g. held out) into a new model."""
    from facelab.workspace.faces import list_faces

    arch = coerce_arch(WarpArch, arch, WarpModel.name)
    paths = [p for p in list_faces(folder) if str(p) not in (exclude or set())]
    faces, bad = read_source_faces(paths, arch.resolution, arch.face_type, progress)
    if bad:
        log.warning("%d unreadable face files in %s were skipped", bad, folder)
    return index_from_faces(faces, arch)
