"""Mask modes of the merge and the mask operations (erode/dilate, blur at 4x model resolution).

A mask mode is a product or sum of terms: ``full``, ``dst`` (landmark hull), ``learned-prd``, ``learned-dst`` and
``stored:<name>`` (a mask stored in the face file, e.g. ``wsol``, ``bas``, ``sat``), and the model-file terms
``occluder`` (an XSeg-style occluder ONNX) and ``region:<names>`` (face-parser regions, e.g. ``region:skin,nose``),
computed on the destination crop. The registry lists the modes a user may pick; ``stored:<name>`` stands for any
stored mask name; a mode with a model-file term may combine any terms with ``*`` (or ``+``). Masks are float32 HW
in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import cv2
import numpy as np

from facelab.errors import FacelabError
from facelab.utils.registry import Registry

NOISE_FLOOR = 1.0 / 255.0
STORED = "stored:"
OCCLUDER = "occluder"
REGION = "region:"
BASE_TERMS = ("full", "dst", "learned-prd", "learned-dst")
#: The 19 classes of the BiSeNet face parser (face-parsing.PyTorch's CelebAMask-HQ labels), name -> index.
PARSER_REGIONS: dict[str, int] = {name: i for i, name in enumerate((
    "background", "skin", "left-eyebrow", "right-eyebrow", "left-eye", "right-eye", "glasses", "left-ear",
    "right-ear", "earring", "nose", "mouth", "upper-lip", "lower-lip", "neck", "necklace", "cloth", "hair", "hat"))}

MaskCombiner = Callable[[list[np.ndarray]], np.ndarray]
MASK_MODES: Registry[tuple[str, ...]] = Registry("mask mode")


def _terms(*names: str) -> Callable[[], tuple[str, ...]]:
    return lambda: names


for _name, _help in (
    ("full", "the whole predicted square"),
    ("dst", "convex hull of the destination landmarks"),
    ("learned-prd", "mask the model learned for the predicted (source) face"),
    ("learned-dst", "mask the model learned for the destination face"),
    ("learned-prd*learned-dst", "product of both learned masks"),
    ("learned-prd+learned-dst", "sum of both learned masks, clipped"),
    ("stored:NAME", "a mask stored in the face file (e.g. stored:wsol, stored:bas, stored:sat)"),
    ("stored:NAME*learned-prd", "stored mask times learned-prd"),
    ("stored:NAME*learned-prd*learned-dst", "stored mask times both learned masks"),
    ("occluder", "visible face by an occluder model file (models fetch xseg_1), on the destination crop"),
    ("occluder*learned-prd", "occluder times learned-prd"),
    ("occluder*dst", "occluder times the landmark hull"),
    ("region:skin,nose,mouth", "face-parser regions (models fetch bisenet_resnet_34); any of: "
     + ",".join(PARSER_REGIONS)),
    ("region:skin,nose,mouth*occluder", "parser regions times the occluder"),
):
    MASK_MODES.register(_name, _help)(_terms(*_name.replace("+", "*").split("*")))


@dataclass(frozen=True)
class MaskSpec:
    """A parsed mask mode: its terms, how they combine, and the stored mask name if any."""

    terms: tuple[str, ...]
    op: str  # "*" or "+"
    stored: str | None = None


def model_terms(spec: MaskSpec) -> tuple[str, ...]:
    """The terms of ``spec`` computed by model files (``occluder``, ``region:...``)."""
    return tuple(t for t in spec.terms if t == OCCLUDER or t.startswith(REGION))


def _parse_model_mode(mode: str) -> MaskSpec:
    """A mode with ``occluder`` / ``region:`` terms: any known terms joined by one operator."""
    if "*" in mode and "+" in mode:
        raise FacelabError(f"mask mode {mode!r} mixes * and +; join its terms with one of them")
    op = "+" if "+" in mode else "*"
    terms, stored = [], None
    for term in mode.split(op):
        if term.startswith(REGION):
            names = [n.strip() for n in term[len(REGION):].split(",") if n.strip()]
            unknown = [n for n in names if n not in PARSER_REGIONS]
            if not names or unknown:
                raise FacelabError(f"mask mode {mode!r}: unknown face region {(unknown or [''])[0]!r}; choose from: "
                                   + ", ".join(PARSER_REGIONS))
            term = REGION + ",".join(names)
        elif term.startswith(STORED) and len(term) > len(STORED):
            if stored is not None:
                raise FacelabError(f"mask mode {mode!r} names two stored masks; use one")
            stored = term[len(STORED):]
        elif term not in (*BASE_TERMS, OCCLUDER):
            raise FacelabError(f"mask mode {mode!r}: unknown term {term!r}; terms are {', '.join(BASE_TERMS)}, "
                               "stored:<name>, occluder, region:<names>")
        terms.append(term)
    return MaskSpec(tuple(terms), op, stored)


def parse_mask_mode(mode: str) -> MaskSpec:
    """Parse a mask mode; raises :class:`FacelabError` listing the choices when it is not one."""
    if any(t == OCCLUDER or t.startswith(REGION) for t in mode.replace("+", "*").split("*")):
        return _parse_model_mode(mode)
    stored = None
    generic = mode
    if mode.startswith(STORED):
        head, _, rest = mode[len(STORED):].partition("*")
        if not head:
            raise FacelabError(f"mask mode {mode!r} needs a mask name after 'stored:', e.g. stored:wsol")
        stored = head
        generic = "stored:NAME" + (f"*{rest}" if rest else "")
    MASK_MODES.get(generic)  # raises with the list of choices
    op = "+" if "+" in generic else "*"
    terms = tuple(f"{STORED}{stored}" if t == "stored:NAME" else t for t in generic.replace("+", "*").split("*"))
    return MaskSpec(terms, op, stored)


@dataclass(frozen=True)
class MaskInputs:
    """What a mask mode may use, all at model resolution R (float32 R x R in [0, 1])."""

    size: int
    prd: np.ndarray | None = None
    dst: np.ndarray | None = None
    hull: np.ndarray | None = None
    stored: Mapping[str, np.ndarray] = field(default_factory=dict)
    model: Mapping[str, np.ndarray] = field(default_factory=dict)  # occluder / region terms, computed by merge


def build_mask(spec: MaskSpec, inputs: MaskInputs) -> np.ndarray:
    """The working mask (R x R float32) of ``spec``; values below 1/255 are set to 0 (noise)."""
    parts = [_term(t, inputs) for t in spec.terms]
    out = parts[0].copy()
    for p in parts[1:]:
        out = out * p if spec.op == "*" else out + p
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    out[out < NOISE_FLOOR] = 0.0
    return out


def _term(term: str, inputs: MaskInputs) -> np.ndarray:
    r = inputs.size
    if term == "full":
        return np.ones((r, r), np.float32)
    if term.startswith(STORED):
        name = term[len(STORED):]
        if name not in inputs.stored:
            raise FacelabError(f"face has no stored mask {name!r}; run `python main.py mask` or pick another mask mode")
        m = inputs.stored[name]
    elif term == OCCLUDER or term.startswith(REGION):
        if term not in inputs.model:
            raise FacelabError(f"mask term {term!r} was not computed for this face")
        m = inputs.model[term]
    else:
        m = {"dst": inputs.hull, "learned-prd": inputs.prd, "learned-dst": inputs.dst}[term]
        if m is None:
            raise FacelabError(f"mask term {term!r} is not available for this face")
    m = np.asarray(m, np.float32)
    if m.shape != (r, r):
        raise ValueError(f"mask {term} has shape {m.shape}, expected {(r, r)}")
    return m


# ---------------------------------------------------------------------------------------------------------------
# erode / dilate / blur at 4x model resolution


def refine_mask(mask: np.ndarray, input_size: int, erode: int, blur: int, work_size: int | None = None) -> np.ndarray:
    """Erode (erode > 0) or dilate (< 0) with an elliptical kernel, fade to zero at the border, Gaussian blur.

    ``mask``: float32 (R, R); ``erode`` and ``blur`` are pixels at 4R (DeepFaceLab's units). The work happens at
    ``work_size`` (default 4R): a smaller size scales the kernels with it, which gives the same mask, sampled more
    coarsely, at a fraction of the cost. Returns float32 (work_size, work_size) in [0, 1].
    """
    full = 4 * input_size
    work = int(work_size or full)
    s = work / full
    m = cv2.resize(mask.astype(np.float32), (work, work), interpolation=cv2.INTER_CUBIC) if mask.shape[0] != work \
        else mask.astype(np.float32).copy()
    pad = max(1, int(round(input_size * s)))
    m = np.pad(m, pad)
    ero = int(round(abs(erode) * s))
    if ero > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ero, ero))
        m = cv2.erode(m, kernel) if erode > 0 else cv2.dilate(m, kernel)
    clip = pad + int(round((blur // 2) * s))
    m[:clip, :] = 0
    m[-clip:, :] = 0
    m[:, :clip] = 0
    m[:, -clip:] = 0
    if blur > 0:
        k = blur + (1 - blur % 2)
        sigma = (0.3 * ((k - 1) * 0.5 - 1) + 0.8) * s
        ks = max(3, int(math.ceil(sigma * 3)) * 2 + 1) if s < 1 else k
        m = cv2.GaussianBlur(m, (ks, ks), sigma if s < 1 else 0)
    m = m[pad:-pad, pad:-pad]
    return np.clip(m, 0.0, 1.0)


def work_size_for(input_size: int, face_px_in_frame: float) -> int:
    """Mask work size: 4R, or less when the face covers fewer frame pixels (1.5x oversampled, at least R)."""
    want = int(math.ceil(1.5 * face_px_in_frame / 8.0) * 8)
    return int(min(4 * input_size, max(input_size, want)))


def seamless_mask(mask: np.ndarray) -> np.ndarray:
    """Binarise at the first 0.1-step threshold with pixels above it (DeepFaceLab's seamless mask): uint8 0/255."""
    for i in range(1, 10):
        above = mask > i / 10.0
        if above.any():
            return above.astype(np.uint8) * 255
    return np.zeros(mask.shape, np.uint8)
