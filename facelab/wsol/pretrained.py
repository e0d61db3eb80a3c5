"""Load ImageNet weights from a user-supplied file (torchvision / timm / DeiT naming) into a BAS or SAT model.

Nothing is downloaded. The file is read with ``weights_only=True``; ``{"model": ...}`` / ``{"state_dict": ...}``
wrappers and a ``module.`` prefix are unwrapped. Keys are renamed by the model's ``pretrained_key``; ViT position
embeddings are resized to the model's stored grid. Every key that was dropped, missing or mismatched is reported.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from facelab.errors import FacelabError
from facelab.utils.torch_io import load_tensors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadReport:
    loaded: tuple[str, ...]  # our keys that received weights
    missing: tuple[str, ...]  # our keys the file did not provide (new parts: generator, head, spatial token)
    unexpected: tuple[str, ...]  # file keys with no place in the model (e.g. the ImageNet classifier)

    def summary(self) -> str:
        def few(keys: tuple[str, ...]) -> str:
            return ", ".join(keys[:6]) + (f" ... (+{len(keys) - 6})" if len(keys) > 6 else "")

        return (f"loaded {len(self.loaded)} tensors; missing {len(self.missing)} [{few(self.missing)}]; "
                f"unexpected {len(self.unexpected)} [{few(self.unexpected)}]")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    obj = load_tensors(path, "PyTorch state dict of pretrained weights",
                       "pass a local .pth file saved with torch.save(model.state_dict(), ...)")
    for wrapper in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(wrapper), dict):
            obj = obj[wrapper]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise FacelabError(f"{path} does not hold a state dict of tensors; pass an ImageNet .pth state dict")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}


def _resize_pos(v: torch.Tensor, target: torch.Size) -> torch.Tensor:
    """(1, 1+g*g, D) -> (1, 1+G*G, D), bicubic on the grid."""
    g, gt = math.isqrt(v.shape[1] - 1), math.isqrt(target[1] - 1)
    grid = v[:, 1:].reshape(1, g, g, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(gt, gt), mode="bicubic", align_corners=False)
    return torch.cat([v[:, :1], grid.permute(0, 2, 3, 1).reshape(1, gt * gt, -1)], 1)


def load_pretrained(model: nn.Module, path: str | Path) -> LoadReport:
    """Copy matching tensors of the file at ``path`` into ``model``; raise when a shape differs or nothing fits."""
    src = read_state_dict(path)
    own = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, value in src.items():
        ours = model.pretrained_key(key)  # type: ignore[operator]
        if ours is None or ours not in own:
            unexpected.append(key)
            continue
        if ours.endswith("pos_embed") and value.shape != own[ours].shape and value.dim() == 3:
            value = _resize_pos(value, own[ours].shape)
        if value.shape != own[ours].shape:
            raise FacelabError(f"{path}: {key} has shape {tuple(value.shape)} but the model's {ours} needs "
                               f"{tuple(own[ours].shape)}; use the matching backbone at width 1.0")
        new[ours] = value
    if not new:
        raise FacelabError(f"{path}: none of its {len(src)} keys fit this backbone (e.g. {next(iter(src), '')!r}); "
                           "pass the ImageNet weights of the same architecture")
    model.load_state_dict(new, strict=False)
    report = LoadReport(tuple(sorted(new)), tuple(sorted(set(own) - set(new))), tuple(sorted(unexpected)))
    log.info("pretrained %s: %s", Path(path).name, report.summary())
    return report
