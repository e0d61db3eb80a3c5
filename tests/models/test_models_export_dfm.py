"""DFM export: the file runs the way DeepFaceLive's DFMModel runs it and matches PyTorch."""

from __future__ import annotations

import os
import re

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from facelab.errors import FacelabError
from facelab.models import create_model
from facelab.models.dfm import export_dfm
from facelab.models.export import ExportOptions
from facelab.train.checkpoint import make_checkpoint
from facelab.utils.checkpoint import save_checkpoint

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}
MODELS = [("saehd", {"archi": "liae-ud"}), ("saehd", {"archi": "df-ud"}), ("saehd", {"archi": "df-t"}),
          ("amp", {"inter_dims": 32})]
FP32_TOL = 1e-4
FP16_TOL = 5e-3  # float16 weights and activations: about 3 decimal digits on outputs in [0, 1]


class LiveDFM:
    """A port of DeepFaceLive's DFMModel (modelhub/DFLive/DFMModel.py): the input checks it makes on load and
    what ``convert`` feeds and reads."""

    def __init__(self, path) -> None:
        self.sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = self.sess.get_inputs()
        assert inputs and "in_face" in inputs[0].name
        self.height, self.width = inputs[0].shape[1:3]
        assert len(inputs) <= 2 and all("morph_value" in i.name for i in inputs[1:])
        self.has_morph_value = len(inputs) == 2

    def convert(self, img: np.ndarray, morph_factor: float = 0.75) -> tuple[np.ndarray, ...]:
        """img (N, H, W, 3) BGR uint8 or float32 in [0, 1] -> (celeb (N, H, W, 3), celeb mask (N, H, W, 1),
        face mask (N, H, W, 1)) float32, back at the input's size."""
        n, h, w, _ = img.shape
        face = resize(img, self.width, self.height)
        face = face.astype(np.float32) / 255.0 if face.dtype == np.uint8 else face.astype(np.float32)
        feeds = {"in_face:0": face}
        if self.has_morph_value:
            feeds["morph_value:0"] = np.float32([morph_factor])
        face_mask, celeb, celeb_mask = self.sess.run(None, feeds)
        return resize(celeb, w, h), resize(celeb_mask, w, h), resize(face_mask, w, h)


def resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, H, W, C) -> (N, height, width, C), bilinear, as DeepFaceLive's ImageProcessor.resize."""
    if img.shape[1:3] == (height, width):
        return img
    out = [cv2.resize(x, (width, height), interpolation=cv2.INTER_LINEAR) for x in img]
    return np.stack([o if o.ndim == 3 else o[..., None] for o in out])


def torch_reference(model, faces_bgr: np.ndarray, morph: float) -> tuple[np.ndarray, ...]:
    """PyTorch's (celeb BGR, celeb mask, face mask), NHWC, for BGR float faces at the model's size."""
    rgb = torch.from_numpy(np.ascontiguousarray(faces_bgr[..., ::-1])).permute(0, 3, 1, 2)
    out = model.predict(rgb, morph) if model.name == "amp" else model.predict(rgb)
    face, mask, dst_mask = (out[k].permute(0, 2, 3, 1).numpy() for k in ("face", "mask", "dst_mask"))
    return face[..., ::-1], mask, dst_mask


def tiny(name, arch):
    """A tiny model whose outputs spread over [0, 1]: fresh weights answer about 0.5 everywhere, which would hide
    a wrong channel order or a lost precision, so every weight matrix is scaled up (x1.6 a layer)."""
    torch.manual_seed(0)
    model = create_model(name, TINY | arch)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(1.6)
    return model


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
@pytest.mark.parametrize("name,arch", MODELS, ids=[f"{n}-{a.get('archi', '')}" for n, a in MODELS])
def test_dfm_runs_as_deepfacelive_runs_it(tmp_path, name, arch, fp16):
    model = tiny(name, arch)
    path = tmp_path / "model.dfm"
    tol = FP16_TOL if fp16 else FP32_TOL
    assert export_dfm(model, path, ExportOptions(format="dfm", fp16=fp16)) < tol
    assert model.training  # mode restored

    live = LiveDFM(path)
    assert (live.width, live.height) == (32, 32) and live.has_morph_value == (name == "amp")
    frames = np.random.default_rng(1).random((3, 48, 40, 3), dtype=np.float32)  # other size and batch than export
    morph = 0.4
    got = live.convert(frames, morph)
    want = torch_reference(model, resize(frames, 32, 32), morph)
    for g, w, channels in zip(got, want, (3, 1, 1), strict=True):
        assert g.shape == (3, 48, 40, channels) and g.dtype == np.float32
        np.testing.assert_allclose(g, resize(w, 40, 48), atol=tol)
    uint8 = live.convert((frames * 255).round().astype(np.uint8))
    assert uint8[0].shape == (3, 48, 40, 3)


@pytest.mark.parametrize("fp16", [False, True], ids=["fp32", "fp16"])
def test_dfm_graph_layout(tmp_path, fp16):
    path = tmp_path / "amp.dfm"
    export_dfm(tiny("amp", {"inter_dims": 32}), path, ExportOptions(format="dfm", fp16=fp16))
    proto = onnx.load(str(path))
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 12)]  # DeepFaceLab's opset
    assert proto.ir_version <= 8  # what onnxruntime 1.11 (older DeepFaceLive builds) reads
    graph = proto.graph

    def spec(values):
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    f32 = onnx.TensorProto.FLOAT
    assert spec(graph.input) == [("in_face:0", f32, ["batch", 32, 32, 3]), ("morph_value:0", f32, [1])]
    assert spec(graph.output) == [("out_face_mask:0", f32, ["batch", 32, 32, 1]),
                                  ("out_celeb_face:0", f32, ["batch", 32, 32, 3]),
                                  ("out_celeb_face_mask:0", f32, ["batch", 32, 32, 1])]
    types = {init.data_type for init in graph.initializer if len(init.dims) == 4}  # convolution kernels
    assert types == {onnx.TensorProto.FLOAT16 if fp16 else f32}


def test_dfm_channel_order_is_bgr(tmp_path):
    """A face given as BGR swaps as the same face given to PyTorch as RGB, and comes back BGR."""
    model = tiny("saehd", {"archi": "liae-ud"})
    path = tmp_path / "m.dfm"
    export_dfm(model, path)
    rgb = torch.rand(1, 3, 32, 32)
    bgr = rgb.flip(1).permute(0, 2, 3, 1).numpy()
    _, celeb, _ = ort.InferenceSession(str(path)).run(None, {"in_face:0": bgr})
    want = model.predict(rgb)["face"][0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(celeb[0][..., ::-1], want, atol=FP32_TOL)
    assert np.abs(celeb[0] - want).max() > 10 * FP32_TOL  # the order matters for this face


def test_amp_morph_value_input(tmp_path):
    model = tiny("amp", {"inter_dims": 32})
    path = tmp_path / "amp.dfm"
    export_dfm(model, path)
    live = LiveDFM(path)
    faces = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    lo, hi = live.convert(faces, 0.0)[0], live.convert(faces, 1.0)[0]
    assert np.abs(lo - hi).max() > 1e-3
    np.testing.assert_allclose(lo, torch_reference(model, faces, 0.0)[0], atol=FP32_TOL)


def test_dfm_never_overwrites_silently(tmp_path):
    model = tiny("saehd", {"archi": "df-ud"})
    path = tmp_path / "m.dfm"
    path.write_bytes(b"mine")
    with pytest.raises(FacelabError, match="exists"):
        export_dfm(model, path)
    assert path.read_bytes() == b"mine"
    export_dfm(model, path, ExportOptions(format="dfm", overwrite=True))
    LiveDFM(path)
    assert sorted(os.listdir(tmp_path)) == ["m.dfm"]  # no temporary file left
    with pytest.raises(FacelabError, match=r"\.dfm"):
        export_dfm(model, tmp_path / "m.onnx")


def _workspace_with_model(tmp_path, name="tiny"):
    ws = tmp_path / "ws"
    model = tiny("saehd", {"archi": "liae-ud"})
    save_checkpoint(ws / "model" / name, make_checkpoint(model, {}, 0, {}), backups=0)
    return ws, model


def _invoke(*args):
    from facelab.cli.root import cli  # here: the model tests need not import every command group

    return CliRunner().invoke(cli, list(args), obj={})


def test_export_dfm_cli(tmp_path):
    ws, model = _workspace_with_model(tmp_path)
    result = _invoke("export", "--format", "dfm", "--workspace", str(ws))
    assert result.exit_code == 0, result.output
    out = ws / "model/tiny/tiny.dfm"
    assert float(re.search(r"max abs diff vs PyTorch\s+(\S+)", result.output).group(1)) < FP32_TOL
    before = out.read_bytes()

    again = _invoke("export", "--format", "dfm", "--workspace", str(ws), "--fp16")
    assert again.exit_code == 1 and "exists" in again.output and out.read_bytes() == before

    half = _invoke("export", "--format", "dfm", "--workspace", str(ws), "--fp16", "--overwrite")
    assert half.exit_code == 0 and "float16" in half.output, half.output
    assert out.stat().st_size < 0.75 * len(before)
    faces = np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)
    got = LiveDFM(out).convert(faces)[0]
    np.testing.assert_allclose(got, torch_reference(model.eval(), faces, 1.0)[0], atol=FP16_TOL)

    named = _invoke("export", "--format", "dfm", "--workspace", str(ws), "-o", str(tmp_path / "x.onnx"))
    assert named.exit_code == 1 and ".dfm" in named.output
