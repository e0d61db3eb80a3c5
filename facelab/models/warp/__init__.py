"""The training-free swap model (``train --model warp``): retrieve the best-matching source face, warp it onto
the destination's landmarks, and let merge do the rest.

Modules: ``features`` (what a face looks like from its landmarks), ``quality`` (which source faces are unusable),
``select`` (temporal choice with hysteresis and cross-fades), ``pwa`` (piecewise-affine warp), ``model`` (the
index, the swap, and :func:`build_index`).
"""

from facelab.models.warp.model import WarpArch, WarpModel, build_index, index_from_faces, read_source_faces

__all__ = ["WarpArch", "WarpModel", "build_index", "index_from_faces", "read_source_faces"]
