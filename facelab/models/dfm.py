"""DeepFaceLab's DFM: the ONNX layout DeepFaceLive and FaceFusion's deep swapper load.

One graph, tensor names as DeepFaceLab's tf2onnx export writes them (with ``:0``; the players feed and look up
these exact names, and read the outputs by position in this order):

- ``in_face:0``            (N, R, R, 3) float32 BGR in [0, 1], N dynamic (the players read R from this shape)
- ``morph_value:0``        (1,) float32 in [0, 1], AMP models only (the share of the source's code channels)
- ``out_face_mask:0``      (N, R, R, 1) the destination face's learned mask
- ``out_celeb_face:0``     (N, R, R, 3) the swapped face, BGR in [0, 1]
- ``out_celeb_face_mask:0`` (N, R, R, 1) the swapped face's learned mask

With ``fp16`` the convolutions run in float16 while the inputs and outputs stay float32, as DeepFaceLab's fp16
models do (the players always feed float32).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from facelab.errors import FacelabError
from facelab.models.amp import AMP
from facelab.models.base import TrainableModel
from facelab.models.export import CHECK_MORPH, ExportOptions, example_faces, export_checked

DFM_OPSET = 12  # DeepFaceLab's (tf2onnx); every DeepFaceLive build's onnxruntime reads it
DFM_SUFFIX = ".dfm"
DFM_INPUT = "in_face:0"
DFM_MORPH = "morph_value:0"
DFM_OUTPUTS = ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0")


def bgr_nhwc_to_rgb_nchw(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) BGR -> (N, 3, H, W) RGB."""
    return x.flip(-1).permute(0, 3, 1, 2)


def rgb_nchw_to_bgr_nhwc(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB -> (N, H, W, 3) BGR."""
    return x.flip(1).permute(0, 2, 3, 1)


def mask_nchw_to_nhwc(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, H, W, 1)."""
    return x.permute(0, 2, 3, 1)


class DFMPredictor(nn.Module):
    """in_face (N, R, R, 3) BGR in [0, 1] -> (dst mask (N, R, R, 1), swapped face (N, R, R, 3) BGR, its mask
    (N, R, R, 1)), float32."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, in_face: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._outputs(self.model.swap_faces(bgr_nhwc_to_rgb_nchw(in_face)))

    @staticmethod
    def _outputs(swap: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        face, mask, dst_mask = (t.float() for t in swap)
        return mask_nchw_to_nhwc(dst_mask), rgb_nchw_to_bgr_nhwc(face), mask_nchw_to_nhwc(mask)


class MorphDFMPredictor(DFMPredictor):
    """AMP: (in_face (N, R, R, 3), morph_value (1,) in [0, 1]) -> the same three outputs."""

    def forward(self, in_face: torch.Tensor, morph_value: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore
        return self._outputs(self.model.swap_faces(bgr_nhwc_to_rgb_nchw(in_face), morph_value))


def check_dfm_path(path: Path) -> None:
    """DeepFaceLive lists only ``*.dfm`` files in its models folder."""
    if Path(path).suffix.lower() != DFM_SUFFIX:
        raise FacelabError(f"{path}: a DFM file must end in {DFM_SUFFIX} (DeepFaceLive lists only those)")


def export_dfm(model: TrainableModel, path: Path, opts: ExportOptions | None = None) -> float:
    """Write ``model``'s predictor as a DFM file and return the max abs difference between onnxruntime's and
    PyTorch's (float32) outputs on random faces (batch 2; AMP at morph 0.75, DeepFaceLive's default)."""
    opts = opts or ExportOptions(format="dfm")
    check_dfm_path(path)
    face = example_faces(model, 2, seed=0).permute(0, 2, 3, 1).contiguous()
    if isinstance(model, AMP):
        morph = torch.tensor([CHECK_MORPH], device=face.device)
        return export_checked(model, MorphDFMPredictor, (face, morph), (DFM_INPUT, DFM_MORPH), DFM_OUTPUTS,
                              path, opts, DFM_OPSET)
    return export_checked(model, DFMPredictor, (face,), (DFM_INPUT,), DFM_OUTPUTS, path, opts, DFM_OPSET)
