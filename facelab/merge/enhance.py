"""Face enhancers at merge time (GFPGAN 1.4, CodeFormer, GPEN-BFR; their published ONNX exports) via onnxruntime.

The predicted face (model crop, R x R) is warped by five landmarks onto the enhancer's own template and size
(``ffhq_512`` at 512 px for the three published exports), enhanced, warped back and laid over the prediction under
a feathered box mask, then blended with it by ``enhancer_blend`` percent. This happens before colour transfer and
paste-back, on whole batches, as the model's own predictions do.

The exports' conventions (as FaceFusion's face enhancer module uses them): input ``input`` float32 (N, 3, S, S),
RGB scaled to [-1, 1]; CodeFormer also takes ``weight``, a float64 (1,) fidelity weight; the first output is
(N, 3, S, S) RGB in [-1, 1] (clipped). Exports with a fixed batch of 1 are run one face at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facelab.align import invert_affine, umeyama
from facelab.errors import FacelabError
from facelab.weights.runtime import open_session, refuse, signature

#: Five-point templates in units of the crop size: eye centres, nose tip, mouth corners (FFHQ and ArcFace 128).
TEMPLATES: dict[str, np.ndarray] = {
    "ffhq_512": np.array([[0.37691676, 0.46864664], [0.62285697, 0.46912813], [0.50123859, 0.61331904],
                          [0.39308822, 0.72541100], [0.61150205, 0.72490465]]),
    "arcface_128": np.array([[0.36167656, 0.40387734], [0.63696719, 0.40235469], [0.50019687, 0.56044219],
                             [0.38710391, 0.72160547], [0.61507734, 0.72034453]]),
}
#: The catalogue's enhancers: (template, input size).
KNOWN: dict[str, tuple[str, int]] = {
    "gfpgan_1.4": ("ffhq_512", 512),
    "codeformer": ("ffhq_512", 512),
    "gpen_bfr_512": ("ffhq_512", 512),
}
DEFAULT_TEMPLATE = "ffhq_512"
FIDELITY_WEIGHT = 0.5  # CodeFormer's ``weight`` input (FaceFusion's default): 0 = most restored, 1 = most faithful
BOX_BLUR = 0.3  # feather of the paste-back box, fraction of half the enhancer size
EXPECTED = ("input 'input' float32 (N, 3, S, S) RGB in [-1, 1] (and optionally 'weight' float64 (1,)); "
            "first output (N, 3, S, S) in [-1, 1]")


def landmarks5(lm68: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks -> (5, 2): left eye centre, right eye centre, nose tip, left and right mouth corner."""
    lm = np.asarray(lm68, np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[48], lm[54]])


def template_matrix5(lm68: np.ndarray, template: str, size: int) -> np.ndarray:
    """The (2, 3) similarity taking a face's 5 points onto ``template`` at ``size`` px (least squares)."""
    return umeyama(landmarks5(lm68), TEMPLATES[template] * size)[:2]


def box_mask(size: int, blur: float = BOX_BLUR) -> np.ndarray:
    """A square of ones with a zero border and a Gaussian feather (float32 (size, size) in [0, 1])."""
    amount = int(size * 0.5 * blur)
    edge = max(amount // 2, 1)
    m = np.ones((size, size), np.float32)
    m[:edge], m[-edge:], m[:, :edge], m[:, -edge:] = 0, 0, 0, 0
    return cv2.GaussianBlur(m, (0, 0), amount * 0.25) if amount > 0 else m


@dataclass
class FaceEnhancer:
    """An enhancer ONNX session, checked for the expected signature when opened."""

    session: object
    path: Path
    size: int
    template: str
    batch_limit: int | None  # 1 for exports with a fixed batch of one
    has_weight: bool
    seconds: float = 0.0
    faces: int = 0

    @classmethod
    def open(cls, path: Path, device: str = "cpu", template: str | None = None) -> "FaceEnhancer":
        session = open_session(path, device, "face enhancer")
        ins, outs = signature(session)
        by_name = {p.name: p for p in ins}
        main = by_name.get("input")
        extra = set(by_name) - {"input", "weight"}
        ok = main is not None and not extra and len(main.shape) == 4 and main.shape[1] in (3, None) and outs \
            and len(outs[0].shape) == 4 and "float" in main.dtype
        size = main.shape[2] if ok and main.shape[2] else KNOWN.get(path.stem, (DEFAULT_TEMPLATE, 512))[1]
        if ok and main.shape[2] != main.shape[3]:
            ok = False
        if ok and outs[0].shape[2] not in (size, None):
            ok = False
        if not ok:
            raise refuse(path, "face enhancer", EXPECTED, session)
        template = template or KNOWN.get(path.stem, (DEFAULT_TEMPLATE, 0))[0]
        if template not in TEMPLATES:
            raise FacelabError(f"unknown enhancer template {template!r}; choose one of: {', '.join(TEMPLATES)}")
        return cls(session, path, int(size), template, 1 if main.shape[0] == 1 else None, "weight" in by_name)

    def run(self, crops: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) float32 RGB in [0, 1] at the enhancer's size -> enhanced, same shape and range."""
        if crops.ndim != 4 or crops.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"enhancer {self.path.name} takes (B, {self.size}, {self.size}, 3), got {crops.shape}")
        x = np.ascontiguousarray((crops.transpose(0, 3, 1, 2) * 2.0 - 1.0).astype(np.float32))
        step = self.batch_limit or len(x)
        outs = []
        for i in range(0, len(x), step):
            feed = {"input": x[i:i + step]}
            if self.has_weight:
                feed["weight"] = np.array([FIDELITY_WEIGHT], np.float64)
            y = np.asarray(self.session.run(None, feed)[0], np.float32)  # type: ignore[attr-defined]
            if y.shape != feed["input"].shape:
                raise FacelabError(f"{self.path} returned shape {y.shape} for input {feed['input'].shape}; "
                                   f"expected {EXPECTED}")
            outs.append(y)
        y = np.concatenate(outs)
        return ((np.clip(y, -1.0, 1.0) + 1.0) * 0.5).transpose(0, 2, 3, 1).astype(np.float32)

    def enhance(self, faces: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """Enhance predicted faces (B, R, R, 3) float32 [0, 1] given their (B, 68, 2) landmarks in crop pixels.

        Each face is warped onto the template, enhanced, warped back and laid over the face under the feathered
        box; outside the box the face is unchanged. Returns (B, R, R, 3) float32 in [0, 1].
        """
        t0 = time.perf_counter()
        b, r = faces.shape[0], faces.shape[1]
        s = self.size
        mats = [template_matrix5(lm, self.template, s) for lm in landmarks]
        crops = np.stack([cv2.warpAffine(faces[i], mats[i], (s, s), flags=cv2.INTER_LINEAR,
                                         borderMode=cv2.BORDER_REPLICATE) for i in range(b)])
        enhanced = self.run(crops)
        box = box_mask(s)
        out = np.empty_like(faces, dtype=np.float32)
        for i in range(b):
            inv = invert_affine(mats[i])
            back = cv2.warpAffine(enhanced[i], inv, (r, r), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            m = cv2.warpAffine(box, inv, (r, r), flags=cv2.INTER_LINEAR)[..., None]
            out[i] = faces[i] * (1.0 - m) + back * m
        self.seconds += time.perf_counter() - t0
        self.faces += b
        return np.clip(out, 0.0, 1.0)


def blend(faces: np.ndarray, enhanced: np.ndarray, percent: int) -> np.ndarray:
    """``percent`` of the enhanced face over the prediction (0 = prediction, 100 = enhanced)."""
    a = float(percent) / 100.0
    return (faces * (1.0 - a) + enhanced * a).astype(np.float32)


class EnhancedPredictor:
    """A predictor whose predicted faces go through a face enhancer (blended by ``percent``) before rendering."""

    def __init__(self, inner, enhancer: FaceEnhancer, percent: int) -> None:
        self.inner = inner
        self.enhancer = enhancer
        self.percent = int(percent)
        self.resolution = inner.resolution
        self.face_type = inner.face_type

    def begin(self, tracks) -> None:
        start = getattr(self.inner, "begin", None)
        if start is not None:
            start(tracks)

    def __call__(self, crops: np.ndarray, landmarks: np.ndarray, keys: Sequence = ()):
        faces, prd, dst = self.inner(crops, landmarks, keys)
        if self.percent > 0:
            faces = blend(faces, self.enhancer.enhance(faces, landmarks), self.percent)
        return faces, prd, dst


def open_enhancer(name_or_path: str, device: str = "cpu") -> FaceEnhancer:
    """A catalogue enhancer (``gfpgan_1.4``, ``codeformer``, ``gpen_bfr_512``) or an ``.onnx`` file."""
    from facelab.weights.catalog import resolve_onnx

    path, entry = resolve_onnx(name_or_path, "enhancer")
    template = KNOWN[entry.name][0] if entry is not None and entry.name in KNOWN else None
    return FaceEnhancer.open(path, device, template)


def with_enhancer(predictor, name_or_path: str, percent: int, device: str = "cpu"):
    """``predictor`` unchanged when ``name_or_path`` is ``none``, else wrapped in :class:`EnhancedPredictor`."""
    if not name_or_path or name_or_path == "none":
        return predictor
    return EnhancedPredictor(predictor, open_enhancer(name_or_path, device), percent)
