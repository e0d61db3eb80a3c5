"""Schedule options of a training run: they may change from run to run (architecture options may not).

Defaults follow DeepFaceLab's SAEHD where it has one. Flags override a config file, which overrides these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping, get_args

from facelab.models.base import TrainKnobs
from facelab.train.augment import AugmentConfig
from facelab.utils.config import setting
from facelab.utils.workers import workers_field

Optimizer = Literal["adabelief", "rmsprop"]
CtMode = Literal["none", "rct", "lct", "mkl", "idt", "sot"]  # DeepFaceLab's training subset of COLOR_TRANSFERS
LrDropout = Literal["n", "y", "cpu"]


@dataclass(frozen=True)
class TrainOptions:
    """Every schedule option; the ``help`` metadata is the text of its ``train`` flag."""

    batch_size: int = setting(8, "Batch size (per process under torchrun).", range=(1, 4096))
    lr: float = setting(5e-5, "Learning rate.", range=(0, 10))
    optimizer: Optimizer = setting("adabelief", "Optimizer.")
    lr_dropout: LrDropout = setting("n", "Learning-rate dropout: n, y, or cpu.")
    clipgrad: bool = setting(False, "Clip gradients to global norm 1.0.")
    random_warp: bool = setting(True, "Random warp of the inputs.")
    random_src_flip: bool = setting(False, "Random horizontal flip of src faces.")
    random_dst_flip: bool = setting(True, "Random horizontal flip of dst faces.")
    masked_training: bool = setting(True, "Restrict losses to the (blurred) face mask.")
    eyes_mouth_prio: bool = setting(False, "Extra weight on eyes and mouth.")
    uniform_yaw: bool = setting(False, "Sample src faces uniformly over yaw.")
    blur_out_mask: bool = setting(False, "Blur the background outside the mask in targets.")
    random_hsv_power: float = setting(0.0, "Random HSV shift of src inputs, 0-0.3.", range=(0, 0.3))
    random_scale: float = setting(AugmentConfig.scale, "Random scale of the augmentation: factors in "
                                  "[1/(1+s), 1+s] (DeepFaceLab: 0.15 for SAEHD and AMP, 0.05 for Quick96).",
                                  range=(0, 1))
    ct_mode: CtMode = setting("none", "Colour transfer of src samples toward dst.")
    gan_power: float = setting(0.0, "GAN power, 0-5 (typ. 0.1).", range=(0, 5))
    gan_patch_size: int = setting(0, "GAN patch size; 0 = resolution/8.", range=(0, 1024))
    gan_dims: int = setting(16, "GAN discriminator dims.", range=(1, 1024))
    true_face_power: float = setting(0.0, "True-face power, df only (typ. 0.01).", range=(0, 10))
    face_style_power: float = setting(0.0, "Face style power.", range=(0, 100))
    bg_style_power: float = setting(0.0, "Background style power.", range=(0, 100))
    hf_power: float = setting(0.0, "High-frequency loss power: Laplacian L1 against blur, typ. 0.5-2.", range=(0, 100))
    morph_factor: float = setting(0.5, "AMP morph factor, 0.1-0.5.", range=(0, 1))
    pretrain: bool = setting(False, "Pretraining mode (forces DeepFaceLab's pretrain settings).")
    mixed_precision: bool | None = setting(None, "Mixed precision: bf16 autocast of the forward pass.",
                                           default_text="on for CUDA, off elsewhere")
    kernel_choice: bool = setting(True, "On CPU, time each convolution's kernels once at the start (cached per "
                                        "machine) and run the fastest.")
    kernel_check: bool = setting(True, "With kernel choice, time a few whole steps with the chosen kernels and "
                                       "with the fixed rule at the start, and keep the faster.")
    channels_last: bool = setting(True, "On CPU, keep convolution weights (and so most activations) in "
                                        "channels-last memory: the kernels then need no weight reordering.")
    target_iter: int = setting(0, "Stop (and save) at this iteration; 0 = never.", range=(0, 1_000_000_000))
    autosave_minutes: float = setting(25.0, "Save every this many minutes.", range=(0, 100_000))
    max_minutes: float = setting(0.0, "Stop (and save) after this many minutes of training; 0 = no limit.",
                                 range=(0, 10_000_000))
    backups: int = setting(3, "Numbered checkpoint backups to keep.", range=(0, 1000))
    preview_history: bool = setting(False, "Also keep previews/<iter>.png at every save.")
    seed: int = setting(0, "Random seed.", range=(0, 2**32 - 1))
    workers: int = workers_field("Data loader processes (automatic keeps a core per training process)")
    holdout: float = setting(0.05, "Share of source faces (in blocks of frames) kept out of training for "
                                   "evaluate's held-out score; fixed when the model is created.", range=(0, 0.5))

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        if self.optimizer not in get_args(Optimizer):
            raise ValueError(f"optimizer must be adabelief or rmsprop, not {self.optimizer!r}")
        if self.ct_mode not in get_args(CtMode):
            raise ValueError(f"unknown ct_mode {self.ct_mode!r}")
        if self.lr_dropout not in get_args(LrDropout):
            raise ValueError("lr_dropout must be n, y or cpu")
        if self.workers < -1:
            raise ValueError(f"workers must be >= -1 (-1 = automatic, 0 = in this process), got {self.workers}")
        if not 0.0 <= self.random_hsv_power <= 0.3:
            raise ValueError("random_hsv_power must be in [0, 0.3]")
        if self.hf_power < 0:
            raise ValueError("hf_power must be >= 0")
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
