"""``python main.py train`` and ``export --format onnx`` through the click CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from facelab.cli.root import cli
from facelab.models.store import load_model

ARCH = ["--resolution", "32", "--archi", "df-ud", "--e-dims", "8", "--ae-dims", "16", "--d-dims", "8",
        "--d-mask-dims", "4"]


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), obj={}, catch_exceptions=False)


@pytest.fixture
def trained(tmp_path, aligned_faceset):
    src, dst = aligned_faceset
    ws = tmp_path / "ws"
    (tmp_path / "run.toml").write_text('[train]\nbatch_size = 3\nlr = 0.0002\n[arch]\nae_dims = 99\n')
    result = _invoke("train", "--model", "saehd", "--name", "tiny", "--workspace", str(ws), "--device", "cpu",
                     "--config", str(tmp_path / "run.toml"), *ARCH, "--target-iter", "2", "--workers", "0",
                     "--no-random-warp", "--src-dir", str(src), "--dst-dir", str(dst), "--no-preview")
    assert result.exit_code == 0, result.output
    return ws, result.output


def test_train_cli_creates_and_resumes(trained, aligned_faceset):
    ws, out = trained
    assert "new saehd model" in out and "parameters" in out and "total_mb" in out
    assert re.search(r"iterations\s+0 -> 2", out) and re.search(r"stopped by\s+target_iter", out)
    doc = json.loads((ws / "model/tiny/config.json").read_text())
    assert doc["arch"]["ae_dims"] == 16 and doc["arch"]["archi"] == "df-ud"  # the flag beat the config file
    assert doc["train_options"]["batch_size"] == 3 and doc["train_options"]["lr"] == 0.0002  # from the file
    assert doc["train_options"]["random_warp"] is False and doc["train_options"]["target_iter"] == 2
    assert not (ws / "model/tiny/preview.png").exists()  # --no-preview
    src, dst = aligned_faceset
    common = ["--name", "tiny", "--workspace", str(ws), "--device", "cpu", "--workers", "0", "--src-dir", str(src),
              "--dst-dir", str(dst)]
    result = _invoke("train", *common, "--target-iter", "3", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "resuming saehd model" in result.output and re.search(r"iterations\s+2 -> 3", result.output)
    assert (ws / "model/tiny/preview.png").is_file() and (ws / "model/tiny/loss.png").is_file()
    result = CliRunner().invoke(cli, ["train", *common, "--ae-dims", "32", "--target-iter", "4"], obj={})
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: --ae-dims 32 conflicts")


def test_export_onnx_cli(trained, tmp_path):
    ws, _ = trained
    out = tmp_path / "swap.onnx"
    result = _invoke("export", "--format", "onnx", "--workspace", str(ws), "--output", str(out))
    assert result.exit_code == 0, result.output
    diff = float(re.search(r"max abs diff vs PyTorch\s+(\S+)", result.output).group(1))
    assert diff < 1e-4
    import onnxruntime as ort

    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    face = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    outputs = sess.run(None, {sess.get_inputs()[0].name: face})
    model = load_model(ws / "model/tiny", "cpu")
    import torch

    want = model.predict(torch.from_numpy(face))["face"].numpy()
    got = {o.name: v for o, v in zip(sess.get_outputs(), outputs, strict=True)}
    face_out = next(v for name, v in got.items() if v.shape == (1, 3, 32, 32))
    np.testing.assert_allclose(face_out, want, atol=1e-4)


def test_export_needs_a_model(tmp_path):
    result = CliRunner().invoke(cli, ["export", "--workspace", str(tmp_path / "empty")], obj={})
    assert result.exit_code == 1 and "no trained model" in result.output
