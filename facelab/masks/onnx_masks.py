"""Mask sources from model files: an XSeg-style occluder and a BiSeNet face parser (ONNX, via onnxruntime).

Conventions (those of the published exports, as FaceFusion's face masker feeds them):

- occluder (``xseg_1``, ``xseg_2``): input float32 (N, S, S, 3) (NCHW exports are accepted too), the face crop
  in BGR order scaled to [0, 1]; output (N, S, S, 1) in [0, 1], 1 where the face is visible, 0 where something
  (a hand, hair, a microphone) covers it.
- parser (``bisenet_resnet_34``): input float32 (N, 3, S, S), RGB scaled to [0, 1] then normalised with the
  ImageNet mean and std; output (N, 19, S, S) class scores; the mask of a set of regions is where the arg-max
  class is one of them (names in :data:`facelab.merge.masks.PARSER_REGIONS`).

Both return float32 masks (B, H, W) in [0, 1] at the size of the images given, softened at the edge the same way:
a Gaussian blur, then values below 0.5 dropped and the rest stretched to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facelab.errors import FacelabError
from facelab.merge.masks import PARSER_REGIONS
from facelab.weights.runtime import Port, open_session, refuse, signature

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)
EDGE_SIGMA = 5.0 / 256.0  # edge softening, fraction of the mask size (5 px at 256)
OCCLUDER_EXPECTED = "one input (N, S, S, 3) or (N, 3, S, S) float32 in [0, 1]; one output (N, S, S, 1) in [0, 1]"
PARSER_EXPECTED = f"one input (N, 3, S, S) float32, ImageNet-normalised; one output (N, {len(PARSER_REGIONS)}, S, S)"


def soften(mask: np.ndarray) -> np.ndarray:
    """Blur the edge of a (H, W) mask, drop values below 0.5 and stretch the rest to [0, 1]."""
    sigma = max(0.5, EDGE_SIGMA * mask.shape[0])
    blurred = cv2.GaussianBlur(np.clip(mask, 0.0, 1.0).astype(np.float32), (0, 0), sigma)
    return ((np.clip(blurred, 0.5, 1.0) - 0.5) * 2.0).astype(np.float32)


def _resize_batch(images: np.ndarray, size: int) -> np.ndarray:
    """(B, H, W, 3) uint8 or float [0, 1] -> (B, size, size, 3) float32 in [0, 1]."""
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    if x.shape[1] == size and x.shape[2] == size:
        return x
    interp = cv2.INTER_AREA if x.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in x])


def _back(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.stack([soften(cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR))
                     for m in masks])


@dataclass
class _OnnxMasker:
    session: object
    path: Path
    size: int
    batch_limit: int | None
    input_name: str

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self.batch_limit or len(x)
        out = [np.asarray(self.session.run(None, {self.input_name: x[i:i + step]})[0], np.float32)  # type: ignore
               for i in range(0, len(x), step)]
        return np.concatenate(out)


def _square_size(port: Port, channels_first: bool, default: int) -> int:
    h, w = (port.shape[2], port.shape[3]) if channels_first else (port.shape[1], port.shape[2])
    return int(h or w or default)


class Occluder(_OnnxMasker):
    """An XSeg-style occluder: visible-face masks of face crops."""

    channels_first: bool = False

    @classmethod
    def open(cls, path: Path, device: str = "cpu") -> "Occluder":
        session = open_session(path, device, "occluder")
        ins, outs = signature(session)
        ok = len(ins) == 1 and len(outs) >= 1 and len(ins[0].shape) == 4 and "float" in ins[0].dtype
        first = ok and ins[0].shape[1] == 3 and ins[0].shape[3] != 3
        ok = ok and (first or ins[0].shape[3] in (3, None))
        ok = ok and (len(outs[0].shape) == 3 or (len(outs[0].shape) == 4 and 1 in (outs[0].shape[1], outs[0].shape[3])))
        if not ok:
            raise refuse(path, "occluder", OCCLUDER_EXPECTED, session)
        occ = cls(session, path, _square_size(ins[0], first, 256), 1 if ins[0].shape[0] == 1 else None, ins[0].name)
        occ.channels_first = bool(first)
        return occ

    def masks(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) RGB crops (uint8, or float32 in [0, 1]) -> visible-face masks (B, H, W) float32."""
        h, w = images.shape[1:3]
        x = _resize_batch(images, self.size)[..., ::-1]  # the exports take BGR, as DeepFaceLab's XSeg did
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.channels_first else x)
        y = self._run(x)
        if y.ndim == 4:
            y = y[:, 0] if y.shape[1] == 1 else y[..., 0]
        if y.shape[0] != len(images):
            raise FacelabError(f"{self.path} returned {y.shape[0]} masks for {len(images)} faces; {OCCLUDER_EXPECTED}")
        return _back(np.clip(y, 0.0, 1.0), h, w)


class FaceParser(_OnnxMasker):
    """A BiSeNet face parser: masks of chosen face regions."""

    @classmethod
    def open(cls, path: Path, device: str = "cpu") -> "FaceParser":
        session = open_session(path, device, "face parser")
        ins, outs = signature(session)
        ok = len(ins) == 1 and len(outs) >= 1 and len(ins[0].shape) == 4 and ins[0].shape[1] in (3, None) \
            and len(outs[0].shape) == 4 and outs[0].shape[1] in (len(PARSER_REGIONS), None) \
            and "float" in ins[0].dtype
        if not ok:
            raise refuse(path, "face parser", PARSER_EXPECTED, session)
        return cls(session, path, _square_size(ins[0], True, 512), 1 if ins[0].shape[0] == 1 else None, ins[0].name)

    def labels(self, images: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) RGB crops -> (B, S, S) int class indices at the parser's size."""
        x = (_resize_batch(images, self.size) - IMAGENET_MEAN) / IMAGENET_STD
        y = self._run(np.ascontiguousarray(x.transpose(0, 3, 1, 2).astype(np.float32)))
        if y.ndim != 4 or y.shape[1] != len(PARSER_REGIONS):
            raise FacelabError(f"{self.path} returned shape {y.shape}; {PARSER_EXPECTED}")
        return y.argmax(1)

    def masks(self, images: np.ndarray, regions: Sequence[str]) -> np.ndarray:
        """(B, H, W, 3) RGB crops -> (B, H, W) float32 masks of ``regions`` (names of PARSER_REGIONS)."""
        ids = [region_id(r) for r in regions]
        h, w = images.shape[1:3]
        return _back(np.isin(self.labels(images), ids).astype(np.float32), h, w)


def region_id(name: str) -> int:
    try:
        return PARSER_REGIONS[name]
    except KeyError:
        raise FacelabError(f"unknown face region {name!r}; choose from: {', '.join(PARSER_REGIONS)}") from None


def open_occluder(name_or_path: str = "xseg_1", device: str = "cpu") -> Occluder:
    from facelab.weights.catalog import resolve_onnx

    return Occluder.open(resolve_onnx(name_or_path, "occluder")[0], device)


def open_parser(name_or_path: str = "bisenet_resnet_34", device: str = "cpu") -> FaceParser:
    from facelab.weights.catalog import resolve_onnx

    return FaceParser.open(resolve_onnx(name_or_path, "parser")[0], device)


class ModelMasks:
    """The occluder / region terms a merge needs, computed on destination crops in batches.

    ``terms``: mask-mode terms such as ``occluder`` or ``region:skin,nose``; the occluder and parser files come
    from ``$FACELAB_MODELS`` / ``models/`` (``occluder`` / ``parser`` pick other catalogue names or .onnx files).
    """

    def __init__(self, terms: Sequence[str], device: str = "cpu", occluder: str = "xseg_1",
                 parser: str = "bisenet_resnet_34") -> None:
        self.terms = tuple(dict.fromkeys(terms))
        self.occluder = open_occluder(occluder, device) if "occluder" in self.terms else None
        self.parser = open_parser(parser, device) if any(t.startswith("region:") for t in self.terms) else None
        self.seconds = 0.0
        self.faces = 0

    def __call__(self, crops: np.ndarray) -> list[dict[str, np.ndarray]]:
        """(B, R, R, 3) float32 RGB crops -> one ``{term: (R, R) mask}`` per crop."""
        import time

        t0 = time.perf_counter()
        out: list[dict[str, np.ndarray]] = [{} for _ in range(len(crops))]
        labels = None
        for term in self.terms:
            if term == "occluder":
                masks = self.occluder.masks(crops)  # type: ignore[union-attr]
            else:
                if labels is None:
                    labels = self.parser.labels(crops)  # type: ignore[union-attr]
                ids = [region_id(r) for r in term[len("region:"):].split(",")]
                masks = _back(np.isin(labels, ids).astype(np.float32), crops.shape[1], crops.shape[2])
            for i, m in enumerate(masks):
                out[i][term] = m
        self.seconds += time.perf_counter() - t0
        self.faces += len(crops)
        return out


DEFAULT_REGIONS = ("skin", "left-eyebrow", "right-eyebrow", "left-eye", "right-eye", "glasses", "nose", "mouth",
                   "upper-lip", "lower-lip")


def apply_model_masks(ws, side: str, source: str, name: str, model: str | None = None,
                      regions: Sequence[str] = DEFAULT_REGIONS, device: str = "cpu", force: bool = False,
                      progress=None) -> dict:
    """Store the ``occluder`` or ``parser`` mask of every face file of ``side`` as mask ``name`` (pixels untouched).

    Faces that have the mask are skipped unless ``force``; a face file that fails is left as it was and named in
    ``failures``; the others go on.
    """
    from facelab.masks.workspace_masks import MASK_STORE_MAX
    from facelab.utils.items import ItemErrors
    from facelab.workspace.faces import MaskRecord, list_faces, read_face, read_meta, update_meta
    from facelab.workspace.usable import check_usable

    if source == "occluder":
        net = open_occluder(model or "xseg_1", device)

        def compute(image: np.ndarray) -> np.ndarray:
            return net.masks(image[None])[0]
    elif source == "parser":
        parser = open_parser(model or "bisenet_resnet_34", device)
        for r in regions:
            region_id(r)

        def compute(image: np.ndarray) -> np.ndarray:
            return parser.masks(image[None], regions)[0]
    else:
        raise FacelabError(f"unknown mask model source {source!r}; choose occluder or parser")
    done = skipped = 0
    errors = ItemErrors()
    for path in list_faces(ws.aligned(side)):
        with errors.guard(path.name):
            meta = read_meta(path)
            check_usable(meta, path, ws)
            if not force and meta.mask(name) is not None:
                skipped += 1
            else:
                face = read_face(path)
                mask = compute(face.image)
                store = min(face.meta.size, MASK_STORE_MAX)
                small = cv2.resize(mask, (store, store), interpolation=cv2.INTER_AREA) if store != mask.shape[0] \
                    else mask
                update_meta(path, face.meta.with_mask(MaskRecord.from_array(name, source, small, face.meta.size)))
                done += 1
        if progress:
            progress(1)
    return {"masked": done, "skipped": skipped, "errors": len(errors), "failures": errors.as_tuple()}
