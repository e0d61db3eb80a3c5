"""Quick96: DeepFaceLab's quick model: df-ud at 96 px, ae 128 / e 64 / d 64 / dm 16, RMSprop 2e-4 with lr dropout.

Losses are 10 DSSIM(k = 8 at 96 px) + 10 MSE on the blurred-mask-masked faces + 10 mask MSE; no GAN, styles or
eyes priority. Every third iteration re-trains the previous batch with unwarped inputs (targets as inputs).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from facelab.align.geometry import canonical_face_type
from facelab.models.base import StepResult
from facelab.models.optim import LR_DROPOUT_KEEP, RMSprop
from facelab.models.saehd.model import SAEHD
from facelab.train.batch import Batch
from facelab.train.options import TrainOptions

QUICK96_LR = 2e-4


@dataclass(frozen=True)
class Quick96Arch:
    """Quick96 (fixed df-ud archi). ``resolution`` is 96 in DeepFaceLab; any multiple of 32 works (for tests)."""

    resolution: int = 96
    face_type: str = "full"
    ae_dims: int = 128
    e_dims: int = 64
    d_dims: int = 64
    d_mask_dims: int = 16

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
    """Quick96 swap model. ``last_batch`` holds the batch that the next re-train iteration repeats unwarped."""

    name = "quick96"
    arch_cls = Quick96Arch

    def __init__(self, arch: Quick96Arch | Mapping[str, Any] | None = None) -> None:
        super().__init__(arch)
        self.last_batch: Batch | None = None

    def make_optimizers(self, opts: TrainOptions) -> dict[str, torch.optim.Optimizer]:
        """RMSprop at 2e-4 with lr dropout 0.3 (no cosine cycle), whatever ``opts.lr`` says."""
        return {"G": RMSprop(self.generator_parameters(), lr=QUICK96_LR, lr_dropout=LR_DROPOUT_KEEP)}

    def train_step(self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], opts: TrainOptions,
                   iteration: int, scaler: torch.amp.GradScaler | None = None) -> StepResult:
        if iteration % 3 == 0 and self.last_batch is not None:
            prev = self.last_batch
            batch = dataclasses.replace(prev, warped_src=prev.target_src, warped_dst=prev.target_dst)
        else:
            self.last_batch = batch
        fixed = dataclasses.replace(opts.effective(), masked_training=True, eyes_mouth_prio=False, gan_power=0.0,
                                    true_face_power=0.0, face_style_power=0.0, bg_style_power=0.0,
                                    blur_out_mask=False, pretrain=False)
        return super().train_step(batch, optimizers, fixed, iteration, scaler)
