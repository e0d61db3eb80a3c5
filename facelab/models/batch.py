"""The batch contract between the data pipeline (train/) and the trained models."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch


@dataclass
class Batch:
    """One training batch. Every tensor is (B, C, R, R) float32 in [0, 1]; masks have C = 1.

    ``warped_*`` are the network inputs (random warp applied); ``target_*`` the unwarped targets with the same
    affine augmentation; ``*_mask`` the full-face mask (stored learned mask when the face file has one, else the
    landmark hull); ``*_em`` the eyes+mouth mask (already inside the binarised full-face mask, scaled to a peak of 1
    per sample: the losses weight with it as it is).
    """

    warped_src: torch.Tensor
    target_src: torch.Tensor
    target_src_mask: torch.Tensor
    target_src_em: torch.Tensor
    warped_dst: torch.Tensor
    target_dst: torch.Tensor
    target_dst_mask: torch.Tensor
    target_dst_em: torch.Tensor

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)})

    @property
    def size(self) -> int:
        return int(self.warped_src.shape[0])
