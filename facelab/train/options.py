"""Schedule options of a training run: they may change from run to run (architecture options may not).

Defaults follow DeepFaceLab's SAEHD where it has one. Flags override a config file, which overrides these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping

from facelab.models.base import TrainKnobs

Optimizer = Literal["adabelief", "rmsprop"]
CtMode = Literal["none", "rct", "lct", "mkl", "idt", "sot"]
LrDropout = Literal["n", "y", "cpu"]


@dataclass(frozen=True)
class TrainOptions:
    batch_size: int = 8  # per process under torchrun
    lr: float = 5e-5
    optimizer: Optimizer = "adabelief"
    lr_dropout: LrDropout = "n"
    clipgrad: bool = False
    random_warp: bool = True
    random_src_flip: bool = False
    random_dst_flip: bool = True
    masked_training: bool = True
    eyes_mouth_prio: bool = False
    uniform_yaw: bool = False
    blur_out_mask: bool = False
    random_hsv_power: float = 0.0
    ct_mode: CtMode = "none"
    gan_power: float = 0.0
    gan_patch_size: int = 0  # 0 = resolution // 8
    gan_dims: int = 16
    true_face_power: float = 0.0
    face_style_power: float = 0.0
    bg_style_power: float = 0.0
    morph_factor: float = 0.5  # AMP only
    pretrain: bool = False
    mixed_precision: bool = True  # used on CUDA only
    target_iter: int = 0  # 0 = unlimited
    autosave_minutes: float = 25.0
    max_minutes: float = 0.0  # 0 = unlimited; stop (and save) after this long
    backups: int = 3  # numbered backups kept
    preview_history: bool = False
    seed: int = 0
    workers: int = -1  # data loader processes; -1 = automatic, 0 = in the training process
    holdout: float = 0.05  # share of source faces (in blocks of frames) never trained on; fixed at creation

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.optimizer not in ("adabelief", "rmsprop"):
            raise ValueError(f"optimizer must be adabelief or rmsprop, not {self.optimizer!r}")
        if self.ct_mode not in ("none", "rct", "lct", "mkl", "idt", "sot"):
            raise ValueError(f"unknown ct_mode {self.ct_mode!r}")
        if self.lr_dropout not in ("n", "y", "cpu"):
            raise ValueError("lr_dropout must be n, y or cpu")
        if not 0.0 <= self.random_hsv_power <= 0.3:
            raise ValueError("random_hsv_power must be in [0, 0.3]")
        if not 0.0 <= self.holdout <= 0.5:
            raise ValueError("holdout must be in [0, 0.5]")

    def effective(self) -> "TrainOptions":
        """The options actually used: ``pretrain`` forces DeepFaceLab's pretraining settings."""
        if not self.pretrain:
            return self
        return replace(self, random_warp=False, random_src_flip=True, random_dst_flip=True, gan_power=0.0,
                       random_hsv_power=0.0, lr_dropout="n", face_style_power=0.0, bg_style_power=0.0,
                       uniform_yaw=True)

    def knobs(self) -> TrainKnobs:
        """The record of the settings a model's forward and losses read (of the effective options)."""
        eff = self.effective()
        names = [f.name for f in dataclasses.fields(TrainKnobs)]
        return TrainKnobs(**{k: getattr(eff, k) for k in names})


def apply_fixed(opts: TrainOptions, fixed: Mapping[str, Any]) -> tuple[TrainOptions, list[str]]:
    """``opts`` with a model's fixed options applied, and one line per option the user set to another value
    (``name value -> fixed``). An option left at its default is not reported."""
    if not fixed:
        return opts, []
    defaults = TrainOptions()
    notes = [f"{k.replace('_', '-')} {getattr(opts, k)!r} -> {v!r}" for k, v in fixed.items()
             if getattr(opts, k) != v and getattr(opts, k) != getattr(defaults, k)]
    return replace(opts, **dict(fixed)), notes
