"""Export a swap model's predictor as ONNX (face in; swapped face, its mask and the dst mask out) for real-time
players, checked against PyTorch with onnxruntime."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from facelab.errors import FacelabError
from facelab.models.amp import AMP
from facelab.models.base import TrainableModel
from facelab.utils.atomic import atomic_path

log = logging.getLogger(__name__)

INPUT_NAME = "face"
MORPH_NAME = "morph_value"
OUTPUT_NAMES = ("swapped_face", "swapped_mask", "dst_mask")


class SwapPredictor(nn.Module):
    """face (B, 3, R, R) in [0, 1] -> (swapped face (B, 3, R, R), mask (B, 1, R, R), dst mask (B, 1, R, R))."""

    def __init__(self, model: TrainableModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.model.swap_faces(face)


class MorphSwapPredictor(SwapPredictor):
    """AMP: (face (B, 3, R, R), morph_value (1,) in [0, 1]) -> the same three outputs."""

    def forward(self, face: torch.Tensor, morph_value: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore
        return self.model.swap_faces(face, morph_value)


def _example_inputs(model: TrainableModel, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    face = torch.rand(batch, 3, model.resolution, model.resolution, generator=g).to(device)
    return (face, torch.tensor([0.75], device=device)) if isinstance(model, AMP) else (face,)


def export_onnx(model: TrainableModel, path: Path, opset: int = 17) -> float:
    """Write the predictor of ``model`` to ``path`` (batch axis dynamic) and return the max abs difference
    between onnxruntime's and PyTorch's outputs on random faces (batch 2)."""
    path = Path(path)
    was_training = model.training
    model.eval()
    wrapper = MorphSwapPredictor(model) if isinstance(model, AMP) else SwapPredictor(model)
    inputs = _example_inputs(model, 2, seed=0)
    names = [INPUT_NAME, MORPH_NAME][: len(inputs)]
    try:
        with atomic_path(path) as tmp, torch.no_grad():
            torch.onnx.export(wrapper, inputs, str(tmp), input_names=names, output_names=list(OUTPUT_NAMES),
                              opset_version=opset, dynamic_axes={INPUT_NAME: {0: "batch"}} | {
                                  k: {0: "batch"} for k in OUTPUT_NAMES}, dynamo=False)
        with torch.no_grad():
            want = [t.float().cpu().numpy() for t in wrapper(*inputs)]
    finally:
        model.train(was_training)
    return _max_diff(path, names, inputs, want)


def _max_diff(path: Path, names: list[str], inputs: tuple[torch.Tensor, ...], want: list[np.ndarray]) -> float:
    """Run the ONNX file with onnxruntime on ``inputs`` and compare with ``want``."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise FacelabError(f"onnxruntime cannot load the exported {path}: {exc}") from exc
    feeds = {n: t.cpu().numpy() for n, t in zip(names, inputs, strict=True)}
    got = sess.run(list(OUTPUT_NAMES), feeds)
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    log.info("exported %s: max abs diff vs PyTorch %.3g", path, diff)
    return diff
