"""The contracts of swap models, used by the trainer (train/), merge, evaluate and export.

Two kinds share one registry and one merge path (DESIGN.md section 5):

- :class:`TrainableModel` (SAEHD, Quick96, AMP): modules, a training forward and losses. ``train/`` owns the
  optimizers, backward, clipping, the NaN guard, mixed precision and DDP wrapping; what the model needs of the
  trainer's options comes in as a :class:`TrainKnobs` record. Discriminators ("critics") are separate modules the
  model builds and the trainer holds, so the generator can be wrapped by DDP on its own.
- training-free models (``warp``): "training" indexes the source faces; prediction needs the destination's
  face-space landmarks (see :mod:`facelab.models.warp`).

Both predict a swapped face and its mask for a destination face crop; merge does not care which kind it holds.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from facelab.models.batch import Batch

TRAINED = "trained"
TRAINING_FREE = "training-free"


@dataclass(frozen=True)
class TrainKnobs:
    """The training settings a model's forward and losses read; the trainer fills them from its options (no
    defaults here: they live in the trainer's options record, ``TrainOptions``)."""

    masked_training: bool
    eyes_mouth_prio: bool
    blur_out_mask: bool
    random_warp: bool  # LIAE keeps inter_AB fixed while random warp is off
    gan_power: float
    gan_patch_size: int  # 0 = resolution // 8
    gan_dims: int
    true_face_power: float
    face_style_power: float
    bg_style_power: float
    morph_factor: float  # AMP only
    hf_power: float  # weight of the high-frequency (Laplacian L1) reconstruction term


@dataclass(frozen=True)
class Critic:
    """A discriminator as a model's losses see it: ``module`` for the generator's term (the losses take no
    parameter gradient through it) and ``train`` for the critic's own loss (in a distributed run the trainer's
    DDP wrapper of the same module, so its gradients are averaged over processes)."""

    module: nn.Module
    train: Callable[..., Any]


@dataclass(frozen=True)
class Losses:
    """What one training forward costs: ``terms`` (at least ``src_loss``, ``dst_loss`` and ``G_loss``, scalars;
    the generator steps on ``G_loss``) and one scalar loss per critic that trained this step. Each is a batch mean
    of per-sample losses; the trainer steps on the gradient of their batch sum, as DeepFaceLab does."""

    terms: dict[str, torch.Tensor]
    critics: dict[str, torch.Tensor]


class SwapModel(abc.ABC):
    """Anything merge can swap with: a name, the crop it works on, and its kind."""

    name: ClassVar[str]
    kind: ClassVar[str]
    arch: Any

    @property
    def resolution(self) -> int:
        return int(self.arch.resolution)

    @property
    def face_type(self) -> str:
        return str(self.arch.face_type)


class TrainableModel(nn.Module, SwapModel):
    """A face-swap autoencoder. Tensors are (B, C, R, R) float in [0, 1] on the model's device.

    ``arch`` is a frozen dataclass fixed at creation (stored in the checkpoint and config.json). The module's own
    parameters are the generator's; critics are built by :meth:`make_critics` and held by the trainer.
    """

    kind = TRAINED
    #: Training options this model fixes whatever the user asks (the trainer warns once about each it overrides).
    fixed_options: ClassVar[Mapping[str, Any]] = {}
    #: Whether lr dropout comes with DeepFaceLab's cosine lr cycle.
    lr_cos_cycle: ClassVar[bool] = True
    #: Every n-th iteration re-trains the previous batch with unwarped inputs (0 = never).
    retrain_unwarped_every: ClassVar[int] = 0

    @abc.abstractmethod
    def forward(self, warped_src: torch.Tensor, warped_dst: torch.Tensor,
                knobs: TrainKnobs) -> dict[str, torch.Tensor]:
        """The training forward (what DDP wraps): reconstructions ``src_src``, ``dst_dst`` and their masks, plus
        whatever :meth:`losses` needs."""

    @abc.abstractmethod
    def losses(self, out: dict[str, torch.Tensor], batch: Batch, knobs: TrainKnobs,
               critics: Mapping[str, Critic]) -> Losses:
        """Losses of one forward's outputs ``out`` against ``batch``; ``src_loss`` / ``dst_loss`` are per-sample
        sums averaged over the batch."""

    def make_critics(self, knobs: TrainKnobs, existing: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
        """The critics to hold: ``existing`` ones kept (rebuilt when ``knobs`` changed their shape), plus those
        ``knobs`` turn on. New modules are on the model's device."""
        return dict(existing)

    def critic_from_state(self, name: str, state: Mapping[str, torch.Tensor]) -> nn.Module:
        """Rebuild critic ``name`` from its saved state dict (its shape is read from the state)."""
        raise KeyError(f"{self.name} models have no critic {name!r}")

    def frozen_parameters(self, knobs: TrainKnobs) -> list[nn.Parameter]:
        """Generator parameters that must not move this step (their gradients are dropped before the update)."""
        return []

    def reinit_inters(self) -> None:
        """Fresh weights for the inter block(s) (DeepFaceLab does this when pretraining is turned off)."""

    @abc.abstractmethod
    def swap_faces(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(swapped face (B,3,R,R), its mask (B,1,R,R), the dst face's learned mask (B,1,R,R)); differentiable."""

    @torch.no_grad()
    def predict(self, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        """Swap destination faces: ``face`` (B,3,R,R) in the source's likeness, ``mask`` (B,1,R,R) the learned
        mask of the predicted face, ``dst_mask`` (B,1,R,R) the learned mask of the destination face."""
        face, mask, dst_mask = self.swap_faces(dst)
        return {"face": face.float(), "mask": mask.float(), "dst_mask": dst_mask.float()}

    @abc.abstractmethod
    def preview(self, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstructions for previews: ``src_src``, ``dst_dst``, ``src_dst`` (B,3,R,R) and their masks
        ``src_src_mask``, ``dst_dst_mask``, ``src_dst_mask`` (B,1,R,R)."""
