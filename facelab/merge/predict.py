"""Predictors: turn destination crops into predicted faces and masks, in batches, on the chosen device.

Every predictor sees, for each destination face, its crop at the model's resolution, its 68 landmarks in that
crop, and its key ``(face index, frame position)``. Before the first call merge hands it every face track of the
plan (:meth:`Predictor.begin`): a trained model ignores them; the training-free model chooses its source faces
over whole tracks there, so its choice does not depend on which frames one run happens to merge.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol, Sequence

import numpy as np
import torch

from facelab.align import canonical_face_type

Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]  # faces (B,R,R,3), prd masks (B,R,R), dst masks (B,R,R)
FaceKey = tuple[int, int]  # (face index, frame position in the plan)
Tracks = Mapping[int, Sequence[tuple[int, np.ndarray]]]  # face index -> [(frame position, crop landmarks (68,2))]


class Predictor(Protocol):
    resolution: int
    face_type: str

    def begin(self, tracks: Tracks) -> None:
        """Every face track of the merge plan, landmarks in model-crop pixels, before any call."""

    def __call__(self, crops: np.ndarray, landmarks: np.ndarray, keys: Sequence[FaceKey]) -> Prediction:
        """``crops``: (B, R, R, 3) float32 RGB in [0, 1]; ``landmarks`` (B, 68, 2) in crop pixels -> predicted
        faces and learned masks."""


class ModelPredictor:
    """A trained swap model in eval mode, run under ``torch.inference_mode`` on ``device``."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.resolution = int(model.resolution)
        self.face_type = canonical_face_type(model.face_type)

    def begin(self, tracks: Tracks) -> None:
        """A trained model swaps each face on its own."""

    def __call__(self, crops: np.ndarray, landmarks: np.ndarray | None = None,
                 keys: Sequence[FaceKey] = ()) -> Prediction:
        x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2))).to(self.device, torch.float32)
        with torch.inference_mode():
            out = self.model.predict(x)
        face = out["face"].float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        prd = out["mask"].float().clamp(0, 1)[:, 0].cpu().numpy()
        dst = out["dst_mask"].float().clamp(0, 1)[:, 0].cpu().numpy()
        return face.astype(np.float32), prd.astype(np.float32), dst.astype(np.float32)


class TrainingFreePredictor:
    """A training-free model (:mod:`facelab.models.warp`): chooses source faces over each track in
    :meth:`begin`, then warps them onto each destination face's landmarks."""

    def __init__(self, model) -> None:
        self.model = model
        self.resolution = int(model.resolution)
        self.face_type = canonical_face_type(model.face_type)
        self.plan: dict[FaceKey, object] = {}

    def begin(self, tracks: Tracks) -> None:
        self.plan = dict(self.model.plan_tracks(tracks))

    def __call__(self, crops: np.ndarray, landmarks: np.ndarray, keys: Sequence[FaceKey]) -> Prediction:
        choices = [self.plan.get(tuple(k)) for k in keys]
        return self.model.swap(crops, landmarks, choices)


def load_predictor(model_dir: str | Path, device: torch.device) -> Predictor:
    """The predictor of the swap model in ``model_dir``, whichever kind it is."""
    from facelab.models import TRAINING_FREE
    from facelab.models.store import load_model

    model = load_model(Path(model_dir), device)
    if model.kind == TRAINING_FREE:
        return TrainingFreePredictor(model)
    return ModelPredictor(model, device)


@dataclass(frozen=True)
class IdentityPredictor:
    """Returns each destination crop unchanged with full learned masks: checks alignment and paste-back (and serves
    the ``original`` mode) without a model."""

    resolution: int
    face_type: str

    def begin(self, tracks: Tracks) -> None:
        """Nothing to plan."""

    def __call__(self, crops: np.ndarray, landmarks: np.ndarray | None = None,
                 keys: Sequence[FaceKey] = ()) -> Prediction:
        b, r = crops.shape[0], crops.shape[1]
        ones = np.ones((b, r, r), np.float32)
        return crops.astype(np.float32), ones, ones.copy()
