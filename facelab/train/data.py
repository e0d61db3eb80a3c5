"""Training faces: read the aligned face files of one side, re-crop them to the model, cache them in memory, and
turn them into augmented samples.

A :class:`FaceSet` holds every usable face of one side at the model resolution R as uint8 arrays (images
(N, R, R, 3), full-face masks and eyes+mouth masks (N, R, R)) plus each face's yaw. Face files whose face type
differs from the model's are re-cropped from their frame landmarks; the rest are resized. Bad files are skipped and
counted. Sampling (shuffled epochs, or uniform over yaw bins) and the per-sample augmentation are pure given the
``np.random.Generator`` passed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelab.align import (
    canonical_face_type,
    estimate_pose,
    eyes_mouth_mask,
    hull_mask,
    transform_points,
)
from facelab.errors import FacelabError
from facelab.imageops.color import color_transfer
from facelab.imageops.crop import crop_face, face_to_model_matrix
from facelab.train.augment import AugmentConfig, apply_params, random_hsv, random_params, yaw_bins
from facelab.utils.items import ItemErrors, run_items
from facelab.utils.progress import Progress
from facelab.workspace.faces import FaceMeta, list_faces, read_face
from facelab.workspace.holdout import held_out_paths

log = logging.getLogger(__name__)

MASK_PRIORITY = ("learned", "xseg", "wsol")  # stored masks used as the training mask, first present wins


@dataclass(frozen=True, eq=False)
class FaceSet:
    """The usable faces of one side at resolution R: uint8 ``images`` (N,R,R,3), ``masks`` and ``em`` (N,R,R),
    float32 ``yaws`` (N,), file ``names``, and ``skipped`` (bad files not loaded)."""

    images: np.ndarray
    masks: np.ndarray
    em: np.ndarray
    yaws: np.ndarray
    names: tuple[str, ...]
    skipped: int = 0
    held_out: int = 0  # faces kept away from training (see facelab.workspace.holdout)
    failures: tuple[str, ...] = ()  # "face file: why" of every skipped file

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[1])


@dataclass(frozen=True)
class SideSpec:
    """How the samples of one side are augmented."""

    flip: bool
    warp: bool
    hsv_power: float = 0.0
    ct_mode: str = "none"  # recolour toward a random face of the other side (src only in training)
    affine: AugmentConfig = AugmentConfig()  # ranges of the random affine


# ---------------------------------------------------------------------------------------------------------------
# re-crop


def _training_mask(meta: FaceMeta, mat: np.ndarray, lm_model: np.ndarray, resolution: int) -> np.ndarray:
    """float32 (R, R): the first stored mask of :data:`MASK_PRIORITY`, else the landmark hull."""
    for name in MASK_PRIORITY:
        record = meta.mask(name)
        if record is not None:
            face_mask = record.to_face(meta.size)
            return np.clip(crop_face(face_mask, mat, resolution, is_mask=True), 0.0, 1.0)
    return hull_mask(lm_model, resolution)


def _yaw(meta: FaceMeta, lm_model: np.ndarray, resolution: int) -> float:
    yaw = meta.extra.get("yaw")
    if isinstance(yaw, (int, float)) and not isinstance(yaw, bool) and np.isfinite(yaw):
        return float(yaw)
    return float(estimate_pose(lm_model, resolution)[1])


def prepare_face(path: Path, resolution: int, face_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Read one face file and bring it to the model: (image uint8 (R,R,3), mask uint8 (R,R), eyes+mouth uint8
    (R,R), yaw radians). Raises :class:`FacelabError` (or ``ValueError``) for an unusable file."""
    face = read_face(path)
    meta = face.meta
    if face.image.shape[0] != meta.size:
        raise FacelabError(f"{path}: image is {face.image.shape[0]} px but its metadata says {meta.size}; "
                           "re-run extract")
    mat = face_to_model_matrix(meta, resolution, face_type)
    image = crop_face(face.image, mat, resolution)
    lm_model = transform_points(meta.lm_face, mat)
    mask = _training_mask(meta, mat, lm_model, resolution)
    em = eyes_mouth_mask(lm_model, resolution, mask)
    return image, _to_u8(mask), _to_u8(em), _yaw(meta, lm_model, resolution)


def _to_u8(mask: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(mask * 255.0), 0, 255).astype(np.uint8)


def load_faceset(folder: str | Path, resolution: int, face_type: str, progress: Progress | None = None,
                 holdout: float = 0.0) -> FaceSet:
    """Load every usable face file in ``folder`` at the model resolution and face type, but the ``holdout``
    share held out of training (:func:`facelab.workspace.holdout.held_out_paths`).

    Bad files are skipped (logged, counted in ``skipped`` and named in ``failures``, the per-item policy of
    :mod:`facelab.utils.items`); no usable face raises :class:`FacelabError`.
    """
    folder = Path(folder)
    face_type = canonical_face_type(face_type)
    paths = list_faces(folder)
    held = held_out_paths(paths, holdout)
    paths = [p for p in paths if str(p) not in held]
    images, masks, ems, yaws, names = [], [], [], [], []
    errors = ItemErrors()
    if progress is not None:
        progress(0, total=len(paths))

    def prepare(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        try:
            return prepare_face(path, resolution, face_type)
        finally:
            if progress is not None:
                progress(1)

    for path, (image, mask, em, yaw) in run_items(paths, prepare, errors):
        images.append(image)
        masks.append(mask)
        ems.append(em)
        yaws.append(yaw)
        names.append(path.name)
    if not images:
        what = f"none of its {len(paths)} files are readable face files" if paths else "it has no face files"
        raise FacelabError(f"{folder}: no usable aligned faces ({what}); run extract first")
    r = resolution
    return FaceSet(np.stack(images).reshape(-1, r, r, 3), np.stack(masks), np.stack(ems),
                   np.asarray(yaws, np.float32), tuple(names), len(errors), len(held), errors.as_tuple())


# ---------------------------------------------------------------------------------------------------------------
# sampling


class IndexSampler:
    """Draws face indices: shuffled epochs over all faces, or (``uniform_yaw``) a uniformly chosen non-empty yaw
    bin (128 over [-1.2, 1.2] rad) then a face within it."""

    def __init__(self, yaws: np.ndarray, rng: np.random.Generator, uniform_yaw: bool = False) -> None:
        self._n = len(yaws)
        self._rng = rng
        self._bins = yaw_bins(yaws) if uniform_yaw else None
        self._order = np.empty(0, np.int64)

    def draw(self, k: int) -> np.ndarray:
        if self._bins is not None:
            picks = self._rng.integers(len(self._bins), size=k)
            return np.array([self._bins[b][self._rng.integers(len(self._bins[b]))] for b in picks], np.int64)
        out = []
        while len(out) < k:
            if self._order.size == 0:
                self._order = self._rng.permutation(self._n)
            take = min(k - len(out), self._order.size)
            out.extend(self._order[:take].tolist())
            self._order = self._order[take:]
        return np.asarray(out, np.int64)

    def state_dict(self) -> dict:
        """Plain-type state (generator position and the rest of the current epoch) for an exact resume."""
        return {"rng": self._rng.bit_generator.state, "order": self._order.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        order = np.asarray(state["order"], np.int64)
        if order.size and (order.min() < 0 or order.max() >= self._n):
            raise ValueError("saved sampler state does not fit this face set")
        self._order = order


def make_sample(faces: FaceSet, index: int, spec: SideSpec, rng: np.random.Generator,
                ct_faces: FaceSet | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One augmented sample of face ``index``: (warped input (R,R,3), target (R,R,3), mask (R,R), eyes+mouth (R,R)),
    float32 in [0, 1]. With ``spec.ct_mode`` the face is first recoloured toward a random face of ``ct_faces``."""
    image = faces.images[index].astype(np.float32) / 255.0
    if spec.ct_mode != "none" and ct_faces is not None:
        other = ct_faces.images[int(rng.integers(len(ct_faces)))].astype(np.float32) / 255.0
        image = color_transfer(spec.ct_mode, image, other, rng=rng)
    params = random_params(rng, faces.resolution, spec.flip, spec.warp, spec.affine)
    warped = random_hsv(apply_params(image, params, warp=True), rng, spec.hsv_power)
    target = apply_params(image, params, warp=False)
    mask = apply_params(faces.masks[index].astype(np.float32) / 255.0, params, warp=False, is_mask=True)
    em = apply_params(faces.em[index].astype(np.float32) / 255.0, params, warp=False, is_mask=True)
    return warped, target, mask, normalise_peak(em)


def normalise_peak(mask: np.ndarray) -> np.ndarray:
    """``mask`` divided by its maximum (unchanged when all zero): DeepFaceLab rescales the eyes+mouth mask of
    each augmented sample to a peak of 1."""
    peak = float(mask.max()) if mask.size else 0.0
    return mask / peak if peak > 0 else mask


def make_side_batch(faces: FaceSet, indices: np.ndarray, spec: SideSpec, rng: np.random.Generator,
                    ct_faces: FaceSet | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Samples of ``indices`` stacked channel-first: images (2, B, 3, R, R) = [warped, target] and masks
    (2, B, 1, R, R) = [mask, eyes+mouth], float32."""
    r = faces.resolution
    imgs = np.empty((2, len(indices), 3, r, r), np.float32)
    masks = np.empty((2, len(indices), 1, r, r), np.float32)
    for j, idx in enumerate(indices):
        warped, target, mask, em = make_sample(faces, int(idx), spec, rng, ct_faces)
        imgs[0, j], imgs[1, j] = warped.transpose(2, 0, 1), target.transpose(2, 0, 1)
        masks[0, j, 0], masks[1, j, 0] = mask, em
    return imgs, masks


def preview_indices(n_faces: int, n: int) -> np.ndarray:
    """``n`` fixed, evenly spread face indices (repeating when there are fewer faces)."""
    if n_faces <= 0 or n <= 0:
        return np.zeros(0, np.int64)
    if n >= n_faces:
        return np.arange(n, dtype=np.int64) % n_faces
    return np.round(np.linspace(0, n_faces - 1, n)).astype(np.int64)
