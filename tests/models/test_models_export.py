"""ONNX export of every model's predictor matches PyTorch (onnxruntime)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from facelab.models import create_model
from facelab.models.export import export_onnx

TINY = {"resolution": 32, "ae_dims": 16, "e_dims": 8, "d_dims": 8, "d_mask_dims": 4}


@pytest.mark.parametrize("name,arch", [("saehd", {"archi": "liae-ud"}), ("saehd", {"archi": "df-t"}),
                                       ("quick96", {}), ("amp", {"inter_dims": 32})])
def test_export_matches_pytorch(tmp_path, name, arch):
    torch.manual_seed(0)
    model = create_model(name, TINY | arch)
    path = tmp_path / f"{name}.onnx"
    diff = export_onnx(model, path)
    assert diff < 1e-4
    assert model.training  # mode restored
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    faces = torch.rand(3, 3, 32, 32)  # another batch size than the export's
    feeds = {"face": faces.numpy()}
    if name == "amp":
        feeds["morph_value"] = np.array([0.25], dtype=np.float32)
    got = sess.run(None, feeds)
    want = model.predict(faces, 0.25) if name == "amp" else model.predict(faces)
    for g, key in zip(got, ("face", "mask", "dst_mask"), strict=True):
        np.testing.assert_allclose(g, want[key].numpy(), atol=1e-4)


def test_amp_morph_value_input_changes_the_swap(tmp_path):
    torch.manual_seed(0)
    model = create_model("amp", TINY | {"inter_dims": 32})
    path = tmp_path / "amp.onnx"
    export_onnx(model, path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    face = torch.rand(1, 3, 32, 32).numpy()
    lo = sess.run(None, {"face": face, "morph_value": np.array([0.0], np.float32)})[0]
    hi = sess.run(None, {"face": face, "morph_value": np.array([1.0], np.float32)})[0]
    assert np.abs(lo - hi).max() > 1e-4
