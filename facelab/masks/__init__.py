"""Mask sources: the landmark hull, and weakly supervised occluder learners (BAS, SAT) subtracted from it."""

from __future__ import annotations

import numpy as np

from facelab.masks.learner import MASK_LEARNERS
from facelab.utils.registry import Registry
from facelab.workspace.faces import FaceMeta

#: name -> ``f(meta) -> float32 (size, size)`` mask on the face grid, for sources that need no trained model;
#: the learned ones (BAS, SAT) are :data:`MASK_LEARNERS`
MASK_SOURCES: Registry = Registry("mask source")


@MASK_SOURCES.register("hull", "convex hull of the 68 landmarks with brows pushed up")
def hull_source(meta: FaceMeta) -> np.ndarray:
    from facelab.align import hull_mask

    return hull_mask(meta.lm_face, meta.size)


__all__ = ["MASK_LEARNERS", "MASK_SOURCES", "hull_source"]
