"""The landmark-backend contract and registry: 68 iBUG points for a face box."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from facelab.utils.registry import Registry


class LandmarkBackend(Protocol):
    """``landmarks(uint8 RGB HWC image, box x0,y0,x1,y1) -> (68, 2) float64`` frame pixels."""

    name: str

    def landmarks(self, image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray: ...


LANDMARKS: Registry[LandmarkBackend] = Registry("landmark backend")
