"""Predictors: turn destination crops into predicted faces and masks, in batches, on the chosen device."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from facelab.align import canonical_face_type

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]  # faces (B,R,R,3), prd masks (B,R,R), dst masks (B,R,R)


class Predictor(Protocol):
    resolution: int
    face_type: str

    def __call__(self, crops: np.ndarray) -> Prediction:
        """``crops``: (B, R, R, 3) float32 RGB in [0, 1] -> predicted faces and learned masks."""


class ModelPredictor:
    """A :class:`~facelab.models.base.SwapModel` in eval mode, run under ``torch.inference_mode`` on ``device``."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.resolution = int(model.resolution)
        self.face_type = canonical_face_type(model.face_type)

    @classmethod
    def load(cls, model_dir: str | Path, device: torch.device) -> "ModelPredictor":
        from facelab.train.checkpoint import load_model

        return cls(load_model(Path(model_dir), device), device)

    def __call__(self, crops: np.ndarray) -> Prediction:
        x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).to(self.device, torch.float32)
        with torch.inference_mode():
            out = self.model.predict(x)
        face = out["face"].float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        prd = out["mask"].float().clamp(0, 1)[:, 0].cpu().numpy()
        dst = out["dst_mask"].float().clamp(0, 1)[:, 0].cpu().numpy()
        return face.astype(np.float32), prd.astype(np.float32), dst.astype(np.float32)


@dataclass(frozen=True)
class IdentityPredictor:
    """Returns each destination crop unchanged with full learned masks: checks alignment and paste-back (and serves
    the ``original`` mode) without a model."""

    resolution: int
    face_type: str

    def __call__(self, crops: np.ndarray) -> Prediction:
        b, r = crops.shape[0], crops.shape[1]
        ones = np.ones((b, r, r), np.float32)
        return crops.astype(np.float32), ones, ones.copy()
