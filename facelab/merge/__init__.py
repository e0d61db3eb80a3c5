"""Merge: swap every destination face back into its frame (masks, colour transfer, blending, paste-back).

The stage function is :func:`facelab.merge.stage.merge_frames` and the settings grid
:func:`facelab.merge.preview.render_preview`; they import torch, so they are not imported here: worker processes
import only the numpy/OpenCV modules (``render`` and what it uses) and start fast.
"""

from facelab.merge.blend import MERGE_MODES
from facelab.merge.config import MergeConfig, MergeSettings, settings_from_dict, settings_from_file
from facelab.merge.masks import MASK_MODES

__all__ = ["MASK_MODES", "MERGE_MODES", "MergeConfig", "MergeSettings", "settings_from_dict", "settings_from_file"]
