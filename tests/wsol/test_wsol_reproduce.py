"""benchmarks/reproduce_wsol_cub.sh end to end on a toy CUB set, with random ImageNet weight files in the layouts
of the real ones (torchvision / timm keys and shapes), at a tiny size and one epoch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facelab.wsol.data import make_toy_cub
from facelab.wsol.models import WsolArch, create_wsol_model
from facelab.wsol.pretrained import load_pretrained
from facelab.wsol.published import PUBLISHED, compare_table
from facelab.wsol.reproduce import PAPER_RUNS, missing_weights

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "reproduce_wsol_cub.sh"


def _rand(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """He-scaled random weights (so 50 random layers keep finite activations)."""
    if len(shape) == 1:
        return 0.01 * torch.randn(shape, generator=gen)
    return torch.randn(shape, generator=gen) * math.sqrt(2.0 / math.prod(shape[1:]))


def _bn(prefix: str, c: int) -> dict[str, tuple]:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,)}


def vgg16_layout() -> dict[str, tuple]:
    """torchvision ``vgg16`` ``features.N`` keys (the ImageNet classifier, 0.5 GB, is left out: nothing uses it)."""
    out, cin, i = {}, 3, 0
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            i += 1
            continue
        out[f"features.{i}.weight"], out[f"features.{i}.bias"] = (v, cin, 3, 3), (v,)
        cin, i = v, i + 2
    return out


def resnet50_layout() -> dict[str, tuple]:
    """torchvision ``resnet50`` keys as in resnet50-19c8e357.pth (no ``num_batches_tracked``)."""
    out = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    cin = 64
    for li, (planes, blocks) in enumerate([(64, 3), (128, 4), (256, 6), (512, 3)], 1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            out |= {f"{p}.conv1.weight": (planes, cin, 1, 1), **_bn(f"{p}.bn1", planes),
                    f"{p}.conv2.weight": (planes, planes, 3, 3), **_bn(f"{p}.bn2", planes),
                    f"{p}.conv3.weight": (planes * 4, planes, 1, 1), **_bn(f"{p}.bn3", planes * 4)}
            if b == 0:
                out |= {f"{p}.downsample.0.weight": (planes * 4, cin, 1, 1), **_bn(f"{p}.downsample.1", planes * 4)}
            cin = planes * 4
    return out | {"fc.weight": (1000, 2048), "fc.bias": (1000,)}


def _backbone_keys(method: str, backbone: str, prefix: str) -> dict[str, tuple]:
    """The backbone tensors of our full-width model, renamed to the file's keys under ``prefix``."""
    model = create_wsol_model(WsolArch(method, backbone, 2))
    out = {}
    for k, v in model.state_dict().items():
        for ours in ("early.", "late.rest.", "backbone."):
            if k.startswith(ours) and "num_batches_tracked" not in k and "spatial" not in k:
                out[prefix + k[len(ours):]] = tuple(v.shape)
    return out


def inception_layout() -> dict[str, tuple]:
    """torchvision ``inception_v3`` keys: the backbone, AuxLogits and fc."""
    aux = {"AuxLogits.conv0.conv.weight": (128, 768, 1, 1), **_bn("AuxLogits.conv0.bn", 128),
           "AuxLogits.conv1.conv.weight": (768, 128, 5, 5), **_bn("AuxLogits.conv1.bn", 768),
           "AuxLogits.fc.weight": (1000, 768), "AuxLogits.fc.bias": (1000,)}
    return _backbone_keys("bas", "inceptionv3", "") | aux | {"fc.weight": (1000, 2048), "fc.bias": (1000,)}


def write_weights(folder: Path) -> None:
    """Every file of :data:`PAPER_RUNS`, random, in its real key layout (DeiT's under ``"model"``)."""
    gen = torch.Generator().manual_seed(0)
    layouts = {
        "vgg16": vgg16_layout(), "resnet50": resnet50_layout(), "inceptionv3": inception_layout(),
        "mobilenetv1": _backbone_keys("bas", "mobilenetv1", "model.") | {"fc.weight": (1000, 1024),
                                                                           "fc.bias": (1000,)},
        "deit_tiny": _backbone_keys("sat", "deit_tiny", "") | {"head.weight": (1000, 192), "head.bias": (1000,)},
        "deit_small": _backbone_keys("sat", "deit_small", "") | {"head.weight": (1000, 384), "head.bias": (1000,)},
    }
    folder.mkdir(parents=True, exist_ok=True)
    for _, backbone, name in PAPER_RUNS:
        sd = {k: (torch.ones(s) if k.endswith("running_var") else _rand(s, gen)) for k, s in layouts[backbone].items()}
        torch.save({"model": sd} if backbone.startswith("deit") else sd, folder / name)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imagenet")
    write_weights(folder)
    return folder


def test_weight_files_fill_every_backbone_tensor(weights):
    assert missing_weights(weights) == []
    for method, backbone, name in PAPER_RUNS:
        model = create_wsol_model(WsolArch(method, backbone, 3))
        report = load_pretrained(model, weights / name)
        new = ("generator.", "late.head.", "head.", "backbone.spatial")
        assert all(k.startswith(new) or k.endswith("num_batches_tracked") for k in report.missing), (backbone, report)
        assert all(k.startswith(("fc.", "AuxLogits.", "head.")) for k in report.unexpected), (backbone, report)


def test_script_runs_both_papers_end_to_end(tmp_path, weights):
    data, out = tmp_path / "cub", tmp_path / "runs"
    make_toy_cub(data, classes=2, per_class=2, seed=0)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    res = subprocess.run(["bash", str(SCRIPT), str(data), str(weights), "--out", str(out), "--epochs", "1",
                          "--size", "32", "--batch", "2", "--backups", "0", "--device", "cpu"], capture_output=True, text=True,
                         env=env, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    for method, backbone, _ in PAPER_RUNS:
        doc = json.loads((out / f"{method}_{backbone}" / "results.json").read_text())
        assert doc["recipe"] == "paper" and doc["metrics"]["images"] == 2.0
        assert doc["protocol"].startswith("BAS CVPR'22 code" if method == "bas" else "SAT ICCV'23 code")
        train = json.loads((out / f"{method}_{backbone}" / "config.json").read_text())["train"]
        assert train["epochs"] == 1 and train["batch_size"] == 2  # the overrides, the rest from the recipe
        if method == "bas":
            assert train["optimizer"] == "sgd" and train["lr_step"] == 80 and train["decay_all"] is True
        else:
            assert train["optimizer"] == "adamw" and train["drop_path"] == 0.1 and train["weight_decay"] == 0.05
    assert json.loads((out / "bas_vgg16" / "config.json").read_text())["train"]["weights"]["beta"] == 0.7
    assert (json.loads((out / "bas_inceptionv3" / "results.json").read_text())["metrics"]["threshold"] == 0.1)
    for number in ("71.33", "77.25", "73.29", "69.77", "80.96", "BAS paper Table 1", "SAT paper Table 1",
                   "MaxBoxAccV2"):
        assert number in res.stdout, res.stdout


def test_compare_table_names_sources_and_protocols():
    text = compare_table([{"method": "sat", "backbone": "deit_tiny", "protocol": "p1",
                           "metrics": {"top1_loc": 12.5, "gt_known_loc": 50.0}}])
    assert "12.50" in text and "not reported on CUB" in text and "protocol: p1" in text
    assert PUBLISHED[("bas", "resnet50")][1] == {"top1_loc": 77.25, "top5_loc": 90.08, "gt_known_loc": 95.13}
