"""The contract every swap model keeps (SAEHD, Quick96, AMP), used by the training loop, merge and export."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from facelab.train.batch import Batch
from facelab.train.options import TrainOptions


@dataclass(frozen=True)
class StepResult:
    """What one training iteration reports. ``finite`` is False when a loss was NaN/inf: then no weight moved."""

    losses: dict[str, float]
    finite: bool


class SwapModel(nn.Module, abc.ABC):
    """A face-swap autoencoder. Tensors are (B, C, R, R) float in [0, 1] on the model's device.

    ``arch`` is a frozen dataclass fixed at creation (stored in the checkpoint and config.json); everything that may
    change between runs comes in through :class:`TrainOptions`.
    """

    name: ClassVar[str]
    arch: Any

    @property
    def resolution(self) -> int:
        return int(self.arch.resolution)

    @property
    def face_type(self) -> str:
        return str(self.arch.face_type)

    @abc.abstractmethod
    def make_optimizers(self, opts: TrainOptions) -> dict[str, torch.optim.Optimizer]:
        """Optimizers by name (``"G"`` always; ``"D_code"``, ``"D_gan"`` when those parts are on)."""

    @abc.abstractmethod
    def train_step(self, batch: Batch, optimizers: dict[str, torch.optim.Optimizer], opts: TrainOptions,
                   iteration: int, scaler: torch.amp.GradScaler | None = None) -> StepResult:
        """One iteration: forward, losses, backward, optimizer steps (skipped entirely when a loss is not finite).

        ``losses`` holds at least ``src_loss`` and ``dst_loss`` (per-sample sums averaged over the batch).
        """

    @abc.abstractmethod
    def predict(self, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        """Swap destination faces: ``face`` (B,3,R,R) in the source's likeness, ``mask`` (B,1,R,R) the learned
        mask of the predicted face, ``dst_mask`` (B,1,R,R) the learned mask of the destination face."""

    @abc.abstractmethod
    def preview(self, src: torch.Tensor, dst: torch.Tensor) -> dict[str, torch.Tensor]:
        """Reconstructions for previews: ``src_src``, ``dst_dst``, ``src_dst`` (B,3,R,R) and their masks
        ``src_src_mask``, ``dst_dst_mask``, ``src_dst_mask`` (B,1,R,R)."""
