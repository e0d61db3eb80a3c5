"""Quick96: DeepFaceLab's quick model: df-ud at 96 px, ae 128 / e 64 / d 64 / dm 16, RMSprop 2e-4 with lr dropout.

Losses are 10 DSSIM(k = 8 at 96 px) + 10 MSE on the blurred-mask-masked faces + 10 mask MSE; no GAN, styles or
eyes priority (the trainer is told so by :attr:`Quick96.fixed_options` and says which options it overrides).
Every third iteration re-trains the previous batch with unwarped inputs (targets as inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from facelab.align.geometry import FACE_TYPE_NAMES, canonical_face_type
from facelab.models.saehd.model import SAEHD

QUICK96_LR = 2e-4


@dataclass(frozen=True)
class Quick96Arch:
    """Quick96 (fixed df-ud archi). ``resolution`` is 96 in DeepFaceLab; any multiple of 32 works (for tests)."""

    resolution: int = field(default=96, metadata={
        "help": "Face resolution in pixels. Fixed at creation.", "range": (16, 1024)})
    face_type: str = field(default="full", metadata={
        "help": "Face type: h, mf, f, wf, head or a DeepFaceLab spelling. Fixed at creation.",
        "choices": FACE_TYPE_NAMES})
    ae_dims: int = field(default=128, metadata={"help": "Autoencoder dims. Fixed at creation.", "range": (1, 4096)})
    e_dims: int = field(default=64, metadata={"help": "Encoder dims. Fixed at creation.", "range": (1, 1024)})
    d_dims: int = field(default=64, metadata={"help": "Decoder dims. Fixed at creation.", "range": (1, 1024)})
    d_mask_dims: int = field(default=16, metadata={"help": "Mask decoder dims. Fixed at creation.", "range": (1, 1024)})

    def __post_init__(self) -> None:
        if self.resolution < 32 or self.resolution % 32:
            raise ValueError(f"resolution {self.resolution} must be a positive multiple of 32")
        object.__setattr__(self, "face_type", canonical_face_type(self.face_type))
        for name in ("ae_dims", "e_dims", "d_dims", "d_mask_dims"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")

    archi = property(lambda self: "df-ud")
    kind = property(lambda self: "df")
    opts = property(lambda self: frozenset("ud"))


class Quick96(SAEHD):
    """Quick96 swap model: SAEHD's df-ud blocks with DeepFaceLab's fixed Quick96 training recipe."""

    name = "quick96"
    arch_cls = Quick96Arch
    fixed_options = {"optimizer": "rmsprop", "lr": QUICK96_LR, "lr_dropout": "y", "masked_training": True,
                     "eyes_mouth_prio": False, "gan_power": 0.0, "true_face_power": 0.0, "face_style_power": 0.0,
                     "bg_style_power": 0.0, "blur_out_mask": False, "pretrain": False,
                     "hf_power": 0.0}
    lr_cos_cycle = False
    retrain_unwarped_every = 3
