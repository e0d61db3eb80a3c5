"""Training on a generated CUB-format folder reaches GT-known Loc > 0.8; CLI train/eval/resume."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from facelab.cli.root import cli
from facelab.wsol.data import load_split, make_toy_cub
from facelab.wsol.losses import LossWeights
from facelab.wsol.models import WsolArch
from facelab.wsol.trainer import WsolTrainConfig, evaluate, load_wsol, train_wsol

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    make_toy_cub(root, classes=4, per_class=30, seed=0)
    return root


# BAS with a softplus head end: with the paper's ReLU a class's activation can die on this tiny set (GT-known
# 62-100 % over seeds 0-3); softplus gave 97-100 % on seeds 1-3. SAT reached 83-90 % on seeds 1-2, and 80 % (48 of
# 60) on seed 0 with boxes read as the papers read them (map normalised on its own grid, then resized).
@pytest.mark.parametrize("method,backbone,head_act", [("bas", "tiny", "softplus"), ("sat", "vit_tiny_scratch", "relu")])
def test_training_localises_toy_objects(toy, tmp_path, method, backbone, head_act):
    cfg = WsolTrainConfig("facelab", input_size=64, epochs=25, batch_size=16, lr=1e-3, weights=LossWeights(area_r=0.25))
    result = train_wsol(toy, tmp_path / method, WsolArch(method, backbone, 4, head_act=head_act), cfg, CPU)
    assert result["epochs_done"] == 25
    model, arch, _, state = load_wsol(tmp_path / method, CPU)
    assert arch.method == method and state["epoch"] == 25
    metrics = evaluate(model, load_split(toy, "test"), 64, CPU, tau=0.5)
    assert metrics["images"] == 60
    assert metrics["gt_known_loc"] >= 80.0, metrics


def test_cli_train_resume_eval(tmp_path):
    runner = CliRunner()
    data, out = tmp_path / "toy", tmp_path / "model"
    res = runner.invoke(cli, ["wsol", "make-toy", str(data), "--classes", "3", "--per-class", "4"])
    assert res.exit_code == 0, res.output
    args = ["wsol", "train", "--data", str(data), "--out", str(out), "--size", "48", "--batch", "4", "--device", "cpu",
            "--alpha", "0.3"]
    res = runner.invoke(cli, args + ["--epochs", "1"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "config.json").read_text())
    assert doc["epochs_done"] == 1 and doc["train"]["weights"]["alpha"] == 0.3
    res = runner.invoke(cli, args + ["--epochs", "2"])  # resumes at epoch 1
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "config.json").read_text())
    assert doc["epochs_done"] == 2 and [h["epoch"] for h in doc["history"]] == [2]
    res = runner.invoke(cli, args + ["--epochs", "2", "--method", "sat"])
    assert res.exit_code == 1 and "Error:" in res.output  # another architecture in the same folder
    res = runner.invoke(cli, ["wsol", "eval", "--method", "bas", "--data", str(data), "--out", str(out),
                              "--threshold", "0.4"])
    assert res.exit_code == 0, res.output
    assert "GT-known Loc" in res.output and "MaxBoxAccV2" in res.output and "Top-5 Loc" in res.output
    assert "BAS CVPR'22 code" in res.output and "changed: thresholds=0.4" in res.output
    res = runner.invoke(cli, ["wsol", "eval", "--data", str(data), "--out", str(out), "--recipe", "facelab",
                              "--json", str(tmp_path / "r.json")])
    assert res.exit_code == 0, res.output
    assert "not a paper's protocol" in res.output and "Choe et al." in res.output
    res = runner.invoke(cli, ["wsol", "table", str(tmp_path / "r.json")])
    assert res.exit_code == 0 and "BAS tiny" in res.output and "no published number" in res.output, res.output
    res = runner.invoke(cli, ["wsol", "eval", "--data", str(tmp_path), "--out", str(out)])
    assert res.exit_code == 1 and "images.txt" in res.output
    res = runner.invoke(cli, ["wsol", "eval", "--method", "sat", "--data", str(data), "--out", str(out)])
    assert res.exit_code == 1 and "holds a bas model" in res.output
