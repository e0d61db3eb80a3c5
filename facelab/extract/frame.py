"""One frame: detect (retrying quarter turns), landmarks, plausibility checks, identity filter, largest first."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from facelab.align.geometry import face_transform, matrix_scale, template_matrix, transform_points, warp_to_face
from facelab.align.template import TEMPLATE_33, TEMPLATE_INDICES
from facelab.detect import create_detector
from facelab.detect.base import Detection
from facelab.detect.combine import CnnSecondLook, add_missing, box_iou
from facelab.extract.config import ExtractConfig
from facelab.extract.rotate import box_back, rotate_image, rotation_back
from facelab.landmarks import DlibIdentity, create_landmarks
from facelab.landmarks.refine import fit_landmarks

ROTATIONS = (0, 90, 270, 180)  # DeepFaceLab's retry order
MIN_FRAME_SIDE = 32  # smaller frames cannot hold a face of the minimum size
RECHECK_SIZE = 160  # aligned full-face crop the HOG re-check runs on
RELOOK_GROW = 0.75  # a lost face is looked for in its predicted box grown by this fraction of its side each way
RELOOK_IOU = 0.3  # least overlap of a face found there with the predicted box
MAX_AREA_RATIO = 4.0  # full-face crop area / detector box area (DeepFaceLab's sanity rule)
TORCH_BACKENDS = ("s3fd", "fan")  # backends that take a torch ``device``


@dataclass(frozen=True, eq=False)
class FoundFace:
    """A face accepted in one frame: box and 68 landmarks in frame pixels, plus its scores."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray = field(repr=False)
    score: float
    fit: float
    residual: float
    rotation: int = 0
    identity_distance: float | None = None
    track: int = -1  # video track id (-1: not tracked)
    interpolated: bool = False  # landmarks interpolated across a gap of the track, not found in this frame
    refound: bool = False  # found by looking again where its track lost it

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


@dataclass(frozen=True)
class FrameFaces:
    """Faces of one frame (largest first) and how many candidates were rejected, by reason."""

    faces: tuple[FoundFace, ...]
    frame_size: tuple[int, int]
    rejected: dict[str, int] = field(default_factory=dict)


def _torch_device(name: str) -> str:
    from facelab.utils.device import select_device

    return str(select_device(name))


def template_residual(landmarks: np.ndarray) -> float:
    """RMS distance (template units: face width ~1) of the 33 alignment points from the fitted mean face."""
    fitted = transform_points(landmarks[list(TEMPLATE_INDICES)], template_matrix(landmarks))
    return float(np.sqrt(((fitted - TEMPLATE_33) ** 2).sum(1).mean()))


class FaceFinder:
    """Holds the loaded backends (one per process) and finds the faces of frames."""

    def __init__(self, cfg: ExtractConfig, reference: np.ndarray | None = None) -> None:
        import dlib

        self.cfg = cfg
        dev = {"device": _torch_device(cfg.device)} if {cfg.detector, cfg.landmarks} & set(TORCH_BACKENDS) else {}
        self.detector = create_detector(cfg.detector, min_face=cfg.min_face,
                                        **(dev if cfg.detector in TORCH_BACKENDS else {}))
        self.landmarker = create_landmarks(cfg.landmarks, **(dev if cfg.landmarks in TORCH_BACKENDS else {}))
        # building a HOG detector takes ~0.5 s: reuse the one detecting when there is one
        self._recheck = getattr(self.detector, "hog", None) or dlib.get_frontal_face_detector()
        self.identity = DlibIdentity() if reference is not None else None
        self.reference = reference
        self._cnn: CnnSecondLook | None = None

    @property
    def second_look(self) -> CnnSecondLook | None:
        """dlib's CNN for the second look (loaded when first asked), or None when off or the detector is not HOG."""
        if not self.cfg.second_look or self.cfg.detector != "dlib-hog":
            return None
        if self._cnn is None:
            self._cnn = CnnSecondLook()
        return self._cnn

    def recheck_score(self, image: np.ndarray, landmarks: np.ndarray) -> float:
        """Best dlib-HOG score on the aligned full-face crop (-2 when nothing fires): does it look like a face?"""
        crop = warp_to_face(image, face_transform(landmarks, RECHECK_SIZE, "full"), RECHECK_SIZE, cv2.INTER_LINEAR)
        _, scores, _ = self._recheck.run(crop, 0, -2.0)
        return float(max(scores)) if len(scores) else -2.0

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """(68, 2) frame landmarks of the face in ``box``: one pass, or with ``refine`` the best rolled start and
        a second pass on the upright crop (:func:`facelab.landmarks.refine.fit_landmarks`)."""
        if not self.cfg.refine:
            return self.landmarker.landmarks(image, box)
        return fit_landmarks(self.landmarker, image, box, lambda lm: self.recheck_score(image, lm))

    def _candidates(self, image: np.ndarray, second_look: bool) -> tuple[list[Detection], np.ndarray, int]:
        turns = ROTATIONS if self.cfg.rotations else (0,)
        cnn = self.second_look if second_look else None
        for deg in turns:
            rotated = rotate_image(image, deg)
            dets = self.detector.detect(rotated)
            if cnn is not None and deg == 0:
                dets = add_missing(dets, cnn.detect(rotated))
            if dets:
                return dets, rotated, deg
        return [], image, 0

    def _check(self, image: np.ndarray, det: Detection, lm: np.ndarray, box) -> tuple[str | None, float, float]:
        """(reason to reject or None, fit, residual) for one detection with landmarks in frame pixels."""
        if not np.all(np.isfinite(lm)):
            return "landmarks", -2.0, np.inf
        residual = template_residual(lm)
        if residual > self.cfg.max_residual:
            return "landmarks", -2.0, residual
        side = 1.0 / matrix_scale(face_transform(lm, 1, "full"))
        area = max(1.0, (box[2] - box[0]) * (box[3] - box[1]))
        if side * side > MAX_AREA_RATIO * area:
            return "landmarks", -2.0, residual
        fit = self.recheck_score(image, lm) + float(np.clip(det.score, 0.0, 1.0))
        if fit < self.cfg.min_fit:
            return "not_a_face", fit, residual
        return None, fit, residual

    def find(self, image: np.ndarray, second_look: bool = False) -> FrameFaces:
        """Faces in uint8 RGB ``image``; a frame too small for a face gives none. ``second_look``: a photo, where
        dlib's CNN also looks at a reduced copy (when the config allows it)."""
        h, w = image.shape[:2]
        rejected: dict[str, int] = {}
        if min(h, w) < max(MIN_FRAME_SIDE, self.cfg.min_face):
            return FrameFaces((), (w, h), {"tiny_frame": 1})
        dets, rotated, deg = self._candidates(image, second_look)
        faces = self.accept(image, rotated, deg, dets, rejected)
        faces.sort(key=lambda f: f.area, reverse=True)
        if self.cfg.max_faces > 0:
            if len(faces) > self.cfg.max_faces:
                rejected["max_faces"] = len(faces) - self.cfg.max_faces
            faces = faces[: self.cfg.max_faces]
        return FrameFaces(tuple(faces), (w, h), rejected)

    def relook(self, image: np.ndarray, box: tuple[float, float, float, float]) -> FoundFace | None:
        """The face a track lost, looked for again near its predicted ``box``: dlib's CNN in the grown region
        (second look on), else the landmark model in the box itself; either must pass the usual checks."""
        side = max(box[2] - box[0], box[3] - box[1])
        g = side * RELOOK_GROW
        dets = []
        if self.second_look is not None:
            region = (box[0] - g, box[1] - g, box[2] + g, box[3] + g)
            dets = [d for d in self.second_look.detect_region(image, region, side) if box_iou(d.box, box) >= RELOOK_IOU]
            dets.sort(key=lambda d: -box_iou(d.box, box))
        for det in dets[:1] + [Detection(box, 0.0)]:
            faces = self.accept(image, image, 0, [det], {})
            if faces:
                return faces[0]
        return None

    def accept(self, image: np.ndarray, rotated: np.ndarray, deg: int, dets: list[Detection],
               rejected: dict[str, int]) -> list[FoundFace]:
        """Landmarks and checks for detections made on ``image`` turned by ``deg``; counts rejects by reason."""
        h, w = image.shape[:2]
        back = rotation_back(deg, w, h)
        faces = []
        for det in dets:
            box = box_back(det.box, back)
            if min(box[2] - box[0], box[3] - box[1]) < self.cfg.min_face:
                rejected["small"] = rejected.get("small", 0) + 1
                continue
            lm = transform_points(self.landmarks(rotated, det.box), back)
            reason, fit, residual = self._check(image, det, lm, box)
            dist = None
            if reason is None and self.identity is not None:
                dist = float(np.linalg.norm(self.identity.embed(image, lm) - self.reference))
                reason = "other_identity" if dist > self.cfg.reference_threshold else None
            if reason is not None:
                rejected[reason] = rejected.get(reason, 0) + 1
                continue
            faces.append(FoundFace(box, lm, float(det.score), fit, residual, deg, dist))
        return faces


def reference_embedding(path: str, cfg: ExtractConfig) -> np.ndarray:
    """128-D identity of the largest face in the reference image ``path`` (FacelabError when it has none)."""
    from facelab.errors import FacelabError
    from facelab.workspace import read_image

    image = read_image(path)
    finder = FaceFinder(cfg)
    found = finder.find(image, second_look=True)
    if not found.faces:
        raise FacelabError(f"no face found in reference image {path}; use a clear, frontal photo of the person")
    return DlibIdentity().embed(image, found.faces[0].landmarks)
