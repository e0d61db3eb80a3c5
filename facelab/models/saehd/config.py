"""SAEHD architecture settings, fixed when a model is created (stored in its checkpoint)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from facelab.align.geometry import FACE_TYPE_NAMES, canonical_face_type

_ARCHI_RE = re.compile(r"^(df|liae)(-[udtc]+)?$")


def parse_archi(archi: str) -> tuple[str, frozenset[str]]:
    """Split ``"liae-ud"`` into ``("liae", {"u", "d"})``; raises ValueError on anything else."""
    m = _ARCHI_RE.match(archi)
    if m is None:
        raise ValueError(f"archi must be df or liae with optional -u/-d/-t/-c letters (e.g. liae-ud), "
                         f"not {archi!r}")
    letters = (m.group(2) or "-")[1:]
    if len(set(letters)) != len(letters):
        raise ValueError(f"archi {archi!r} repeats a letter")
    return m.group(1), frozenset(letters)


@dataclass(frozen=True)
class SAEHDArch:
    """SAEHD: ``resolution`` is a multiple of 16 (of 32 with ``-d``); dims as DeepFaceLab's SAEHD."""

    resolution: int = field(default=128, metadata={
        "help": "Face resolution in pixels. Fixed at creation.", "range": (16, 1024)})
    face_type: str = field(default="full", metadata={
        "help": "Face type: h, mf, f, wf, head or a DeepFaceLab spelling. Fixed at creation.",
        "choices": FACE_TYPE_NAMES})
    archi: str = field(default="liae-ud", metadata={
        "help": "SAEHD archi: df or liae with any of -u -d -t -c (c: x*cos(x) activations), e.g. liae-ud. "
                "Fixed at creation."})
    ae_dims: int = field(default=256, metadata={"help": "Autoencoder dims. Fixed at creation.", "range": (1, 4096)})
    e_dims: int = field(default=64, metadata={"help": "Encoder dims. Fixed at creation.", "range": (1, 1024)})
    d_dims: int = field(default=64, metadata={"help": "Decoder dims. Fixed at creation.", "range": (1, 1024)})
    d_mask_dims: int = field(default=22, metadata={"help": "Mask decoder dims. Fixed at creation.", "range": (1, 1024)})

    def __post_init__(self) -> None:
        kind, opts = parse_archi(self.archi)
        step = 32 if "d" in opts else 16
        if self.resolution < step or self.resolution % step:
            raise ValueError(f"resolution {self.resolution} must be a positive multiple of {step} for archi "
                             f"{self.archi!r}")
        object.__setattr__(self, "face_type", canonical_face_type(self.face_type))
        for name in ("ae_dims", "e_dims", "d_dims", "d_mask_dims"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def kind(self) -> str:
        """``"df"`` or ``"liae"``."""
        return parse_archi(self.archi)[0]

    @property
    def opts(self) -> frozenset[str]:
        """The variant letters (subset of ``{"u", "d", "t", "c"}``)."""
        return parse_archi(self.archi)[1]
