"""The model registry: name -> model class (called with an arch dict, possibly partial, or None)."""

from __future__ import annotations

from facelab.models.base import SwapModel
from facelab.utils.registry import Registry

MODELS: Registry[SwapModel] = Registry("model")
