"""``train`` killed (SIGKILL) at a seeded random point after a save and rerun to the same target iteration ends
where an uninterrupted run ends: the same checkpoint (weights, optimizer states, loss history, RNG and loader
states), the same numbered backups, config.json but its dates, the same preview images and loss plot, and no
temporary or lock file anywhere in the workspace.

Checkpoints are compared tensor by tensor: torch's zip archive names its entries after the file it was written to,
a random temporary name, so two equal checkpoints differ in a few bytes.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from killing import kill_when, leftovers, start_main, tree_bytes

from facelab.cli.root import cli
from facelab.train import checkpoint as ck
from facelab.workspace import Workspace

pytestmark = pytest.mark.fault

TARGET = 8
# a 16 px model saved after every iteration; --workers 0 makes a resumed run bit-identical
ARGS = ["train", "--model", "saehd", "--name", "tiny", "--device", "cpu", "--workers", "0", "--resolution", "16",
        "--archi", "df", "--ae-dims", "8", "--e-dims", "4", "--d-dims", "4", "--d-mask-dims", "2", "--batch-size",
        "2", "--autosave-minutes", "1e-6", "--backups", "2", "--no-preview", "--seed", "3", "--target-iter", str(TARGET)]


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Where two checkpoint trees (dicts, lists, tensors, plain values) differ."""
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} vs {type(b).__name__}"]
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return [f"{where}: keys {sorted(map(str, a))} vs {sorted(map(str, b))}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: {len(a)} vs {len(b)} items"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{i}]")]
    if isinstance(a, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        return [] if same else [f"{where}: tensors differ"]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def _model_folder(root: Path) -> dict[str, Any]:
    """What the model folder holds, comparable across runs: checkpoints loaded, config.json without its dates,
    every other file but the TensorBoard logs as bytes."""
    folder = Workspace(root).model("tiny")
    out: dict[str, Any] = {}
    for name, data in tree_bytes(folder).items():
        if name.startswith("tensorboard/"):
            continue  # event logs carry wall times, and a resumed run appends a second file
        if name.endswith(".pt"):
            out[name] = ck.read_checkpoint(folder / name)
        elif name == ck.CONFIG_NAME:
            out[name] = {k: v for k, v in json.loads(data).items() if k not in ("created", "updated")}
        else:
            out[name] = data
    return out


def test_killed_train_resumes_to_the_same_checkpoint(tmp_path, aligned_faceset):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for root in (killed, clean):
        ws = Workspace(root)
        ws.init()
        for side, faces in zip(("src", "dst"), aligned_faceset, strict=True):
            shutil.copytree(faces, ws.aligned(side), dirs_exist_ok=True)
    rng = random.Random(17)
    after, delay = rng.randint(1, TARGET // 2), rng.uniform(0.0, 0.05)
    model = Workspace(killed).model("tiny")

    def saved() -> bool:
        return any(i >= after for i, _ in ck.list_backups(model))

    proc = start_main([*ARGS, "-w", str(killed)], tmp_path / "killed.log")
    code = kill_when(proc, saved, delay)
    assert code == -signal.SIGKILL, (tmp_path / "killed.log").read_text()
    # a kill after the last save (a fast machine) leaves a finished model: the rerun must then change nothing
    assert after <= ck.read_checkpoint(model / ck.LAST_NAME)["iteration"] <= TARGET
    for root in (killed, clean):
        res = CliRunner().invoke(cli, [*ARGS, "-w", str(root)], obj={})
        assert res.exit_code == 0, res.output
    want = _model_folder(clean)
    assert sorted(want) == [f"ckpt_{TARGET - 1:07d}.pt", f"ckpt_{TARGET:07d}.pt", "ckpt_last.pt", "config.json"]
    assert _differences(_model_folder(killed), want) == []
    assert leftovers(killed) == []
