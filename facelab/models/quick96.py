"""Quick96: DeepFaceLab's quick model: df-ud at 96 px, ae 128 / e 64 / d 64 / dm 16, RMSprop 2e-4 with lr dropout.

Losses are 10 DSSIM(k = 8 at 96 px) + 10 MSE on the faces times the Gaussian-blurred mask + 10 mask MSE; no GAN,
styles or eyes priority. Batch 4, random warp always on, no flips, random scale +-0.05 (the trainer is told so by
:attr:`Quick96.fixed_options` and says which options it overrides). Every third iteration re-trains the previous
batch with unwarped inputs (targets as inputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import torch

from facelab.align.geometry import FACE_TYPE_NAMES, canonical_face_type
from facelab.models.base import Critic, Losses, TrainKnobs
from facelab.models.batch import Batch
from facelab.models.saehd import losses as L
from facelab.models.saehd.model import SAEHD

QUICK96_LR = 2e-4
QUICK96_BATCH = 4
QUICK96_SCALE = 0.05  # random scale range (SAEHD's is 0.15)


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
                     "hf_power": 0.0, "batch_size": QUICK96_BATCH, "random_warp": True, "random_src_flip": False,
                     "random_dst_flip": False, "random_scale": QUICK96_SCALE}
    lr_cos_cycle = False
    retrain_unwarped_every = 3

    def losses(self, p: dict[str, torch.Tensor], b: Batch, knobs: TrainKnobs,
               critics: Mapping[str, Critic]) -> Losses:
        """``src_loss``, ``dst_loss`` (:func:`quick96_side_loss`) and ``G_loss``, their sum."""
        res = self.resolution
        src = quick96_side_loss(b.target_src, p["src_src"], b.target_src_mask, p["src_src_mask"], res)
        dst = quick96_side_loss(b.target_dst, p["dst_dst"], b.target_dst_mask, p["dst_dst_mask"], res)
        return Losses({"src_loss": src.mean(), "dst_loss": dst.mean(), "G_loss": src.mean() + dst.mean()}, {})


def quick96_side_loss(target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, pred_mask: torch.Tensor,
                      resolution: int) -> torch.Tensor:
    """One side's Quick96 loss, (B,): 10 DSSIM(res/11.6) + 10 MSE on faces times the plain Gaussian blur (sigma
    max(1, res // 32), not clipped: the mask's edge stays soft inside the face) of the target mask, + 10 mask MSE.
    target/pred (B, 3, R, R), masks (B, 1, R, R)."""
    m = L.gaussian_blur(mask, max(1, resolution // 32))
    t, pr = target * m, pred * m
    return 10.0 * L.dssim(t, pr, int(resolution / 11.6)) + 10.0 * L.mse(t, pr) + 10.0 * L.mse(mask, pred_mask)
