"""What a BAS backbone is: its two parts (``early`` f1, ``late`` f2), and the registry of every BAS backbone.

The CNNs register in :mod:`facelab.wsol.backbones`, InceptionV3 in :mod:`facelab.wsol.inception`; the package's
``__init__`` imports both, so the registry is complete whenever anything in :mod:`facelab.wsol` is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from facelab.utils.registry import Registry


@dataclass
class BackboneParts:
    """``early`` maps (B,3,H,W) to F (B,c_early,H/s,W/s); ``late`` maps F to (B,c_late,H/2s,W/2s).

    ``key_map`` renames a torchvision/third-party state-dict key to ours (None = not part of this backbone).
    """

    early: nn.Module
    late: nn.Module
    c_early: int
    c_late: int
    stride: int
    head_width: int
    key_map: Callable[[str], str | None]


#: name -> ``f(width=1.0) -> BackboneParts``
BAS_BACKBONES: Registry[BackboneParts] = Registry("BAS backbone")


def channels(n: int, width: float) -> int:
    """The paper's channel count ``n`` scaled by ``width`` (at least 4)."""
    return max(4, int(round(n * width)))
