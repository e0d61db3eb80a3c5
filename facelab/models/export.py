"""Export a swap model's predictor as ONNX (face in; swapped face, its mask and the dst mask out) for real-time
players, checked against PyTorch with onnxruntime.

The shared machinery lives here: :class:`ExportOptions`, the float16 copy of a model (:func:`half_precision`),
writing a new file without replacing one silently, and the onnxruntime check. The DFM flavour (DeepFaceLab's
layout for DeepFaceLive and FaceFusion) is :mod:`facelab.models.dfm`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
from torch import nn

from facelab.errors import FacelabError
from facelab.models.amp import AMP
from facelab.models.base import TrainableModel
from facelab.models.saehd.archi import Encoder
from facelab.utils.atomic import TMP_PREFIX

log = logging.getLogger(__name__)

INPUT_NAME = "face"
MORPH_NAME = "morph_value"
OUTPUT_NAMES = ("swapped_face", "swapped_mask", "dst_mask")
#: The morph value of the check run (DeepFaceLive's default for models with a morph input).
CHECK_MORPH = 0.75
ONNX_OPSET = 17  # the onnx format's opset when ExportOptions.opset is unset (DFM has its own: dfm.DFM_OPSET)


@dataclass(frozen=True)
class ExportOptions:
    """How ``export`` writes a model's predictor."""

    format: Literal["onnx", "dfm"] = field(default="onnx", metadata={
        "help": "onnx: face (B, 3, R, R) RGB in, outputs NCHW; dfm: DeepFaceLab's DFM for DeepFaceLive and "
                "FaceFusion (in_face (N, R, R, 3) BGR in, outputs NHWC)."})
    opset: int | None = field(default=None, metadata={
        "help": "ONNX opset.", "range": (11, 20),
        "default_text": "17 for onnx, 12 for dfm (DeepFaceLab's, which every DeepFaceLive build loads)"})
    fp16: bool = field(default=False, metadata={
        "help": "Convolution weights and compute in float16 (dense layers and pixel norm stay float32); "
                "inputs and outputs stay float32."})
    overwrite: bool = field(default=False, metadata={"help": "Replace the output file when it exists."})


class SwapPredictor(nn.Module):
    """face (B, 3, R, R) in [0, 1] -> (swapped face (B, 3, R, R), mask (B, 1, R, R), dst mask (B, 1, R, R)),
    float32 whatever precision the model computes in."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, face: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(t.float() for t in self.model.swap_faces(face))


class MorphSwapPredictor(SwapPredictor):
    """AMP: (face (B, 3, R, R), morph_value (1,) in [0, 1]) -> the same three outputs."""

    def forward(self, face: torch.Tensor, morph_value: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore
        return tuple(t.float() for t in self.model.swap_faces(face, morph_value))


def _to_half(module: nn.Module, args: tuple) -> tuple:
    return (args[0].half(), *args[1:]) if args[0].dtype != torch.half else args


def _to_float(module: nn.Module, args: tuple) -> tuple:
    return (args[0].float(), *args[1:]) if args[0].dtype != torch.float32 else args


def _output_to_float(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
    return out.float()


def half_precision(model: TrainableModel) -> TrainableModel:
    """A copy of ``model`` in evaluation mode that runs as DeepFaceLab's fp16 models do: convolutions (weights
    and the element-wise ops between them) in float16; dense layers, and the encoder's flat code with its pixel
    norm, in float32 (the float16 square of a value above 256 overflows). ``model`` is not changed."""
    half = copy.deepcopy(model).eval()
    for module in half.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            module.half()
            module.register_forward_pre_hook(_to_half)
        elif isinstance(module, nn.Linear):
            module.register_forward_pre_hook(_to_float)
        if isinstance(module, Encoder):
            module.body.register_forward_hook(_output_to_float)
    return half


def check_new_file(path: Path, overwrite: bool) -> None:
    """Refuse an existing ``path`` unless ``overwrite`` (checked before the export work, and again on writing)."""
    if path.exists() and not overwrite:
        raise FacelabError(f"{path} exists; pass --overwrite to replace it, or choose another --output")


def write_new_file(path: Path, data: bytes, overwrite: bool) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file beside it, then a rename). Without ``overwrite``
    an existing file is never replaced, even one made while the export ran (a hard link publishes the file)."""
    check_new_file(path, overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    except OSError as exc:
        raise FacelabError(f"cannot write into {path.parent}: {exc.strerror}") from exc
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        if overwrite:
            os.replace(tmp, path)
        else:
            _publish_exclusive(tmp, path)
    except FileExistsError as exc:
        raise FacelabError(f"{path} appeared while exporting; pass --overwrite to replace it") from exc
    except OSError as exc:
        raise FacelabError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _publish_exclusive(tmp: Path, path: Path) -> None:
    """Give ``tmp`` the name ``path`` unless that name exists (FileExistsError)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        check_new_file(path, overwrite=False)
        os.replace(tmp, path)


def onnx_bytes(wrapper: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: Sequence[str],
               output_names: Sequence[str], batch_inputs: Sequence[str], opset: int) -> bytes:
    """Trace ``wrapper`` on ``inputs`` into an ONNX model; axis 0 of ``batch_inputs`` and of every output is the
    dynamic ``batch``, the other output axes get the sizes traced (the exporter loses them after a Cast)."""
    import onnx

    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(wrapper, inputs, buf, input_names=list(input_names), output_names=list(output_names),
                          opset_version=opset, dynamo=False,
                          dynamic_axes={k: {0: "batch"} for k in (*batch_inputs, *output_names)})
        shapes = [tuple(t.shape) for t in wrapper(*inputs)]
    proto = onnx.load_from_string(buf.getvalue())
    for out, shape in zip(proto.graph.output, shapes, strict=True):
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        dims.add().dim_param = "batch"
        for size in shape[1:]:
            dims.add().dim_value = int(size)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def run_onnx(data: bytes | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Run an ONNX model (bytes or a file) on CPU with onnxruntime; every output, in the graph's order."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(data if isinstance(data, bytes) else str(data),
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise FacelabError(f"onnxruntime cannot load the exported model: {exc}") from exc
    return sess.run(None, feeds)


def export_checked(model: TrainableModel, wrapper_cls: type[nn.Module], inputs: tuple[torch.Tensor, ...],
                   input_names: Sequence[str], output_names: Sequence[str], path: Path,
                   opts: ExportOptions, default_opset: int) -> float:
    """Export ``wrapper_cls(model)`` (a float16 copy with ``opts.fp16``) to ``path`` at ``opts.opset`` (else
    ``default_opset``) and return the max abs difference between onnxruntime's outputs and the float32 PyTorch
    model's on ``inputs``."""
    path = Path(path)
    check_new_file(path, opts.overwrite)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            want = [t.cpu().numpy() for t in wrapper_cls(model)(*inputs)]
        traced = wrapper_cls(half_precision(model) if opts.fp16 else model)
        opset = default_opset if opts.opset is None else opts.opset
        data = onnx_bytes(traced, inputs, input_names, output_names, input_names[:1], opset)
    finally:
        model.train(was_training)
    got = run_onnx(data, {n: t.cpu().numpy() for n, t in zip(input_names, inputs, strict=True)})
    diff = max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))
    write_new_file(path, data, opts.overwrite)
    log.info("exported %s: max abs diff vs PyTorch %.3g", path, diff)
    return diff


def example_faces(model: TrainableModel, batch: int, seed: int) -> torch.Tensor:
    """(batch, 3, R, R) uniform [0, 1] faces on the model's device."""
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    return torch.rand(batch, 3, model.resolution, model.resolution, generator=g).to(device)


def export_onnx(model: TrainableModel, path: Path, opts: ExportOptions | None = None) -> float:
    """Write the predictor of ``model`` to ``path`` (batch axis dynamic) and return the max abs difference
    between onnxruntime's and PyTorch's outputs on random faces (batch 2; AMP at morph 0.75)."""
    opts = opts or ExportOptions()
    face = example_faces(model, 2, seed=0)
    if isinstance(model, AMP):
        morph = torch.tensor([CHECK_MORPH], device=face.device)
        return export_checked(model, MorphSwapPredictor, (face, morph), (INPUT_NAME, MORPH_NAME), OUTPUT_NAMES,
                              path, opts, ONNX_OPSET)
    return export_checked(model, SwapPredictor, (face,), (INPUT_NAME,), OUTPUT_NAMES, path, opts, ONNX_OPSET)
